"""Training: a differentiable forward, the task mixing layout, loss decrease and exact resume."""
import dataclasses

import pytest
import torch
from safetensors import safe_open

from uniavgen_core import units
from uniavgen_core.model.config import UniAVGenConfig
from uniavgen_core.model.conditioning import Switches
from uniavgen_core.checkpoint.loading import file_metadata, load_model
from uniavgen_core.model.dit import UniAVGenModel
from uniavgen_core.training.objective import Example, MixConfig, TrainTask, build_batch, losses
from uniavgen_core.training.trainer import OptimConfig, TrainConfig, Trainer

MICRO = UniAVGenConfig(dim=64, ffn_dim=96, num_heads=2, num_layers=2, text_dim=16, text_len=16, freq_dim=32,
                       audio_dim=64, audio_ffn_dim=96, audio_num_heads=2, speech_vocab_size=33, speech_dim=32,
                       speech_conv_layers=1, interaction_layers=(0,))
FRAMES, MEL = 3, units.mel_frames(units.video_frames(3))


def example(seed, ref_len=11):
    g = torch.Generator().manual_seed(seed)
    ref = torch.randn(48, 1, 4, 4, generator=g)
    # learnable structure: the clip repeats its first frame with a little motion, and the mels
    # share one pattern at different levels
    latent = ref + 0.1 * torch.randn(48, FRAMES, 4, 4, generator=g)
    latent[:, :1] = ref
    pattern = torch.sin(0.3 * torch.arange(MEL)[:, None] + 0.2 * torch.arange(80)[None])
    mel = pattern * (1 + torch.rand(1, generator=g)) + 0.1 * torch.randn(MEL, 80, generator=g)
    return Example(latent, mel, torch.randint(0, 33, (7,), generator=g),
                   torch.randn(3, 16, generator=g), torch.randn(ref_len, 80, generator=g),
                   torch.randint(0, 33, (4,), generator=g), (torch.rand(2, 2, generator=g) > 0.5).float())


@pytest.fixture
def grad_enabled():
    with torch.enable_grad():
        yield


def only(task: str, **kw) -> MixConfig:
    return MixConfig(task_weights={task: 1.0}, **kw)


def random_model(seed=0) -> UniAVGenModel:
    torch.manual_seed(seed)
    model = UniAVGenModel(MICRO)
    with torch.no_grad():
        for p in model.parameters():      # no zero-initialised parts: every path carries gradient
            p.copy_(torch.randn_like(p) * 0.2)
    return model


def test_backward_matches_inference_and_reaches_every_parameter(grad_enabled):
    model = random_model()
    examples = [example(i, ref_len=5 + 3 * i) for i in range(6)]
    gen = torch.Generator().manual_seed(4)
    mix = MixConfig(task_weights={"avg": 1, "ravg": 2, "a2v": 1, "v2a": 1, "continuation": 1},
                    text_dropout=0.0, interaction_dropout=0.0)
    batch = build_batch(examples, gen, mix, MICRO.text_len)
    assert set(batch.tasks) == set(TrainTask), batch.tasks      # every task in one batch
    out = model(batch.video, batch.audio, batch.t, batch.cond, batch.switches, capture_masks=True)
    with torch.no_grad():        # the in-place inference path gives the same numbers
        ref = model(batch.video, batch.audio, batch.t, batch.cond, batch.switches, capture_masks=True)
    for a, b in zip(out, ref):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    total = losses(model, batch, mix)["total"]
    total.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # padding rows of the audio stream never reach an output (they are masked keys), so the
    # padding embedding has no gradient by construction
    assert missing == ["audio_padding"], missing
    groups = {n.split(".")[0] for n, p in model.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert {"blocks", "audio_blocks", "a2v_blocks", "v2a_blocks", "text_embedding", "head", "head_audio",
            "patch_embedding", "audio_embedding", "text_proj"} <= groups


def test_gradient_matches_finite_differences(grad_enabled):
    """The directional derivative of the loss along a random direction, analytic vs central
    differences, in float64 (the float32 islands of the model and the curvature limit the agreement to ~1e-3)."""
    model = random_model(3).double()
    model.compute_dtype = torch.float64
    examples = [example(i) for i in range(3)]
    mix = MixConfig(task_weights={"avg": 1, "ravg": 1, "a2v": 1}, text_dropout=0.0, interaction_dropout=0.0,
                    fam_weight=0.5)
    batch = build_batch(examples, torch.Generator().manual_seed(2), mix, MICRO.text_len)
    batch = dataclasses.replace(batch, video=batch.video.double(), audio=batch.audio.double(),
                                target_video=batch.target_video.double(), target_audio=batch.target_audio.double())
    params = [p for p in model.parameters()]
    gen = torch.Generator().manual_seed(4)
    direction = [torch.randn(p.shape, generator=gen, dtype=p.dtype) for p in params]
    loss = losses(model, batch, mix)["total"]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    analytic = sum(float((g * d).sum()) for g, d in zip(grads, direction) if g is not None)
    step = 3e-4

    def shifted(sign):
        with torch.no_grad():
            for p, d in zip(params, direction):
                p.add_(sign * step * d)
            value = float(losses(model, batch, mix)["total"])
            for p, d in zip(params, direction):
                p.sub_(sign * step * d)
        return value

    numeric = (shifted(1) - shifted(-1)) / (2 * step)
    assert abs(analytic - numeric) <= 2e-3 * abs(numeric), (analytic, numeric)


def test_task_layouts():
    examples = [example(i) for i in range(8)]
    gen = lambda: torch.Generator().manual_seed(0)
    v2a = build_batch(examples, gen(), only("v2a"), MICRO.text_len)
    assert v2a.video_weight.sum() == 0 and bool((v2a.audio_weight == 1).all())
    assert v2a.cond.video_cond_frames == (FRAMES,) * 8 and v2a.cond.audio_cond_frames == (0,) * 8
    a2v = build_batch(examples, gen(), only("a2v"), MICRO.text_len)
    assert a2v.audio_weight.sum() == 0
    assert a2v.cond.audio_cond_frames == (MEL,) * 8 and a2v.cond.video_cond_frames == (1,) * 8
    assert bool((a2v.video_weight[:, :, 1:] == 1).all()) and a2v.video_weight[:, :, 0].sum() == 0
    cont = build_batch(examples, gen(), only("continuation"), MICRO.text_len)
    for k, m in zip(cont.cond.video_cond_frames, cont.cond.audio_cond_frames):
        assert 2 <= k <= FRAMES - 1 and m == units.mel_frames(units.video_frames(k))
    ravg = build_batch(examples, gen(), only("ravg"), MICRO.text_len)
    assert ravg.cond.ref_lens == (11,) * 8
    # RAVG's transcript is reference + space + text, as at inference
    ids = ravg.cond.speech_ids[0][: ravg.cond.speech_lens[0]]
    assert ids.tolist() == examples[0].ref_ids.tolist() + [0] + examples[0].text_ids.tolist()
    dropped = build_batch(examples, gen(), only("avg", text_dropout=1.0, interaction_dropout=1.0), MICRO.text_len)
    assert dropped.cond.caption_lens == (0,) * 8
    assert all(row[0] == 0 and bool((row[1:] == -1).all()) for row in dropped.cond.speech_ids)
    assert dropped.switches == Switches((False,) * 8, (False,) * 8, (-1,) * 8)
    # generated parts are x_s = (1 - s) x0 + s eps with target eps - x0
    s = dropped.t / 1000
    x0 = torch.stack([e.latent for e in examples])
    eps = dropped.target_video + x0
    torch.testing.assert_close(dropped.video, (1 - s.view(-1, 1, 1, 1, 1)) * x0 + s.view(-1, 1, 1, 1, 1) * eps)


def test_shift_draws_like_inference():
    """s = shift u / (1 + (shift - 1) u): with shift 5 the median noise level is 5/6."""
    examples = [example(0)] * 400
    batch = build_batch(examples, torch.Generator().manual_seed(0), MixConfig(), MICRO.text_len)
    assert abs(float((batch.t / 1000).median()) - 5 / 6) < 0.03


def small_config(tmp_path, steps, **optim) -> TrainConfig:
    return TrainConfig(out=str(tmp_path), seed=3, log_every=1, checkpoint_every=1000, model=MICRO,
                       optim=OptimConfig(steps=steps, batch_size=6, lr=3e-3, warmup=2, ema_start=1, **optim))


def test_a_few_steps_lower_the_loss(tmp_path, grad_enabled):
    examples = [example(i) for i in range(12)]
    trainer = Trainer(small_config(tmp_path, 120), examples)
    mix = trainer.config.mix
    fixed = build_batch(examples, torch.Generator().manual_seed(99), mix, MICRO.text_len)

    def held_loss():
        with torch.no_grad():
            parts = losses(trainer.model, fixed, mix)
        return float(parts["video"]), float(parts["audio"])

    before = held_loss()
    trainer.run()
    after = held_loss()
    assert after[0] < 0.9 * before[0] and after[1] < 0.6 * before[1], (before, after)


def test_resume_continues_exactly(tmp_path, grad_enabled):
    examples = [example(i) for i in range(8)]
    straight = Trainer(small_config(tmp_path / "a", 4, grad_accum=2), examples)
    straight.run()
    first = Trainer(small_config(tmp_path / "b", 4, grad_accum=2), examples)
    first.run(until=2)
    path = first.save(tmp_path / "b" / "mid.safetensors")
    resumed = Trainer(small_config(tmp_path / "b", 4, grad_accum=2), examples)
    resumed.resume(path)
    assert resumed.step == 2
    resumed.run()
    for (name, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), name
    for name in straight.ema:
        assert torch.equal(straight.ema[name], resumed.ema[name]), name
    assert straight.history == resumed.history


def test_resume_refuses_another_model(tmp_path, grad_enabled):
    examples = [example(0)]
    trainer = Trainer(small_config(tmp_path, 1), examples)
    path = trainer.save(tmp_path / "x.safetensors")
    other = dataclasses.replace(small_config(tmp_path, 1), model=dataclasses.replace(MICRO, ffn_dim=128))
    with pytest.raises(ValueError, match="another model configuration"):
        Trainer(other, examples).resume(path)


def test_config_file(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('out = "run"\nseed = 7\n[dataset]\npath = "data/train.safetensors"\n'
                    '[model]\ndim = 64\nnum_heads = 2\n'
                    'audio_dim = 64\naudio_num_heads = 2\n[optim]\nsteps = 5\n[mix]\ntext_dropout = 0.2\n')
    cfg = TrainConfig.from_toml(path)
    assert cfg.seed == 7 and cfg.model.dim == 64 and cfg.optim.steps == 5 and cfg.mix.text_dropout == 0.2
    assert cfg.dataset.path == str(tmp_path / "data/train.safetensors") and cfg.out == str(tmp_path / "run")
    path.write_text("[optim]\nstep = 5\n")
    with pytest.raises(ValueError, match=r"\[optim\] has unknown key\(s\) \['step'\]"):
        TrainConfig.from_toml(path)


def test_export_is_self_contained(tmp_path, grad_enabled):
    """The exported file carries what shapes cannot tell (head counts, A2V window, which layers
    interact) and loads to the EMA weights."""
    odd = dataclasses.replace(MICRO, num_heads=1, audio_num_heads=1, a2v_window=3, interaction_layers=(1,))
    cfg = dataclasses.replace(small_config(tmp_path, 2), model=odd)
    trainer = Trainer(cfg, [example(i) for i in range(4)])
    trainer.run()
    path = trainer.export(tmp_path / "mini.safetensors", "x\ny\n", {"note": {"a": 1}})
    with pytest.raises(FileExistsError):
        trainer.export(path, "x\n")
    loaded = load_model(path)
    assert loaded.config == odd
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, trainer.ema[name]), name
    meta = file_metadata([path])
    assert meta["uniavgen_vocab"] == "x\ny\n" and meta["note"] == '{"a": 1}'
    assert meta["uniavgen_format"] == "fp32"


def test_export_half_precision(tmp_path, grad_enabled):
    """export_format fp16 stores the EMA weights rounded to fp16; they load back as float32."""
    cfg = dataclasses.replace(small_config(tmp_path, 1), export_format="fp16")
    trainer = Trainer(cfg, [example(i) for i in range(2)])
    trainer.run()
    path = trainer.export(tmp_path / "half.safetensors", "x\n")
    with safe_open(str(path), "pt") as handle:
        assert {handle.get_slice(k).get_dtype() for k in handle.keys()} == {"F16"}
    assert file_metadata([path])["uniavgen_format"] == "fp16"
    loaded = load_model(path, dtype=torch.float32)
    for name, value in loaded.state_dict().items():
        assert torch.equal(value, trainer.ema[name].half().float()), name
    with pytest.raises(ValueError, match="export_format must be one of"):
        dataclasses.replace(cfg, export_format="fp8")

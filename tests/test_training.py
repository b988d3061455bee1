"""Training: a differentiable forward, the task mixing layout, loss decrease and exact resume."""
import dataclasses
import os
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from helpers import REPO, TINY_RUN, bad_values, read_only, toml_text, with_changes
from uniavgen_core.cli import train as train_cli
from uniavgen_core.sampling import flow
from uniavgen_core import units
from uniavgen_core.model.config import UniAVGenConfig
from uniavgen_core.model.conditioning import Switches
from uniavgen_core.checkpoint.loading import file_metadata, load_model
from uniavgen_core.model.dit import UniAVGenModel
from uniavgen_core.model.fields import FieldError
from uniavgen_core.training import budget
from uniavgen_core.sampling.tasks import TASKS, Task
from uniavgen_core.training.objective import (Example, MixConfig, build_batch, channel_weights, losses,
                                              time_code_roughness)
from uniavgen_core.training.trainer import SECTIONS, OptimConfig, TrainConfig, Trainer

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
    examples = [example(i, ref_len=5 + 3 * i) for i in range(8)]
    gen = torch.Generator().manual_seed(25)
    mix = MixConfig(task_weights={"avg": 1, "ravg": 2, "a2v": 1, "v2a": 1, "continuation": 1, "a2v_continuation": 1,
                                  "v2a_continuation": 1}, text_dropout=0.0, interaction_dropout=0.0)
    batch = build_batch(examples, gen, mix, MICRO.text_len)
    assert set(batch.tasks) == set(Task), batch.tasks      # every task in one batch
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


def test_training_samples_lay_out_each_task_as_the_sampler_takes_it():
    """Every sample's clean parts are what the task table lets the sampler take for its task, and the
    loss covers exactly the generated parts."""
    examples = [example(i, ref_len=4) for i in range(40)]
    mix = MixConfig(task_weights={"avg": 1, "ravg": 1, "a2v": 1, "v2a": 1, "continuation": 1, "a2v_continuation": 1,
                                  "v2a_continuation": 1})
    batch = build_batch(examples, torch.Generator().manual_seed(7), mix, MICRO.text_len)
    assert set(batch.tasks) == set(Task)
    frames, rows = batch.video.shape[2], batch.audio.shape[1]
    for i, task in enumerate(batch.tasks):
        c = batch.cond
        TASKS[task].check_conditions(frames, rows, c.video_cond_frames[i], c.audio_cond_frames[i], c.ref_lens[i])
        assert int((batch.video_weight[i] == 0).sum()) == c.video_cond_frames[i]
        assert int((batch.audio_weight[i] == 0).sum()) == c.audio_cond_frames[i]


def test_timestep_jitter_moves_only_the_timestep_the_model_is_told():
    examples = [example(i) for i in range(12)]
    plain = build_batch(examples, torch.Generator().manual_seed(3), MixConfig(), MICRO.text_len)
    jittered = build_batch(examples, torch.Generator().manual_seed(3), MixConfig(t_jitter=5.0), MICRO.text_len)
    for name in ("video", "audio", "target_video", "target_audio", "video_weight", "audio_weight"):
        assert torch.equal(getattr(plain, name), getattr(jittered, name)), name
    moved = (jittered.t - plain.t).abs()
    assert float(moved.max()) <= 5.0 and float(moved.mean()) > 0.5
    assert float(jittered.t.min()) >= 0 and float(jittered.t.max()) <= 1000


def test_null_dropout_drops_prompt_and_interactions_together_and_nothing_else():
    examples = [example(i) for i in range(12)]
    draw = lambda mix: build_batch(examples, torch.Generator().manual_seed(3), mix, MICRO.text_len)
    plain = draw(MixConfig(text_dropout=0.0, interaction_dropout=0.0))
    null = draw(MixConfig(text_dropout=0.0, interaction_dropout=0.0, null_dropout=1.0))
    for name in ("video", "audio", "t", "target_video", "target_audio", "video_weight", "audio_weight"):
        assert torch.equal(getattr(plain, name), getattr(null, name)), name
    assert plain.switches.a2v == (True,) * 12 and null.switches == Switches((False,) * 12, (False,) * 12, (-1,) * 12)
    assert min(plain.cond.caption_lens) > 0 and null.cond.caption_lens == (0,) * 12
    some = draw(MixConfig(text_dropout=0.0, interaction_dropout=0.0, null_dropout=0.5))
    dropped = [not on for on in some.switches.a2v]
    assert 0 < sum(dropped) < 12 and dropped == [n == 0 for n in some.cond.caption_lens]


def test_a_uniform_fraction_draws_that_share_of_noise_levels_without_the_shift():
    """With uniform_fraction 1 every noise level is the uniform draw the shift would have bent (so bending it
    gives the plain batch's levels); with 0.5 some are bent and some not."""
    examples = [example(i) for i in range(12)]
    draw = lambda mix: build_batch(examples, torch.Generator().manual_seed(3), mix, MICRO.text_len)
    plain = draw(MixConfig())
    uniform = draw(MixConfig(uniform_fraction=1.0)).t / 1000
    assert torch.allclose(flow.shifted(uniform, 5.0) * 1000, plain.t, atol=1e-3)
    assert float((uniform * 1000 - plain.t).abs().min()) > 0
    half = draw(MixConfig(uniform_fraction=0.5)).t
    bent = torch.isclose(half, plain.t, atol=1e-3)
    assert 0 < int(bent.sum()) < len(examples)
    assert torch.allclose(half[~bent], uniform[~bent] * 1000, atol=1e-3)


def test_the_video_uniform_weight_reweighs_only_the_video_loss_as_uniform_noise_levels_would():
    """At weight 1 a sample's video loss weighs p_uniform(s) / p_shifted(s) = ds/du (a finite difference of the
    shift here), so over the shift's draws the video is trained as if its levels were uniform; nothing drawn
    changes, the audio's weights included; at 0.5 the weight is halfway to 1."""
    examples = [example(i) for i in range(12)]
    draw = lambda mix: build_batch(examples, torch.Generator().manual_seed(3), mix, MICRO.text_len)
    plain, full, half = draw(MixConfig()), draw(MixConfig(video_uniform_weight=1.0)), draw(
        MixConfig(video_uniform_weight=0.5))
    for name in ("video", "audio", "t", "target_video", "target_audio", "audio_weight"):
        assert torch.equal(getattr(plain, name), getattr(full, name)), name
    s = plain.t.double() / 1000
    u = s / (5 - 4 * s)                                   # the uniform draw the shift of 5 bent into s
    h = 1e-6
    ds_du = (flow.shifted(u + h, 5.0) - flow.shifted(u - h, 5.0)) / (2 * h)
    generated = plain.video_weight > 0
    for batch, expect in ((full, ds_du), (half, 0.5 + 0.5 * ds_du)):
        ratio = batch.video_weight / plain.video_weight.clamp(min=1e-12)
        for i in range(len(examples)):
            assert torch.allclose(ratio[i][generated[i]].double(), expect[i].expand(int(generated[i].sum())),
                                  rtol=1e-4)
            assert torch.equal(batch.video_weight[i][~generated[i]], plain.video_weight[i][~generated[i]])
    assert float(ds_du.max()) > 1 > float(ds_du.min())   # the draw holds levels on both sides


def test_the_time_code_penalty_smooths_the_velocity_in_t(grad_enabled):
    """The penalty is the relative change of the codes the forward pass itself uses (both branches' time embeddings
    and modulations) for a unit step of t; minimising it alone makes the velocity change less for a unit step of t
    (t reaches it only through those codes); it joins the total only when asked."""
    model = random_model()
    batch = build_batch([example(i) for i in range(4)], torch.Generator().manual_seed(5), only("avg"),
                        MICRO.text_len)

    def used_codes(t):      # a generated video frame's and the audio's codes, as the forward pass makes them
        ctx = model.prepare(batch.video, batch.audio, batch.cond, batch.switches)
        model.embed_times(ctx, t)
        return (torch.cat([ctx.e_v[:, -1], ctx.e0_v[:, -1].flatten(1)], -1),
                torch.cat([ctx.e_a[:, 0], ctx.e0_a[:, 0].flatten(1)], -1))

    with torch.no_grad():
        changes = [((b - a).square().mean() / a.square().mean()) for a, b in zip(used_codes(batch.t),
                                                                                  used_codes(batch.t + 1))]
        assert torch.allclose(time_code_roughness(model, batch.t), sum(changes) / 2, rtol=1e-5)
        top = torch.full((4,), 1000.0)      # the step is taken below the last timestep
        assert torch.equal(time_code_roughness(model, top), time_code_roughness(model, top - 1))
    plain = losses(model, batch, MixConfig())
    weighted = losses(model, batch, MixConfig(t_smoothness=2.0))
    assert "t_code" not in plain
    assert torch.allclose(weighted["total"], plain["total"] + 2.0 * weighted["t_code"])

    def velocity_change():
        with torch.no_grad():
            at = lambda t: model(batch.video, batch.audio, t, batch.cond, batch.switches)
            a, b = at(batch.t), at(batch.t + 1)
            return [float((y - x).norm() / x.norm()) for x, y in ((a.video, b.video), (a.audio, b.audio))]

    before = velocity_change()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(40):
        opt.zero_grad()
        time_code_roughness(model, batch.t).backward()
        opt.step()
    after = velocity_change()
    assert all(a < 0.3 * b for a, b in zip(after, before)), (before, after)


def test_channel_weights_follow_the_codec_scale_with_a_mean_of_one():
    std = torch.tensor([8.0, 4.0, 2.0, 1.0])
    assert channel_weights(std, 0.0) is None
    for power in (1.0, 2.0):
        w = channel_weights(std, power).flatten()
        assert w.shape == (4,) and abs(float(w.mean()) - 1) < 1e-6
        assert torch.allclose(w[:-1] / w[1:], torch.full((3,), 2.0 ** power))


def test_channel_weighted_video_loss_is_the_weighted_mean_of_the_squared_errors():
    """The weighted video loss equals the explicit mean over the generated elements of w_c (v - target)^2,
    and with equal weights it is the unweighted loss."""
    torch.manual_seed(0)
    model = UniAVGenModel(MICRO).eval()
    batch = build_batch([example(i) for i in range(3)], torch.Generator().manual_seed(5), MixConfig(), MICRO.text_len)
    c = batch.video.shape[1]
    w = channel_weights(torch.linspace(3.0, 0.5, c), 2.0)
    with torch.no_grad():
        plain = losses(model, batch, MixConfig(fam_weight=0))["video"]
        same = losses(model, batch, MixConfig(fam_weight=0), torch.ones(1, c, 1, 1, 1))["video"]
        weighted = losses(model, batch, MixConfig(fam_weight=0), w)["video"]
        out = model(batch.video, batch.audio, batch.t, batch.cond, batch.switches)
    err = (out.video[:, :, 1:] - batch.target_video).square()
    mask = batch.video_weight.expand_as(err)
    expected = (err * w * mask).sum() / mask.sum()
    assert torch.allclose(same, plain, rtol=1e-6) and torch.allclose(weighted, expected, rtol=1e-5)
    assert not torch.allclose(weighted, plain, rtol=1e-3)


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
    # the audio-driven continuation: a prior clip's frames and the whole mel clean, the later frames generated
    a2v_cont = build_batch(examples, gen(), only("a2v_continuation"), MICRO.text_len)
    assert a2v_cont.audio_weight.sum() == 0 and a2v_cont.cond.audio_cond_frames == (MEL,) * 8
    assert a2v_cont.cond.video_cond_frames == cont.cond.video_cond_frames       # the same draw of prior frames
    for i, k in enumerate(a2v_cont.cond.video_cond_frames):
        assert a2v_cont.video_weight[i, 0, :, 0, 0].tolist() == [0.0] * k + [1.0] * (FRAMES - k)
        assert a2v_cont.cond.ref_lens[i] == 0
    # the dubbing continuation: every frame clean, the rows the same prior frames cover clean, the rest generated
    v2a_cont = build_batch(examples, gen(), only("v2a_continuation"), MICRO.text_len)
    assert v2a_cont.video_weight.sum() == 0 and v2a_cont.cond.video_cond_frames == (FRAMES,) * 8
    assert v2a_cont.cond.audio_cond_frames == cont.cond.audio_cond_frames
    for i, m in enumerate(v2a_cont.cond.audio_cond_frames):
        assert 0 < m < MEL and v2a_cont.audio_weight[i, :, 0].tolist() == [0.0] * m + [1.0] * (MEL - m)
        assert torch.equal(v2a_cont.cond.cond_mel[i, :m], examples[i].mel[:m])
        assert v2a_cont.cond.ref_lens[i] == 0
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
    with pytest.raises(ValueError, match='export_format = "fp8": must be one of "fp32", "fp16", "bf16"'):
        dataclasses.replace(cfg, export_format="fp8")


# ------------------------------------------------------------------------ checked before any long work

FIELD_CASES = [pytest.param(section, f.name, value, id=f"{section or 'top'}.{f.name}={value!r}")
               for section, kind in {None: TrainConfig, **SECTIONS}.items() for f in dataclasses.fields(kind)
               if f.name not in SECTIONS for value in bad_values(f)]


@pytest.mark.parametrize("section, name, value", FIELD_CASES)
def test_every_wrong_config_value_is_named(section, name, value):
    """Every field of every section, with values of the wrong type, outside each bound, NaN or infinite: one
    FieldError naming the section, the field and the value."""
    with pytest.raises(FieldError) as caught:
        TrainConfig.from_dict(with_changes(TINY_RUN, section, **{name: value}))
    assert str(caught.value).startswith(f"[{section}] {name} = " if section else f"{name} = "), caught.value
    assert caught.value.field == name and ": must be " in str(caught.value)


def write_run(tmp_path, raw=TINY_RUN):
    path = tmp_path / "run.toml"
    path.write_text(toml_text(raw))
    return path


def refused(tmp_path, capsys, *argv) -> str:
    """The command line ends with exit status 2 and one `error:` line, having built, trained and saved nothing."""
    assert train_cli.main([str(a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, err
    made = [tmp_path / "data" / "codec.safetensors", tmp_path / "data" / "train.safetensors",
            tmp_path / "run" / "last.safetensors"]
    assert not any(p.is_file() for p in made), made
    return err


@pytest.mark.parametrize("section, changes, named", [
    ("optim", {"lr": "1e-3"}, '[optim] lr = "1e-3": must be a finite number in (0, 1]'),
    (None, {"name": 5}, "name = 5: must be a file name"),
    (None, {"name": "../elsewhere"}, 'name = "../elsewhere": must be a file name'),
    (None, {"log_every": 0}, "log_every = 0: must be an integer from 1"),
    (None, {"checkpoint_every": -5}, "checkpoint_every = -5"),
    (None, {"threads": -1}, "threads = -1: must be an integer from 0 to 1024"),
    (None, {"device": "tpu"}, 'device = "tpu": must be "auto", "cpu", "cuda" or "cuda:N"'),
    ("optim", {"steps": -1}, "[optim] steps = -1: must be an integer from 1"),
    ("optim", {"steps": 0}, "[optim] steps = 0"),
    ("optim", {"batch_size": "16"}, '[optim] batch_size = "16": must be an integer from 1 to 65536'),
    ("optim", {"grad_accum": 0}, "[optim] grad_accum = 0"),
    ("optim", {"warmup": -1}, "[optim] warmup = -1"),
    ("optim", {"ema_decay": 1.0}, "[optim] ema_decay = 1.0: must be a finite number in [0, 1)"),
    ("optim", {"betas": [0.9]}, "[optim] betas = [0.9]: must be a list of 2 finite numbers in [0, 1)"),
    ("optim", {"min_lr_ratio": 2.0}, "[optim] min_lr_ratio = 2.0"),
    ("optim", {"clip": 0.0}, "[optim] clip = 0.0: must be a finite number above 0"),
    ("optim", {"lr": float("nan")}, "[optim] lr = nan"),
    ("optim", {"clip": float("inf")}, "[optim] clip = inf"),
    ("dataset", {"clips": 0}, "[dataset] clips = 0"),
    ("dataset", {"workers": 0}, "[dataset] workers = 0"),
    ("dataset", {"frames": 20}, "[dataset] frames = 20: must be 4k+1"),
    ("dataset", {"size": 100}, "[dataset] size = 100: must be a multiple of 32"),
    ("mix", {"task_weights": {"avg": "x"}}, "[mix] task_weights = {'avg': 'x'}"),
    ("mix", {"task_weights": {"avg": 0}}, "[mix] task_weights = {'avg': 0.0}: must give some task a weight above 0"),
    ("model", {"num_heads": "2"}, '[model] num_heads = "2": must be an integer'),
    ("model", {"text_dim": 32}, "[model] text_dim = 32: must be 16 to match [dataset] caption_dim"),
    ("model", {"in_dim": 16}, "[model] in_dim = 16: must be 48 to match the synthetic training data"),
    ("optim", {"step": 5}, "[optim] has unknown key(s) ['step']"),
])
def test_the_command_line_refuses_a_wrong_config_before_any_work(tmp_path, capsys, section, changes, named):
    err = refused(tmp_path, capsys, write_run(tmp_path, with_changes(TINY_RUN, section, **changes)))
    assert named in err
    assert not (tmp_path / "run").exists()


def test_a_device_that_is_not_there_is_refused(tmp_path, capsys):
    err = refused(tmp_path, capsys, write_run(tmp_path, with_changes(TINY_RUN, None, device="cuda:99")))
    assert 'device = "cuda:99": this machine has' in err and 'set device = "cpu" or "auto"' in err


@pytest.fixture
def little_memory(monkeypatch):
    """8 GiB available, whatever the machine has."""
    monkeypatch.setattr(budget, "available_memory", lambda device: 8 * 2 ** 30)


@pytest.mark.parametrize("section, changes, lower", [
    ("optim", {"batch_size": 65536}, "lower [optim] batch_size to"),
    ("dataset", {"clips": 4_000_000}, "lower [dataset] clips to"),
    ("dataset", {"frames": 481, "size": 4096}, "lower [dataset] frames or size"),
])
def test_a_run_larger_than_the_memory_is_refused_with_what_to_lower(tmp_path, capsys, little_memory, section, changes,
                                                                   lower):
    raw = with_changes(TINY_RUN, section, **changes)
    err = refused(tmp_path, capsys, write_run(tmp_path, raw))
    assert "needs about" in err and "but 8.0 GiB is available" in err and lower in err
    assert not (tmp_path / "run").exists()
    suggested = re.search(r"to (\d+) or less", err)
    if suggested:                                   # the suggestion fits
        key = "batch_size" if section == "optim" else "clips"
        cfg = TrainConfig.from_dict(with_changes(raw, section, **{key: int(suggested.group(1))}))
        budget.check(cfg.model, cfg.dataset, cfg.optim.batch_size, torch.device("cpu"), build=True)


def test_the_memory_estimate_stays_above_a_measured_step():
    """configs/uniavgen_mini_v1.toml: one clip of a batch took 85 MB in a measured CPU step; the estimate must
    cover it without refusing runs that fit (within 3x)."""
    cfg = TrainConfig.from_toml(REPO / "configs" / "uniavgen_mini_v1.toml")
    need = budget.needs(cfg.model, cfg.dataset, cfg.optim.batch_size, build=True)
    assert 85e6 <= need.per_clip <= 3 * 85e6, need
    assert need.build > 3 * need.training_set > 0


@pytest.fixture
def checkpoint(tmp_path, grad_enabled):
    """A checkpoint of the tiny run after one step (optimizer state included)."""
    cfg = TrainConfig.from_dict(TINY_RUN, base=tmp_path)
    trainer = Trainer(cfg, [example(i) for i in range(2)])
    trainer.train_step()
    return trainer.save(tmp_path / "saved" / "ckpt.safetensors")


def test_steps_out_of_range_or_below_the_checkpoint_are_refused(tmp_path, capsys, checkpoint):
    run = write_run(tmp_path)
    assert "--steps -3: must be from 0" in refused(tmp_path, capsys, run, "--steps", "-3")
    err = refused(tmp_path, capsys, run, "--resume", checkpoint, "--steps", "0")
    assert "--steps 0 is below the checkpoint's step 1" in err and "give --steps 2 or more" in err


def damage(path: Path, how: str) -> None:
    with safe_open(str(path), framework="pt") as f:
        tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
    some = sorted(k for k in tensors if k.startswith("optim/exp_avg_sq/"))[0]
    if how == "cut":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(bytes(range(256)) * 64)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "another kind":
        save_file({"weight": torch.zeros(3)}, str(path), metadata={"format": "something else"})
    elif how == "no optimizer moment":
        save_file({k: v for k, v in tensors.items() if k != some}, str(path), metadata=meta)
    elif how == "wrong shape":
        key = sorted(k for k in tensors if k.startswith("model/"))[3]
        save_file({**tensors, key: torch.zeros(7, 3)}, str(path), metadata=meta)
    elif how == "integer tensor":
        save_file({**tensors, some: tensors[some].int()}, str(path), metadata=meta)
    elif how == "unknown parameter":
        save_file({**tensors, "optim/exp_avg/blocks.99.x": torch.zeros(2)}, str(path), metadata=meta)
    elif how == "bad step":
        save_file(tensors, str(path), metadata={**meta, "step": "three"})
    elif how == "bad history":
        save_file(tensors, str(path), metadata={**meta, "history": "[1, 2"})
    elif how == "a folder":
        path.unlink()
        path.mkdir()


DAMAGES = ["cut", "garbage", "empty", "another kind", "no optimizer moment", "wrong shape", "integer tensor",
           "unknown parameter", "bad step", "bad history", "a folder"]


@pytest.mark.parametrize("how", DAMAGES)
def test_resuming_from_a_damaged_checkpoint_is_refused_before_any_work(tmp_path, capsys, checkpoint, how):
    damage(checkpoint, how)
    err = refused(tmp_path, capsys, write_run(tmp_path), "--resume", checkpoint)
    assert str(checkpoint) in err


@pytest.mark.parametrize("how", DAMAGES + ["nan"])
def test_a_trainer_refuses_a_damaged_checkpoint_and_stays_as_it_was(tmp_path, checkpoint, how):
    if how == "nan":
        with safe_open(str(checkpoint), framework="pt") as f:
            tensors, meta = {k: f.get_tensor(k) for k in f.keys()}, f.metadata()
        key = sorted(tensors)[5]
        tensors[key].view(-1)[0] = float("nan")
        save_file(tensors, str(checkpoint), metadata=meta)
    else:
        damage(checkpoint, how)
    trainer = Trainer(TrainConfig.from_dict(TINY_RUN, base=tmp_path), [example(0)])
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    with pytest.raises(ValueError, match=re.escape(str(checkpoint))):
        trainer.resume(checkpoint)
    assert trainer.step == 0 and not trainer.optimizer.state
    assert all(torch.equal(v, before[k]) for k, v in trainer.model.state_dict().items())


def test_outputs_that_cannot_be_written_are_found_before_any_work(tmp_path, capsys):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    cases = [
        (with_changes(TINY_RUN, None, out="a-file/run"), "cannot write into the output folder (out)"),
        (with_changes(TINY_RUN, None, out="a-file"), "out) " + str(blocker) + " is a file: give a folder"),
        (with_changes(TINY_RUN, "dataset", codec="a-file/codec.safetensors"),
         "the folder of the video codec ([dataset] codec) " + str(blocker) + " is a file: give a folder"),
        (with_changes(TINY_RUN, "dataset", path="a-file/deeper/train.safetensors"),
         "cannot write into the folder of the training set ([dataset] path)"),
        (with_changes(TINY_RUN, "dataset", path="."), "is a folder, not a training set file"),
    ]
    for raw, expect in cases:
        assert expect in refused(tmp_path, capsys, write_run(tmp_path, raw))
    assert blocker.read_text() == "mine"
    (tmp_path / "run" / "last.safetensors").mkdir(parents=True)
    assert "the trainer writes its checkpoint there" in refused(tmp_path, capsys, write_run(tmp_path))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions that apply")
def test_a_read_only_output_folder_is_found_before_any_work(tmp_path, capsys):
    with read_only(tmp_path / "run"):
        assert "cannot write into the output folder" in refused(tmp_path, capsys, write_run(tmp_path))


def test_a_cached_training_set_or_codec_of_other_settings_is_refused(tmp_path, capsys):
    (tmp_path / "data").mkdir()
    fake = tmp_path / "data" / "train.safetensors"
    save_file({"latents": torch.zeros(1)}, str(fake), metadata={"uniavgen_training_set": "1", "seeds": "[0, 1]",
                                                                "frames": "21", "size": "64", "caption_dim": "16"})
    assert train_cli.main([str(write_run(tmp_path))]) == 2
    err = capsys.readouterr().err
    assert "was built with frames = 21, the config says 17: delete it" in err
    fake.write_bytes(b"\x00" * 100)
    assert train_cli.main([str(write_run(tmp_path))]) == 2
    assert "is not a readable training set" in capsys.readouterr().err
    fake.unlink()
    (tmp_path / "data" / "codec.safetensors").write_bytes(b"not a codec")
    assert train_cli.main([str(write_run(tmp_path))]) == 2
    assert "codec.safetensors is not a readable safetensors file" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "data").iterdir()) == ["codec.safetensors"]
    assert not (tmp_path / "run").exists()


def test_a_whole_tiny_run_passes_the_checks_and_resumes(tmp_path, capsys):
    """The checks refuse nothing that works: codec, set, one step, a refused resume, the last step, export."""
    run = write_run(tmp_path)
    assert train_cli.main([str(run), "--steps", "1"]) == 0
    export = tmp_path / "run" / "export" / "tiny.safetensors"
    assert (tmp_path / "run" / "last.safetensors").is_file() and not export.exists()
    capsys.readouterr()
    assert train_cli.main([str(run), "--resume", "--steps", "0"]) == 2
    assert "below the checkpoint's step 1" in capsys.readouterr().err
    assert train_cli.main([str(run), "--resume"]) == 0
    assert "resumed at step 1" in capsys.readouterr().err
    assert load_model(export).config.dim == 64

"""Official configuration, config inference, forward-path invariants and precision modes."""
import re

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from helpers import REPO, rel_l2
from helpers import random_request
from uniavgen_core.model.conditioning import ConditionBatch, Switches
from uniavgen_core.model.config import UniAVGenConfig
from uniavgen_core.checkpoint.loading import load_model, official_key_shapes, read_shapes, checkpoint_files
from uniavgen_core.model.dit import Finish, LayerPairHook, UniAVGenModel
from uniavgen_core.sampling import Task


def test_official_configuration_key_set_and_parameter_count():
    with torch.device("meta"):
        model = UniAVGenModel(UniAVGenConfig.official())
    state = model.state_dict()
    assert len(state) == 2036
    assert sum(t.numel() for t in state.values()) == 7_056_424_223
    assert tuple(state["time_projection.1.weight"].shape) == (18432, 3072)
    assert tuple(state["time_projection_audio.1.weight"].shape) == (9216, 1536)
    assert tuple(state["text_embedding.text_embed.weight"].shape) == (2546, 512)
    assert tuple(state["text_proj.weight"].shape) == (1536, 512) and "text_proj.bias" not in state
    assert tuple(state["a2v_blocks.0.mask_head.modulation"].shape) == (1, 2, 3072)
    assert "blocks.0.norm1.weight" not in state and "audio_padding" in state


def test_config_inferred_from_shapes_alone_equals_config_json(golden_dir):
    files, config_json = checkpoint_files(golden_dir)
    inferred = UniAVGenConfig.from_shapes(read_shapes(files))       # no hints: heads from shapes
    assert inferred == UniAVGenConfig.from_dict(config_json)
    assert (inferred.num_heads, inferred.audio_num_heads, inferred.head_dim) == (3, 2, 32)
    assert UniAVGenConfig.from_shapes(official_key_shapes()) == UniAVGenConfig.official()


def test_config_json_heads_are_honoured(golden_dir, tmp_path):
    import json
    for f in golden_dir.iterdir():
        (tmp_path / f.name).symlink_to(f)
    (tmp_path / "config.json").unlink()
    cfg = json.loads((golden_dir / "config.json").read_text())
    cfg.update(num_heads=1, audio_num_heads=1)        # head dim 96 / 64 would differ: rejected clearly
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="head dims differ"):
        load_model(tmp_path)


class DtypeRecorder(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.seen = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves((args, kwargs, out)):
            if isinstance(t, torch.Tensor):
                self.seen.add((t.dtype, str(func)))
        return out


def _forward(model, requests, dtype=torch.float32):
    batch = ConditionBatch.stack([r.condition for r in requests], requests[0].latent_frames, requests[0].mel_frames,
                                 model.config.text_len, "cpu", dtype)
    gen = torch.Generator().manual_seed(3)
    video = torch.randn(len(requests), 48, requests[0].latent_frames, *requests[0].latent_size, generator=gen)
    audio = torch.randn(len(requests), requests[0].mel_frames, 80, generator=gen)
    return model(video, audio, torch.tensor([640.0] * len(requests)), batch,
                 Switches.uniform(len(requests), skip_layer=3), capture_masks=True)


def test_forward_has_no_float64_or_complex_arithmetic(tiny_model):
    from uniavgen_core.model import dit, rope, sinusoid
    for cached in (rope.video_table, rope.audio_table, rope.a2v_key_table, sinusoid.timestep_frequencies,
                   dit.window_index, sinusoid.speech_positions):
        cached.cache_clear()                           # the cold path (table building) counts too
    reqs = [random_request(Task.RAVG, 1, ref_len=20), random_request(Task.A2V, 2, cond_len=30)]
    with DtypeRecorder() as rec:
        _forward(tiny_model, reqs)
    bad = sorted({(str(d), f) for d, f in rec.seen if d in (torch.float64, torch.complex64, torch.complex128)})
    assert not bad, bad


def test_forward_modules_have_no_host_syncs():
    pattern = re.compile(r"\.item\(\)|\.tolist\(\)|\.cpu\(\)|\.numpy\(\)|torch\.cuda\.synchronize")
    for path in sorted((REPO / "uniavgen_core" / "model").glob("*.py")):
        found = pattern.search(path.read_text())
        assert not found, f"{path.name}: {found.group()}"


def test_face_masks_are_returned_for_display(tiny_model):
    out = _forward(tiny_model, [random_request(Task.AVG, 4)])
    masks = out.face_masks
    assert masks.shape == (1, 15, 4, 2, 3)
    assert masks.dtype == torch.float32 and bool(((masks > 0) & (masks < 1)).all())


def test_bf16_weights_with_float32_compute_and_bf16_compute(golden_dir, tiny_model):
    reqs = [random_request(Task.AVG, 5)]
    ref = _forward(tiny_model, reqs)
    upcast = load_model(golden_dir, compute_dtype=torch.float32)          # weights stay bf16 as stored
    assert upcast.patch_embedding.weight.dtype == torch.bfloat16
    same = _forward(upcast, reqs)
    assert rel_l2(same.video, ref.video) < 1e-6 and rel_l2(same.audio, ref.audio) < 1e-6
    bf16 = load_model(golden_dir)                                          # the file's dtype, bf16 compute
    assert bf16.compute_dtype == torch.bfloat16
    low = _forward(bf16, reqs, torch.bfloat16)
    assert low.video.dtype == torch.float32 and torch.isfinite(low.video).all()
    assert rel_l2(low.video, ref.video) < 0.05 and rel_l2(low.audio, ref.audio) < 0.05


def test_bad_latent_shapes_are_reported(tiny_model):
    req = random_request(Task.AVG, 6)
    batch = ConditionBatch.stack([req.condition], 4, 70, 512)
    with pytest.raises(ValueError, match="multiple of 2x2"):
        tiny_model(torch.randn(1, 48, 4, 5, 6), torch.randn(1, 70, 80), torch.tensor(500.0), batch,
                   Switches.uniform(1))
    with pytest.raises(ValueError, match="stacked for another latent shape"):
        tiny_model(torch.randn(1, 48, 6, 4, 6), torch.randn(1, 70, 80), torch.tensor(500.0), batch,
                   Switches.uniform(1))
    with pytest.raises(ValueError, match=r"audio must be \[batch=1"):
        tiny_model(torch.randn(1, 48, 4, 4, 6), torch.randn(1, 70, 40), torch.tensor(500.0), batch,
                   Switches.uniform(1))


def test_padding_rows_of_the_caption_are_attended_as_one_weighted_row(tiny_model):
    """The model keeps a caption's real rows plus one padding row with weight log(m); the same
    captions given with all 512 zero rows spelt out (no shortcut) must give the same output."""
    import dataclasses
    reqs = [random_request(Task.AVG, 7, caption_len=9), random_request(Task.AVG, 8, caption_len=0),
            random_request(Task.AVG, 9, caption_len=30)]
    short = _forward(tiny_model, reqs)
    full_caption = lambda r: dataclasses.replace(
        r, condition=dataclasses.replace(r.condition, caption=torch.cat(
            [r.condition.caption, torch.zeros(512 - r.condition.caption.shape[0], 64)])))
    full = _forward(tiny_model, [full_caption(r) for r in reqs])
    assert rel_l2(short.video, full.video) < 1e-5 and rel_l2(short.audio, full.audio) < 1e-5
    tiny_model.caption_bucket = 128                     # as compiled models round the rows
    try:
        bucketed = _forward(tiny_model, reqs)
    finally:
        tiny_model.caption_bucket = 1
    assert rel_l2(bucketed.video, full.video) < 1e-5
    # not vacuous: the padding rows matter (dropping them changes the output)
    from uniavgen_core.model import dit
    original = dit.caption_bias
    try:
        dit.caption_bias = lambda lens, *a: torch.tensor([[0.0] * n + [float("-inf")] * (31 - n) for n in lens])
        dropped = _forward(tiny_model, reqs)
    finally:
        dit.caption_bias = original
    assert rel_l2(dropped.video[[0, 2]], full.video[[0, 2]]) > 1e-3    # sample 1 has no real row left


class Recorder(LayerPairHook):
    """Sees every layer pair: the context, and the states before and after."""

    def __init__(self):
        self.seen, self.ctx, self.last = [], None, None

    def before(self, layer, ctx, video, audio):
        self.ctx = ctx
        self.seen.append(("before", layer, video.shape, audio.shape))

    def after(self, layer, ctx, video, audio):
        self.seen.append(("after", layer, video.shape, audio.shape))
        self.last = (video.clone(), audio.clone())


def _with_hooks(model, hooks, requests):
    model.pair_hooks[:] = hooks
    try:
        return _forward(model, requests)
    finally:
        model.pair_hooks.clear()


MIXED = [random_request(Task.RAVG, 1, ref_len=20), random_request(Task.RAVG, 2, ref_len=7)]  # uneven audio streams


def test_the_forward_context_declares_every_field_and_per_token_fields_run_along_their_axis(tiny_model):
    from uniavgen_core.model.dit import (AUDIO_ROWS, AUDIO_TOKENS, GENERATED_FRAMES, VIDEO_FRAMES, VIDEO_TOKENS,
                                         ForwardContext)
    recorder = Recorder()
    _with_hooks(tiny_model, [recorder], MIXED)
    ctx = recorder.ctx
    with pytest.raises(AttributeError):
        ctx.undeclared = 1                                     # slots: a stage cannot add a field ad hoc
    optional = {"caption_bias", "speech_valid",                # None when they save nothing
                "sequence", "v_key_mask"}                      # or off a sequence-parallel forward
    assert [f for f in ForwardContext.__dataclass_fields__ if getattr(ctx, f) is None and f not in optional] == []
    tokens = {VIDEO_TOKENS: (1 + ctx.frames) * ctx.hp * ctx.wp, VIDEO_FRAMES: 1 + ctx.frames,
              GENERATED_FRAMES: ctx.frames, AUDIO_TOKENS: ctx.layout.length, AUDIO_ROWS: ctx.n_audio}
    split = ForwardContext.split_fields()
    assert {kind for kind, _ in split.values()} == set(tokens)
    for name, (kind, axis) in split.items():                   # how a sequence-parallel forward would cut them
        for tensor in (getattr(ctx, name) if isinstance(getattr(ctx, name), tuple) else (getattr(ctx, name),)):
            assert tensor.shape[axis] == tokens[kind], (name, tensor.shape, kind)
    assert tokens[AUDIO_TOKENS] == 20 + 70 and tokens[VIDEO_TOKENS] == 5 * 2 * 3


def test_layer_pair_hooks_see_every_pair_and_can_end_the_loop_like_a_residual_cache(tiny_model):
    plain = _forward(tiny_model, MIXED)
    recorder = Recorder()
    watched = _with_hooks(tiny_model, [recorder], MIXED)
    assert all(torch.equal(a, b) for a, b in zip(watched[:2], plain[:2]))        # watching changes nothing
    layers = [s[1] for s in recorder.seen if s[0] == "after"]
    assert layers == [i for i in range(tiny_model.config.num_layers) if i != 3]  # layer 3 is skipped (SLG)
    assert recorder.seen[0][2:] == ((2, 5 * 6, tiny_model.config.dim), (2, 90, tiny_model.config.audio_dim))

    class ReuseRest(LayerPairHook):
        """After the first pair, jump to the final states of an earlier forward (a first-block cache
        that judged the step unchanged)."""
        def after(self, layer, ctx, video, audio):
            return Finish(*recorder.last) if layer == 0 else None

    counter = Recorder()
    reused = _with_hooks(tiny_model, [ReuseRest(), counter], MIXED)
    assert [s[1] for s in counter.seen] == [0]                 # no pair after the first ran
    assert all(torch.equal(a, b) for a, b in zip(reused[:2], plain[:2]))

    class Zero(LayerPairHook):
        def before(self, layer, ctx, video, audio):
            return (torch.zeros_like(video), audio) if layer == 2 else None

    changed = _with_hooks(tiny_model, [Zero()], MIXED)
    assert not torch.equal(changed.video, plain.video)

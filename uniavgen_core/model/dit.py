"""The UniAVGen dual-branch DiT (docs/MODEL.md §2-§5), batched, with the official state-dict keys."""
from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from .attention import length_mask, to_device, use_backend
from .block_swap import BlockSwap
from .conditioning import ConditionBatch, Switches
from .config import UniAVGenConfig
from .interaction import AudioToVideo, VideoToAudio, a2v_windows, v2a_plan
from .layers import DiTBlock, ModulatedHead
from .ops import default_ops
from .rope import a2v_key_table, audio_table, video_table
from .sinusoid import timestep_sinusoid
from .speech_text import SpeechTextEmbedding


class ModelOutput(NamedTuple):
    video: torch.Tensor                  # [B, C, 1 + F, h, w] float32 velocity, reference frame included
    audio: torch.Tensor                  # [B, S, 80] float32 velocity
    face_masks: torch.Tensor | None      # [B, interaction layers, F, h/2, w/2] float32, when captured


def _mlp(ops, d_in, d_hidden, d_out, act):
    return nn.Sequential(ops.Linear(d_in, d_hidden), act, ops.Linear(d_hidden, d_out))


@functools.lru_cache(maxsize=32)
def window_index(n_audio: int, latent_frames: int, window: int, device) -> torch.Tensor:
    """[F, window] audio token index of each latent frame's A2V window, on `device` (cached)."""
    return to_device(a2v_windows(n_audio, latent_frames, window), device)


@functools.lru_cache(maxsize=32)
def caption_bias(lens: tuple, text_len: int, bucket: int, device) -> torch.Tensor | None:
    """Captions are zero padded to `text_len` rows before the caption MLP (docs/MODEL.md §3.3), so every
    padding row becomes the same cross-attention key and value. Attention over m such rows equals
    attention over one of them with its logit raised by log(m). Keep each sample's real rows and
    one padding row, with the batch's row count rounded up to a multiple of `bucket`; the rows a
    sample does not use are masked. Returns the [B, rows] float32 logit bias, or None when that
    saves nothing. On CUDA it returns None: there the fused attention kernels over all rows cost
    less than the materialised float32 logits of the biased path (at 20,746 video tokens, about
    0.5 ms against 1 ms a layer by memory traffic)."""
    rows = -(-(max(lens) + 1) // bucket) * bucket
    if rows >= text_len or torch.device(device).type == "cuda":
        return None
    bias = np.full((len(lens), rows), -np.inf, dtype=np.float32)
    for i, n in enumerate(lens):
        bias[i, :n] = 0.0
        bias[i, n] = np.log(text_len - n)
    return to_device(bias, device)


class AudioLayout:
    """Where each sample's tokens sit in the audio stream [ref (L_ref) | target (S) | padding].
    Samples may differ in reference length; with equal lengths everything is a slice."""

    def __init__(self, ref_lens: tuple, n_audio: int, device):
        self.ref_lens, self.n_audio = ref_lens, n_audio
        self.length = max(ref_lens) + n_audio
        self.uniform = len(set(ref_lens)) == 1
        self.key_mask = length_mask([r + n_audio for r in ref_lens], self.length, device)
        if not self.uniform:
            refs, pos = np.asarray(ref_lens)[:, None], np.arange(self.length)[None]
            # index into [ref padded to max(ref_lens) | target]; padding positions read row 0
            seq = np.where(pos < refs, pos, np.where(pos < refs + n_audio, max(ref_lens) + pos - refs, 0))
            self.seq_index = to_device(seq, device)
            self.target_index = to_device(refs + np.arange(n_audio)[None], device)

    def assemble(self, ref, target):
        """ref [B, R, C] (zero padded), target [B, S, C] -> [B, length, C]."""
        if self.uniform:
            return torch.cat([ref[:, : self.ref_lens[0]], target], dim=1)
        both = torch.cat([ref, target], dim=1)
        return torch.gather(both, 1, self.seq_index[..., None].expand(-1, -1, both.shape[-1]))

    def target(self, x):
        if self.uniform:
            return x[:, self.ref_lens[0]: self.ref_lens[0] + self.n_audio]
        return torch.gather(x, 1, self.target_index[..., None].expand(-1, -1, x.shape[-1]))

    def add_to_target(self, x, delta):
        """x with delta added to the target rows: in place at inference, out of place when
        gradients are recorded."""
        start = self.ref_lens[0]
        if torch.is_grad_enabled():
            if self.uniform:
                return torch.cat([x[:, :start], x[:, start: start + self.n_audio] + delta,
                                  x[:, start + self.n_audio:]], dim=1)
            return x.scatter_add(1, self.target_index[..., None].expand(-1, -1, x.shape[-1]), delta)
        if self.uniform:
            x[:, start: start + self.n_audio] += delta
        else:
            x.scatter_add_(1, self.target_index[..., None].expand(-1, -1, x.shape[-1]), delta)
        return x


# The token axes a field of the forward context runs along (what a sequence-parallel forward splits):
VIDEO_TOKENS = "video tokens"          # (1 + F) * hp * wp: the reference frame's patches, then each frame's
VIDEO_FRAMES = "video frames"          # 1 + F latent frames, the reference first
GENERATED_FRAMES = "generated frames"  # F latent frames
AUDIO_TOKENS = "audio tokens"          # the audio stream [reference mel | target | padding] (AudioLayout.length)
AUDIO_ROWS = "audio rows"              # n_audio target mel rows


def _field(split: str | None = None, axis: int = 1):
    """A field a stage fills: per token along `axis` when `split` names a token axis (a tuple splits each
    element), else the same for every token (global)."""
    return field(default=None, metadata={"split": split, "axis": axis})


@dataclass(slots=True, eq=False)
class ForwardContext:
    """What one forward computes once and every layer reads, filled by the stages of
    `UniAVGenModel.forward` in order. Every field is declared here (slots: no other attribute can be
    set), and each says whether it runs along a token axis, and which, or holds for all tokens."""
    batch: int
    frames: int                           # F generated latent frames (the reference frame not counted)
    h: int                                # latent height and width, and the patch grid
    w: int
    hp: int
    wp: int
    n_audio: int                          # target mel rows
    dtype: torch.dtype
    device: torch.device
    # prepare
    switches: Switches | None = _field()
    video_cond_frames: torch.Tensor | None = _field()        # [B] leading latent frames that are conditions
    audio_cond_frames: torch.Tensor | None = _field()        # [B] leading mel rows that are conditions
    is_cond_v: torch.Tensor | None = _field(GENERATED_FRAMES, 2)     # [B, 1, F, 1, 1]
    is_cond_a: torch.Tensor | None = _field(AUDIO_ROWS)              # [B, S, 1]
    layout: AudioLayout | None = _field()                            # where each sample's audio tokens sit
    gain_v: torch.Tensor | None = _field(GENERATED_FRAMES)           # [B, F, 1, 1] A2V residual gain
    gain_a: torch.Tensor | None = _field(AUDIO_ROWS)                 # [B, S, 1] V2A residual gain
    a2v_needed: bool = _field()
    v2a_needed: bool = _field()
    skipped: dict | None = _field()                                  # layer -> [B] skip-layer guidance
    # embed_tokens, embed_speech
    caption_bias: torch.Tensor | None = _field()                     # [B, rows] or None (see caption_bias)
    caption: torch.Tensor | None = _field()                          # [B, rows, d]
    speech_valid: torch.Tensor | None = _field()                     # [B, L_speech] or None
    speech: torch.Tensor | None = _field()                           # [B, L_speech, da]
    # embed_times
    e_v: torch.Tensor | None = _field(VIDEO_FRAMES)                  # [B, 1 + F, d]
    e0_v: torch.Tensor | None = _field(VIDEO_FRAMES)                 # [B, 1 + F, 6, d]
    e_a: torch.Tensor | None = _field()                              # [B, 1, da]
    e0_a: torch.Tensor | None = _field()                             # [B, 1, 6, da]
    # attach_positions (the interaction plans read whole sequences)
    v_rope: tuple | None = _field(VIDEO_TOKENS, 0)                   # (cos, sin) [(1 + F) hp wp, hd / 2]
    a_rope: tuple | None = _field(AUDIO_TOKENS, 0)
    s_rope: tuple | None = _field()
    spatial: tuple | None = _field()
    windows: torch.Tensor | None = _field()
    k_a2v: tuple | None = _field()
    plan: object = _field()
    # a sequence-parallel forward (parallel/ulysses.py) fills these in the context of one rank's frames
    sequence: object = _field()          # the split: gather(x), local(x) and the whole forward's context
    v_key_mask: torch.Tensor | None = _field()      # [B, padded video tokens] keys of the video self-attention

    @classmethod
    def split_fields(cls) -> dict[str, tuple[str, int]]:
        """{field: (token axis name, tensor axis)} of the per-token fields."""
        return {f.name: (f.metadata["split"], f.metadata["axis"]) for f in fields(cls)
                if f.metadata.get("split")}


class Finish(NamedTuple):
    """Returned by a layer-pair hook's `after` to end the layer loop with these states (e.g. a cache
    that reuses the residual of the layers left)."""
    video: torch.Tensor
    audio: torch.Tensor


class LayerPairHook:
    """Called around every layer pair a forward runs (its blocks and, after an interaction layer, the
    interaction), with the pair index, the forward context and the hidden states of both branches
    ([B, (1 + F) hp wp, d] video, [B, audio tokens, da] audio). Each method returns None to leave
    the states as they are or new (video, audio) states; `after` may return Finish(video, audio)
    to skip the pairs left. Subclass and override what you need; add to `UniAVGenModel.pair_hooks`."""

    def before(self, layer: int, ctx: ForwardContext, video: torch.Tensor, audio: torch.Tensor):
        return None

    def after(self, layer: int, ctx: ForwardContext, video: torch.Tensor, audio: torch.Tensor):
        return None


class UniAVGenModel(nn.Module):
    def __init__(self, config: UniAVGenConfig | None = None, ops=None):
        super().__init__()
        cfg = self.config = config or UniAVGenConfig.official()
        ops = ops or default_ops()
        if cfg.head_dim != cfg.audio_head_dim:
            raise ValueError(f"video and audio head dims differ ({cfg.head_dim} vs {cfg.audio_head_dim}): "
                             "the cross-modal rotary tables need one head dim")
        gelu, silu = nn.GELU(approximate="tanh"), nn.SiLU()
        d, da = cfg.dim, cfg.audio_dim
        self.compute_dtype = torch.float32
        self.attention_backend = "sdpa"        # see attention.resolve_backend
        self.block_swap = None                 # see set_block_swap
        self.caption_bucket = 1                # caption rows kept: a multiple of this (see caption_bias)
        self.pair_hooks: list[LayerPairHook] = []
        self.sequence_parallel = None          # see parallel/ulysses.SequenceParallel
        # video embeddings
        self.patch_embedding = ops.Conv3d(cfg.in_dim, d, kernel_size=cfg.patch_size, stride=cfg.patch_size)
        self.text_embedding_video = _mlp(ops, cfg.text_dim, d, d, gelu)   # caption MLP (docs/MODEL.md §2.2)
        self.time_embedding = _mlp(ops, cfg.freq_dim, d, d, silu)
        self.time_projection = nn.Sequential(nn.SiLU(), ops.Linear(d, 6 * d))
        # audio embeddings
        self.audio_embedding = _mlp(ops, cfg.in_audio_dim, da, da, gelu)
        self.audio_padding = nn.Parameter(torch.zeros(da))
        self.text_embedding = SpeechTextEmbedding(cfg.speech_vocab_size, cfg.speech_dim, cfg.speech_conv_layers,
                                                  cfg.speech_conv_mult, ops)
        self.text_proj = ops.Linear(cfg.speech_dim, da, bias=False)
        self.time_embedding_audio = _mlp(ops, cfg.freq_dim, da, da, silu)
        self.time_projection_audio = nn.Sequential(nn.SiLU(), ops.Linear(da, 6 * da))
        # transformer stacks and interactions
        block = lambda dim, ffn, heads: DiTBlock(dim, ffn, heads, cfg.qk_norm, cfg.cross_attn_norm, cfg.eps, ops)
        self.blocks = nn.ModuleList(block(d, cfg.ffn_dim, cfg.num_heads) for _ in range(cfg.num_layers))
        self.audio_blocks = nn.ModuleList(block(da, cfg.audio_ffn_dim, cfg.audio_num_heads)
                                          for _ in range(cfg.num_layers))
        n_inter = len(cfg.interaction_layers)
        self.a2v_blocks = nn.ModuleList(AudioToVideo(d, da, cfg.num_heads, cfg.qk_norm, cfg.eps, ops)
                                        for _ in range(n_inter))
        self.v2a_blocks = nn.ModuleList(VideoToAudio(da, d, cfg.audio_num_heads, cfg.qk_norm, cfg.eps, ops)
                                        for _ in range(n_inter))
        self.head = ModulatedHead(d, cfg.out_dim * int(np.prod(cfg.patch_size)), cfg.eps, ops)
        self.head_audio = ModulatedHead(da, cfg.out_dim_audio, cfg.eps, ops)
        # layer -> index of the interaction blocks that follow it (docs/MODEL.md §1.4)
        self.interaction_index = {layer: i for i, layer in enumerate(cfg.interaction_layers)}

    def layer_pair(self, layer: int) -> list[nn.Module]:
        """The modules of layer pair `layer`: the video and audio blocks and, after an interaction layer, its
        A2V and V2A blocks. The unit the forward runs, block swap streams and the memory estimate counts."""
        modules = [self.blocks[layer], self.audio_blocks[layer]]
        k = self.interaction_index.get(layer)
        if k is not None:
            modules += [self.a2v_blocks[k], self.v2a_blocks[k]]
        return modules

    def set_block_swap(self, count: int, device) -> None:
        """Keep the weights of the last `count` layer pairs on the CPU, streamed to `device` per
        layer (0 turns it off and leaves those weights on the CPU until the model is moved)."""
        if self.block_swap is not None:
            self.block_swap.close()
        self.block_swap = BlockSwap(self, count, device) if count else None

    def compile_blocks(self, backend: str = "inductor", mode: str | None = None) -> None:
        """torch.compile every transformer block (both branches). The blocks share one graph per
        branch and shape, so the first step compiles and later steps and blocks reuse it.
        Caption rows are rounded up to a multiple of 128, so prompts of any length share four graphs.
        With the default inductor backend, each block becomes generated Triton kernels on CUDA (norms,
        modulation and activations fused around the matmuls and attention) and C++ on the CPU; the
        interaction blocks, embeddings and heads stay eager."""
        self.caption_bucket = 128
        for block in list(self.blocks) + list(self.audio_blocks):
            block.compile(backend=backend, mode=mode, dynamic=False, fullgraph=True)

    # ------------------------------------------------------------------ forward
    def forward(self, video: torch.Tensor, audio: torch.Tensor, t: torch.Tensor, cond: ConditionBatch,
                switches: Switches, capture_masks: bool = False) -> ModelOutput:
        """One DiT evaluation (docs/MODEL.md §3) for a batch.

        video [B, C, F, h, w] noisy latents; audio [B, S, 80] noisy normalised mel; t [B] or a
        scalar timestep in [0, 1000]; cond: padded conditioning (`ConditionBatch.stack`);
        switches: per-sample interaction switches and skipped layer.
        """
        with use_backend(self.attention_backend):
            return self._forward(video, audio, t, cond, switches, capture_masks)

    def _forward(self, video, audio, t, cond: ConditionBatch, switches: Switches, capture_masks: bool):
        self._check_inputs(video, audio, cond, switches)
        ctx = self.prepare(video, audio, cond, switches)
        xv, xa = self.embed_tokens(ctx, video, audio, cond)
        self.embed_speech(ctx, cond)
        self.embed_times(ctx, t)
        self.attach_positions(ctx)
        if self.sequence_parallel is not None:
            ctx, xv = self.sequence_parallel.split(ctx, xv)       # this rank's frames of the video tokens
        xv, xa, masks = self.run_layers(ctx, xv, xa, capture_masks)
        return self.heads(ctx, xv, xa, masks)

    def prepare(self, video, audio, cond: ConditionBatch, switches: Switches) -> ForwardContext:
        """The per-forward constants: sizes, which frames and mel rows are conditions, and where each
        sample's interactions write (they write only to generated, non-conditional tokens)."""
        cfg, dtype, dev = self.config, self.compute_dtype, video.device
        b, _, frames, h, w = video.shape
        n_audio = audio.shape[1]
        hp, wp = h // cfg.patch_size[1], w // cfg.patch_size[2]
        ctx = ForwardContext(b, frames, h, w, hp, wp, n_audio, dtype, dev, switches=switches)
        ctx.video_cond_frames = to_device(cond.video_cond_frames, dev)
        ctx.audio_cond_frames = to_device(cond.audio_cond_frames, dev)
        frame = torch.arange(frames, device=dev)
        ctx.is_cond_v = (frame[None] < ctx.video_cond_frames[:, None])[:, None, :, None, None]
        ctx.is_cond_a = (torch.arange(n_audio, device=dev)[None] < ctx.audio_cond_frames[:, None])[..., None]
        ctx.layout = AudioLayout(cond.ref_lens, n_audio, dev)
        # [B, F, 1, 1] and [B, S, 1]: interaction residuals only on generated frames / rows of samples
        # whose switch is on
        a2v_on, v2a_on = to_device(switches.a2v, dev), to_device(switches.v2a, dev)
        ctx.gain_v = ((frame[None] >= ctx.video_cond_frames[:, None]) & a2v_on[:, None]).to(dtype)[..., None, None]
        ctx.gain_a = (ctx.is_cond_a.logical_not() & v2a_on[:, None, None]).to(dtype)
        ctx.a2v_needed = any(a and vc < frames for a, vc in zip(switches.a2v, cond.video_cond_frames))
        ctx.v2a_needed = any(v and ac < n_audio for v, ac in zip(switches.v2a, cond.audio_cond_frames))
        ctx.skipped = {layer: [0 < s == layer for s in switches.skip_layer] for layer in set(switches.skip_layer)}
        return ctx

    def embed_tokens(self, ctx: ForwardContext, video, audio, cond: ConditionBatch):
        """Video tokens [ref | cond frames | noisy frames] (docs/MODEL.md §3.1), the caption, and audio
        tokens [ref mel | cond mel | noisy mel] (§3.2)."""
        cfg, dtype, dev = self.config, ctx.dtype, ctx.device
        x = torch.where(ctx.is_cond_v, cond.cond_latent.to(dtype), video.to(dtype))
        x = torch.cat([cond.ref_latent.to(dtype), x], dim=2)
        xv = self.patch_embedding(x).flatten(2).transpose(1, 2)                       # [B, (1+F)*n, d]
        ctx.caption_bias = caption_bias(cond.caption_lens, cfg.text_len, self.caption_bucket, dev)
        rows = cfg.text_len if ctx.caption_bias is None else ctx.caption_bias.shape[1]
        ctx.caption = self.text_embedding_video(cond.caption[:, :rows].to(dtype))
        target = torch.where(ctx.is_cond_a, cond.cond_mel.to(dtype), audio.to(dtype))
        xa = self.audio_embedding(ctx.layout.assemble(cond.ref_mel.to(dtype), target))
        if ctx.layout.key_mask is not None:
            xa = torch.where(ctx.layout.key_mask[..., None], xa, self.audio_padding.to(xa))
        return xv, xa

    def embed_speech(self, ctx: ForwardContext, cond: ConditionBatch) -> None:
        """The speech-text tokens the audio branch cross-attends to (docs/MODEL.md §3.3)."""
        ctx.speech_valid = length_mask(list(cond.speech_lens), cond.speech_ids.shape[1], ctx.device)
        valid = None if ctx.speech_valid is None else ctx.speech_valid[..., None]
        ctx.speech = self.text_proj(self.text_embedding(cond.speech_ids, valid, ctx.dtype))

    def embed_times(self, ctx: ForwardContext, t: torch.Tensor) -> None:
        """Time embeddings in float32 (docs/MODEL.md §3.4): one per latent frame for video (the reference
        and conditional frames are clean, t = 0), one per sample for audio (0 in A2V)."""
        cfg, dev, b = self.config, ctx.device, ctx.batch
        t = t.to(dev).float().expand(b) if t.dim() == 0 or t.numel() == 1 else t.to(dev).float()
        frames = torch.arange(1 + ctx.frames, device=dev)[None]
        tv = torch.where(frames < 1 + ctx.video_cond_frames[:, None], 0.0, t[:, None])
        ta = torch.where(ctx.audio_cond_frames >= 1, 0.0, t)[:, None]
        ctx.e_v = self.time_embedding(timestep_sinusoid(tv, cfg.freq_dim))                  # [B, 1+F, d]
        ctx.e0_v = self.time_projection(ctx.e_v).unflatten(-1, (6, cfg.dim))
        ctx.e_a = self.time_embedding_audio(timestep_sinusoid(ta, cfg.freq_dim))           # [B, 1, da]
        ctx.e0_a = self.time_projection_audio(ctx.e_a).unflatten(-1, (6, cfg.audio_dim))

    def attach_positions(self, ctx: ForwardContext) -> None:
        """Rotary tables and interaction index plans, cached per shape."""
        cfg, dev = self.config, ctx.device
        hd, n_speech = cfg.head_dim, ctx.speech.shape[1]
        ctx.v_rope = video_table(hd, 1 + ctx.frames, ctx.hp, ctx.wp, dev)
        a_table = audio_table(cfg.audio_head_dim, max(ctx.layout.length, n_speech), dev)
        ctx.a_rope = tuple(x[: ctx.layout.length] for x in a_table)
        ctx.s_rope = tuple(x[:n_speech] for x in a_table)
        ctx.spatial = video_table(hd, 1, ctx.hp, ctx.wp, dev)
        ctx.windows = window_index(ctx.n_audio, ctx.frames, cfg.a2v_window, dev)
        ctx.k_a2v = a2v_key_table(hd, cfg.audio_head_dim, ctx.windows.shape[1], dev)
        ctx.plan = v2a_plan(ctx.n_audio, ctx.frames, ctx.dtype, dev)

    def run_layers(self, ctx: ForwardContext, xv, xa, capture_masks: bool):
        """The layer pairs in order, each followed by its interaction blocks (if any); a layer pair
        a sample skips (skip-layer guidance) leaves that sample's tokens as they were."""
        masks = []
        for layer in range(self.config.num_layers):
            skip = ctx.skipped.get(layer, [False])
            if all(skip):
                continue
            for hook in self.pair_hooks:
                xv, xa = hook.before(layer, ctx, xv, xa) or (xv, xa)
            before = (xv, xa) if any(skip) else None
            if self.block_swap is not None:
                self.block_swap.acquire(layer)
            xa = self.audio_blocks[layer](xa, ctx.e0_a, ctx.a_rope, ctx.layout.key_mask, ctx.speech,
                                          (ctx.a_rope, ctx.s_rope), ctx.speech_valid)
            xv = self.blocks[layer](xv, ctx.e0_v, ctx.v_rope, ctx.v_key_mask, ctx.caption, None, ctx.caption_bias)
            k = self.interaction_index.get(layer)
            if k is not None and (ctx.a2v_needed or ctx.v2a_needed or capture_masks):
                xv, xa = self.interact(ctx, k, xv, xa, masks if capture_masks else None)
            if self.block_swap is not None:
                self.block_swap.release(layer)
            if before is not None:
                keep = to_device(skip, ctx.device)[:, None, None]
                xv, xa = torch.where(keep, before[0], xv), torch.where(keep, before[1], xa)
            for hook in self.pair_hooks:
                result = hook.after(layer, ctx, xv, xa)
                if result is not None:
                    xv, xa = result
                    if isinstance(result, Finish):
                        return xv, xa, masks
        return xv, xa, masks

    def interact(self, ctx: ForwardContext, k: int, xv, xa, masks: list | None):
        """Interaction k: A2V and V2A both read the post-block states of this layer (docs/MODEL.md §3.7)
        and add their residuals to the generated tokens: in place at inference, out of place when
        gradients are recorded."""
        if ctx.sequence is not None:        # the interactions read the whole clip: run on every rank's frames
            whole, xa = self.interact(ctx.sequence.whole, k, ctx.sequence.gather(xv), xa, masks)
            return ctx.sequence.local(whole), xa
        b, frames, n = ctx.batch, ctx.frames, ctx.hp * ctx.wp
        v_tgt, a_tgt = xv[:, n:], ctx.layout.target(xa)
        a2v, v2a = self.a2v_blocks[k], self.v2a_blocks[k]
        mask = a2v.face_mask(v_tgt, ctx.e_v[:, 1:])
        if masks is not None:
            masks.append(mask.float().view(b, frames, ctx.hp, ctx.wp))
        dv = a2v(v_tgt, a_tgt, mask, ctx.windows, ctx.spatial, ctx.k_a2v) if ctx.a2v_needed else None
        da = v2a(a_tgt, v_tgt, mask, ctx.plan, ctx.spatial) if ctx.v2a_needed else None
        del v_tgt, a_tgt, mask              # not kept through the rest of the layer: peak memory
        if dv is not None:
            dv = (dv.view(b, frames, n, -1) * ctx.gain_v).view(b, frames * n, -1)
            if torch.is_grad_enabled():
                xv = torch.cat([xv[:, :n], xv[:, n:] + dv], dim=1)
            else:
                xv[:, n:] += dv
        if da is not None:
            xa = ctx.layout.add_to_target(xa, da * ctx.gain_a)
        return xv, xa

    def heads(self, ctx: ForwardContext, xv, xa, masks: list) -> ModelOutput:
        """Velocities: the video head unpatchified to latents (reference frame included) and the
        audio head on the target mel rows."""
        out_v = self.head(xv, ctx.e_v)                                                 # [B, (1+F)*n, p*C]
        if ctx.sequence is not None:        # every rank's frames again
            out_v, ctx = ctx.sequence.gather(out_v), ctx.sequence.whole
        cfg, b, frames = self.config, ctx.batch, ctx.frames
        pt, ph, pw = cfg.patch_size
        out_v = out_v.view(b, 1 + frames, ctx.hp, ctx.wp, pt, ph, pw, cfg.out_dim)
        out_v = out_v.permute(0, 7, 1, 4, 2, 5, 3, 6).reshape(b, cfg.out_dim, (1 + frames) * pt, ctx.h, ctx.w)
        out_a = self.head_audio(ctx.layout.target(xa), ctx.e_a)
        face = torch.stack(masks, dim=1) if masks else None
        return ModelOutput(out_v, out_a, face)

    def _check_inputs(self, video, audio, cond: ConditionBatch, switches: Switches):
        cfg = self.config
        b = video.shape[0]
        if video.dim() != 5 or video.shape[1] != cfg.in_dim:
            raise ValueError(f"video latents must be [batch, {cfg.in_dim}, frames, h, w], got {tuple(video.shape)}")
        _, _, frames, h, w = video.shape
        if h % cfg.patch_size[1] or w % cfg.patch_size[2]:
            raise ValueError(f"latent size {h}x{w} must be a multiple of {cfg.patch_size[1]}x{cfg.patch_size[2]} "
                             f"(the picture size a multiple of 32 pixels)")
        if frames < 2:
            raise ValueError(f"{frames} latent frame(s): UniAVGen needs at least 2 (5 video frames)")
        if audio.dim() != 3 or audio.shape[0] != b or audio.shape[2] != cfg.in_audio_dim or audio.shape[1] < 1:
            raise ValueError(f"audio must be [batch={b}, mel frames >= 1, {cfg.in_audio_dim}], "
                             f"got {tuple(audio.shape)}")
        if len(cond) != b or len(switches.a2v) != b:
            raise ValueError(f"batch of {b} latents but {len(cond)} conditions and {len(switches.a2v)} switch sets")
        if cond.cond_latent.shape[2:] != video.shape[2:] or cond.cond_mel.shape[1] != audio.shape[1]:
            raise ValueError("conditioning was stacked for another latent shape or duration; "
                             "rebuild it with ConditionBatch.stack for these latents")

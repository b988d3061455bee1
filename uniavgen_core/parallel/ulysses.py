"""Ulysses sequence parallelism for the video branch.

The video tokens [(1 + F) frames x n patches] are split along frames over the U ranks of a group: each rank
holds k = ceil((1 + F) / U) frames (the last ranks pad with zero frames). The per-token fields of the
forward context (time modulation per frame, rotary tables per token) are split the same way. Around the
video self-attention two all-to-all exchanges turn this rank's tokens x all heads into all tokens x this
rank's heads and back (heads padded with zero heads to a multiple of U; padded tokens are masked as keys).
The caption cross-attention, norms, FFN and the head are per token and run on the local frames. The
interactions read the whole clip (windows of audio per frame, video frames interpolated per audio
token): their video input is gathered, they run on every rank, and each keeps its frames of the result.
The audio branch is replicated.
"""
from __future__ import annotations

import dataclasses

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

from ..model.attention import attention
from ..model.dit import VIDEO_FRAMES, VIDEO_TOKENS, ForwardContext, UniAVGenModel
from .layout import check_ulysses_frames


def _pad(x: torch.Tensor, length: int, axis: int) -> torch.Tensor:
    """x zero padded along `axis` to `length`."""
    axis %= x.dim()
    return F.pad(x, [0, 0] * (x.dim() - 1 - axis) + [0, length - x.shape[axis]])


class FrameSplit:
    """The video tokens of one forward split by frames over a group; `whole` is the unsplit context."""

    def __init__(self, group, whole: ForwardContext):
        self.group, self.whole = group, whole
        self.size, self.rank = dist.get_world_size(group), dist.get_rank(group)
        self.frames, self.n = 1 + whole.frames, whole.hp * whole.wp
        self.per_rank = -(-self.frames // self.size)
        check_ulysses_frames(self.size, whole.frames)

    def local(self, x: torch.Tensor, axis: int = 1, unit: int | None = None) -> torch.Tensor:
        """This rank's frames of x, whose `axis` runs over frames x `unit` tokens (default: n patches)."""
        unit = self.n if unit is None else unit
        chunk = self.per_rank * unit
        return _pad(x, self.size * chunk, axis).narrow(axis, self.rank * chunk, chunk)

    def gather(self, x: torch.Tensor) -> torch.Tensor:
        """[B, local tokens, C] of every rank -> [B, (1 + F) n, C], the padding dropped."""
        x = x.contiguous()          # (empty_like keeps a view's strides; the exchange writes dense rows)
        parts = [torch.empty_like(x) for _ in range(self.size)]
        dist.all_gather(parts, x, group=self.group)
        return torch.cat(parts, dim=1)[:, : self.frames * self.n]

    def context(self) -> ForwardContext:
        """The context of this rank's frames: the video-token and video-frame fields split, the rest whole
        (the interactions and the head's unpatchify read `whole`)."""
        units = {VIDEO_TOKENS: self.n, VIDEO_FRAMES: 1}
        changes = {}
        for name, (axis_name, axis) in ForwardContext.split_fields().items():
            value = getattr(self.whole, name)
            if axis_name in units and value is not None:
                parts = value if isinstance(value, tuple) else (value,)
                local = tuple(self.local(x, axis, units[axis_name]) for x in parts)
                changes[name] = local if isinstance(value, tuple) else local[0]
        padded = self.size * self.per_rank * self.n
        if padded > self.frames * self.n:
            keys = torch.arange(padded, device=self.whole.device) < self.frames * self.n
            changes["v_key_mask"] = keys.expand(self.whole.batch, -1)
        return dataclasses.replace(self.whole, sequence=self, **changes)


def _all_to_all(x: torch.Tensor, group) -> torch.Tensor:
    """x [U, ...]: slice j goes to rank j; returns [U, ...] with slice j from rank j."""
    x = x.contiguous()
    out = torch.empty_like(x)
    dist.all_to_all_single(out, x, group=group)
    return out


class UlyssesSelfAttention(nn.Module):
    """A video self-attention on this rank's tokens: projections and rotary tables local, attention over all
    tokens for this rank's heads between two all-to-all exchanges."""

    def __init__(self, inner: nn.Module, group):
        super().__init__()
        self.inner, self.group, self.size = inner, group, dist.get_world_size(group)
        self.heads = -(-inner.num_heads // self.size) * self.size       # padded to a multiple of the ranks

    def forward(self, x, context, q_rope=None, k_rope=None, key_mask=None):
        b, length = x.shape[:2]
        u, h = self.size, self.heads // self.size

        def to_heads(t):        # [B, L, H, D] -> [B, U L, H / U, D]: every rank's tokens, this rank's heads
            t = _pad(t, self.heads, 2).unflatten(2, (u, h)).permute(2, 0, 1, 3, 4)
            return _all_to_all(t, self.group).permute(1, 0, 2, 3, 4).flatten(1, 2)

        q, k, v = map(to_heads, self.inner.qkv(x, context, q_rope, k_rope))
        out = attention(q, k, v, key_mask).unflatten(-1, (h, -1))              # [B, U L, H / U, D]
        out = _all_to_all(out.unflatten(1, (u, length)).permute(1, 0, 2, 3, 4), self.group)   # [U, B, L, H/U, D]
        out = out.permute(1, 2, 0, 3, 4).flatten(2, 3)[:, :, : self.inner.num_heads]
        return self.inner.o(out.flatten(2))


class SequenceParallel:
    """While entered, `model`'s forwards split their video tokens over `group` (every rank of the group
    calls the model with the same inputs and gets the same whole output)."""

    def __init__(self, model: UniAVGenModel, group):
        self.model, self.group = model, group

    def split(self, ctx: ForwardContext, xv: torch.Tensor):
        """The forward's hook after its positions are attached: this rank's context and video tokens."""
        frames = FrameSplit(self.group, ctx)
        return frames.context(), frames.local(xv)

    def __enter__(self):
        if self.model.sequence_parallel is not None:
            raise RuntimeError("the model already runs sequence parallel")
        self.model.sequence_parallel = self
        for block in self.model.blocks:
            block.self_attn = UlyssesSelfAttention(block.self_attn, self.group)
        return self

    def __exit__(self, *exc):
        for block in self.model.blocks:
            block.self_attn = block.self_attn.inner
        self.model.sequence_parallel = None

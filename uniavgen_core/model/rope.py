"""Real-valued rotary embeddings (docs/MODEL.md §3.6).

Channels (2j, 2j+1) of a head form one pair rotated by angle pos * w_j (interleaved layout,
as the official complex implementation). The angle tables are constants per shape: they are
built once on the host in double precision (numpy), stored as float32 cos/sin on the target
device and cached, so the forward itself only does float32 multiply-adds.
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .sinusoid import frequencies


def split_pairs(head_dim: int) -> tuple[int, int, int]:
    """Pairs given to (frame, row, column) in the 3-axis video table: [22 | 21 | 21] for 128."""
    c = head_dim // 2
    return c - 2 * (c // 3), c // 3, c // 3


def _to_tables(angles: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    cos = torch.from_numpy(np.cos(angles).astype(np.float32)).to(device)
    sin = torch.from_numpy(np.sin(angles).astype(np.float32)).to(device)
    return cos, sin


@functools.lru_cache(maxsize=64)
def video_table(head_dim: int, frames: int, rows: int, cols: int, device: torch.device):
    """[frames*rows*cols, head_dim/2] cos/sin for raster-ordered (frame, row, column) tokens.
    The frame axis uses w_j = 10000^(-2j/(d - 4(d//6))), rows/columns 10000^(-2j/(2(d//6)))."""
    pf, pr, pc = split_pairs(head_dim)
    f = np.arange(frames)[:, None] * frequencies(pf, head_dim - 4 * (head_dim // 6))
    r = np.arange(rows)[:, None] * frequencies(pr, 2 * (head_dim // 6))
    c = np.arange(cols)[:, None] * frequencies(pc, 2 * (head_dim // 6))
    angles = np.concatenate([
        np.broadcast_to(f[:, None, None, :], (frames, rows, cols, pf)),
        np.broadcast_to(r[None, :, None, :], (frames, rows, cols, pr)),
        np.broadcast_to(c[None, None, :, :], (frames, rows, cols, pc)),
    ], axis=-1).reshape(frames * rows * cols, -1)
    return _to_tables(angles, device)


@functools.lru_cache(maxsize=64)
def audio_table(head_dim: int, length: int, device: torch.device):
    """[length, head_dim/2] cos/sin for 1-D positions 0..length-1, w_j = 10000^(-2j/head_dim)."""
    return _to_tables(np.arange(length)[:, None] * frequencies(head_dim // 2, head_dim), device)


@functools.lru_cache(maxsize=64)
def a2v_key_table(head_dim: int, audio_head_dim: int, length: int, device: torch.device):
    """A2V keys (docs/MODEL.md §4.1): the first `frame` pairs of the *audio* table at window
    positions 0..length-1; the remaining pairs are not rotated."""
    pf = split_pairs(head_dim)[0]
    angles = np.zeros((length, head_dim // 2))
    angles[:, :pf] = np.arange(length)[:, None] * frequencies(audio_head_dim // 2, audio_head_dim)[:pf]
    return _to_tables(angles, device)


def apply_rope(x: torch.Tensor, table: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate x [..., L, H, D] by a [L, D/2] table; computed in float32, returned in x.dtype."""
    cos, sin = (t[:, None, :] for t in table)
    pairs = x.unflatten(-1, (-1, 2))
    x0, x1 = pairs[..., 0], pairs[..., 1]
    # (x0 cos - x1 sin, x0 sin + x1 cos): the float32 tables promote the products (bf16 input is
    # read once, with no float32 copy) and each half is rounded straight into the output's dtype
    out = x.new_empty(torch.broadcast_shapes(x0.shape, cos.shape) + (2,))     # x may broadcast over positions
    out[..., 0] = (x0 * cos).addcmul_(x1, sin, value=-1)
    out[..., 1] = (x0 * sin).addcmul_(x1, cos)
    return out.flatten(-2)

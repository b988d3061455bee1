"""Sinusoidal tables. One frequency convention, w_k = 10000^(-2k/d), serves the rotary tables
(docs/MODEL.md §3.6), the timestep embedding (§3.4) and the speech-text positions (§3.3); each
caller keeps the precision the release computes it in."""
from __future__ import annotations

import functools

import numpy as np
import torch

BASE = 10000.0


def frequencies(pairs: int, denom: int) -> np.ndarray:
    """w_k = 10000^(-2k/denom) for k < pairs, float64 on the host."""
    return BASE ** (-2.0 * np.arange(pairs, dtype=np.float64) / denom)


@functools.lru_cache(maxsize=8)
def timestep_frequencies(half: int, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(frequencies(half, 2 * half).astype(np.float32)).to(device)


def timestep_sinusoid(t: torch.Tensor, dim: int) -> torch.Tensor:
    """[..., dim] = [cos(t w_k) | sin(t w_k)], w_k = 10000^(-2k/dim), in float32 (docs/MODEL.md §3.4)."""
    angles = t.float()[..., None] * timestep_frequencies(dim // 2, t.device)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)


@functools.lru_cache(maxsize=16)
def speech_positions(dim: int, length: int, device: torch.device) -> torch.Tensor:
    """[length, dim] = [cos(p w_k) | sin(p w_k)] for positions p < length. The release computes
    these frequencies in float32 on the device (1 / 10000^(2k/dim)), which can differ from
    `frequencies` in the last bit; kept as released."""
    freqs = 1.0 / (BASE ** (torch.arange(0, dim, 2, device=device)[: dim // 2].float() / dim))
    angles = torch.outer(torch.arange(length, device=device).float(), freqs)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)

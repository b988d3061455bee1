"""The timestep schedule of flow-matching sampling (docs/MODEL.md §6.2).

Timesteps run from 1000 (pure noise) to 0 (clean); the noise level of timestep t is
sigma = t / 1000, and a sample at that level is x = (1 - sigma) x0 + sigma noise.
"""
from __future__ import annotations

import numpy as np
import torch

NUM_TIMESTEPS = 1000


def timesteps(steps: int, shift: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[steps + 1] shifted timesteps from 1000 to 0: linspace(1000, 1) in float32, a final 0, the
    shift s -> shift s / (1 + (shift - 1) s) in float32, then rounded to `dtype` (bf16 in the release)."""
    base = np.append(np.linspace(NUM_TIMESTEPS, 1, steps, dtype=np.float32), np.float32(0.0))
    s = torch.from_numpy(base) / NUM_TIMESTEPS
    return (shift * s / (1 + (shift - 1) * s) * NUM_TIMESTEPS).to(dtype)

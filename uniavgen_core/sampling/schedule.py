"""The timestep schedule of flow-matching sampling (docs/MODEL.md §6.2; the conventions: flow.py)."""
from __future__ import annotations

import numpy as np
import torch

from . import flow
from .flow import NUM_TIMESTEPS


def timesteps(steps: int, shift: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[steps + 1] shifted timesteps from 1000 to 0: linspace(1000, 1) in float32, a final 0, shifted in
    float32, then rounded to `dtype` (bf16 in the release)."""
    base = np.append(np.linspace(NUM_TIMESTEPS, 1, steps, dtype=np.float32), np.float32(0.0))
    return (flow.shifted(flow.sigma(torch.from_numpy(base)), shift) * NUM_TIMESTEPS).to(dtype)

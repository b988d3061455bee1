"""Update rules: from the guided velocity at step i to the latents at step i + 1.

A solver is built once per run from the timestep schedule (on the compute device) and is asked
for one update per step. It keeps whatever history it needs (a multistep solver keeps past
velocities). Register a new one with `@register("name")`; `SamplingParams.solver` chooses it.
"""
from __future__ import annotations

from typing import Callable, Protocol

import torch

from .schedule import NUM_TIMESTEPS


class Solver(Protocol):
    def __init__(self, timesteps: torch.Tensor): ...

    def step(self, i: int, video: torch.Tensor, audio: torch.Tensor, velocity_video: torch.Tensor,
             velocity_audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(video, audio) at timestep i + 1 from the float32 latents and the velocities at timestep i."""


SOLVERS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        SOLVERS[name] = cls
        return cls
    return add


@register("euler")
class Euler:
    """x_{i+1} = x_i - v_i (t_i - t_{i+1}) / 1000, the release's sampler. The step size is computed in
    the schedule's dtype (bf16 as released) before it scales the float32 velocity."""

    def __init__(self, timesteps: torch.Tensor):
        self.timesteps = timesteps

    def step(self, i, video, audio, velocity_video, velocity_audio):
        dt = (self.timesteps[i] - self.timesteps[i + 1]) / NUM_TIMESTEPS
        return video + (-velocity_video) * dt, audio + (-velocity_audio) * dt

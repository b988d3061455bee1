"""Update rules: from the state at step i of the schedule to the state at step i + 1.

The state is the tuple of modality tensors (video, audio), float32, moved together: a solver writes
its algebra once (`combine`) and it applies to every modality. A solver is built once per run from
the timestep schedule and its options (`SamplingParams.solver_options`), keeps whatever history it
needs (a multistep solver keeps past velocities), and may evaluate the guided velocity elsewhere
(a Heun or Runge-Kutta step): `velocity(state, t)` at a float32 timestep t. Register a new one with
`@register("name")`; `SamplingParams.solver` chooses it.
"""
from __future__ import annotations

import inspect
from typing import Callable, Protocol

import torch

from . import flow

State = tuple[torch.Tensor, ...]                  # (video [N, C, F, h, w], audio [N, S, 80]), float32
VelocityFn = Callable[[State, float], State]      # the guided velocity of a state at a timestep


def combine(*terms: tuple[float | torch.Tensor, State]) -> State:
    """sum of coefficient x state, modality by modality, in the order given."""
    out = None
    for c, state in terms:
        scaled = tuple(x * c for x in state)
        out = scaled if out is None else tuple(a + b for a, b in zip(out, scaled))
    return out


class Solver(Protocol):
    def __init__(self, timesteps: torch.Tensor, **options): ...

    def step(self, i: int, state: State, velocity_at_i: State, velocity: VelocityFn) -> State:
        """The state at timestep i + 1 from the state and its velocity at timestep i. `timesteps` [steps + 1]
        run from 1000 to 0 in the schedule's dtype (bf16 as released), on the compute device."""


SOLVERS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        SOLVERS[name] = cls
        return cls
    return add


def check_options(name: str, options: dict) -> None:
    """A ValueError naming what a solver does not take, before any work."""
    try:
        inspect.signature(SOLVERS[name]).bind(torch.zeros(2), **options)
    except TypeError as err:
        raise ValueError(f"solver {name!r} does not take the options {sorted(options)}: {err}") from None


@register("euler")
class Euler:
    """x_{i+1} = x_i - v_i (t_i - t_{i+1}) / 1000, the release's sampler. The step size is computed in
    the schedule's dtype (bf16 as released) before it scales the float32 velocity."""

    def __init__(self, timesteps: torch.Tensor):
        self.timesteps = timesteps

    def step(self, i, state, velocity_at_i, velocity):
        dt = flow.sigma(self.timesteps[i] - self.timesteps[i + 1])
        return combine((1, state), (-dt, velocity_at_i))


@register("ab2")
class AdamsBashforth2:
    """Two-step Adams-Bashforth on the schedule's (uneven) steps, second order: with h_i the step in
    sigma, x_{i+1} = x_i + h_i ((1 + r) v_i - r v_{i-1}), r = h_i / (2 h_{i-1}). The first step, and the
    first after each step index in `restart` (where the guided velocity jumps, e.g. MA-CFG's switch), is
    Euler's: a difference across a jump is no derivative."""

    def __init__(self, timesteps: torch.Tensor, restart: tuple[int, ...] = ()):
        self.timesteps, self.restart, self.previous = timesteps, frozenset(restart), None

    def step(self, i, state, velocity_at_i, velocity):
        h = flow.sigma(self.timesteps[i + 1] - self.timesteps[i])
        previous = None if i in self.restart else self.previous
        self.previous = (h, velocity_at_i)
        if previous is None:
            return combine((1, state), (h, velocity_at_i))
        r = h / (2 * previous[0])
        return combine((1, state), (h * (1 + r), velocity_at_i), (-h * r, previous[1]))

"""The timestep schedules of flow-matching sampling (docs/MODEL.md §6.2; the conventions: flow.py).

A schedule is the grid of timesteps a run steps through, from 1000 (noise) to 0, together with where
Modality-Aware CFG switches off: its unconditional pass has both interactions off above a timestep, so
the guided velocity jumps there and a solver must not step or extrapolate across it.

`release` is the released grid and MA-CFG on for its first int(fraction x steps) steps, at any step
count, bit for bit. The others are chosen independently of the solver and place the switch exactly on a
grid point, so that every step lies in one velocity field: the switch is then at the timestep
`macfg_switch`, the continuous form of the release's rule (at the release's fraction of 0.5 it marks
the same steps on the released grid at every step count).

Noise levels made elsewhere (a sampler's sigmas from 1 to 0) become a schedule with `from_sigmas`, MA-CFG on
above that same switch; `check_sigmas` says what is wrong with levels that cannot be one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from . import flow
from .flow import NUM_TIMESTEPS


@dataclass(frozen=True)
class Schedule:
    keys: torch.Tensor          # [steps + 1] float32 timesteps, strictly decreasing from 1000 to 0
    macfg_above: float          # MA-CFG's unconditional pass is interaction-free at timesteps above this
    breaks: frozenset[int]      # step indices whose velocity belongs to another field than the step before

    @property
    def sigmas(self) -> torch.Tensor:
        return flow.sigma(self.keys)


def timesteps(steps: int, shift: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The released grid: [steps + 1] shifted timesteps from 1000 to 0: linspace(1000, 1) in float32, a
    final 0, shifted in float32, then rounded to `dtype` (bf16 in the release)."""
    base = np.append(np.linspace(NUM_TIMESTEPS, 1, steps, dtype=np.float32), np.float32(0.0))
    return _shift_base(base, shift).to(dtype)


def _shift_base(base: np.ndarray, shift: float) -> torch.Tensor:
    """Base timesteps (float32) shifted as the release does it, in float32."""
    return flow.shifted(flow.sigma(torch.from_numpy(base)), shift) * NUM_TIMESTEPS


def macfg_switch(fraction: float, shift: float) -> float:
    """The timestep where MA-CFG switches off for a schedule that puts it on its grid: the release runs
    it over the first `fraction` of its base grid linspace(1000, 1), i.e. above base 1000 - 999 fraction,
    shifted in the release's float32 arithmetic. inf: never on; -inf: on at every step."""
    if fraction <= 0:
        return math.inf
    if fraction >= 1:
        return -math.inf
    return float(_shift_base(np.array([NUM_TIMESTEPS - 999 * fraction], dtype=np.float32), shift)[0])


def _release(steps: int, shift: float, fraction: float) -> Schedule:
    keys = timesteps(steps, shift, torch.float32)
    k = int(fraction * steps)          # the first step MA-CFG is off; the boundary lies midway before it
    above = float((keys[k - 1] + keys[k]) / 2) if k else math.inf
    return Schedule(keys, above, frozenset({k}) if 0 < k < steps else frozenset())


def _on_the_switch(levels: np.ndarray, shift: float, fraction: float) -> Schedule:
    """A schedule from noise levels [steps + 1] (1 to 0, decreasing) with the interior level nearest the
    MA-CFG switch moved onto it (it stays between its neighbours, so the grid stays decreasing); MA-CFG
    is on above that grid point."""
    keys = torch.from_numpy(levels * NUM_TIMESTEPS).float()
    switch = macfg_switch(fraction, shift)
    if not math.isfinite(switch) or len(keys) < 3:
        return Schedule(keys, switch, frozenset())
    k = 1 + int(torch.argmin((keys[1:-1] - switch).abs()))
    keys[k] = switch
    return Schedule(keys, float(keys[k]), frozenset({k}))      # the float32 grid point: off from there on


def _shifted(steps: int, shift: float, fraction: float) -> Schedule:
    """The release's shape (shifted uniform noise levels) with the switch on the grid."""
    base = np.append(np.linspace(1.0, flow.sigma(1), steps), 0.0)       # levels of timesteps 1000 to 1
    return _on_the_switch(flow.shifted(base, shift), shift, fraction)


def _beta_ppf(q: np.ndarray, a: float, b: float) -> np.ndarray:
    """Quantiles of the Beta(a, b) distribution. With x = sin^2(theta) its density becomes
    2 sin^(2a-1) cos^(2b-1) / B(a, b) in theta, bounded for a, b >= 1/2, so a fine trapezoid table
    of the distribution function inverts by interpolation (error below 1e-8 for a = b = 0.6)."""
    theta = np.linspace(0.0, math.pi / 2, 200_001)
    density = np.sin(theta) ** (2 * a - 1) * np.cos(theta) ** (2 * b - 1)
    cdf = np.concatenate([[0.0], np.cumsum((density[1:] + density[:-1]) / 2 * np.diff(theta))])
    return np.sin(np.interp(q, cdf / cdf[-1], theta)) ** 2


def _beta(a: float, b: float) -> Callable[[int, float, float], Schedule]:
    """Shifted levels at the quantiles of Beta(a, b) over the base grid. Beta(0.6, 0.6) (`beta`, denser at both
    ends) is the beta schedule of Lee et al. 2024 as ComfyUI offers it, on continuous levels; a < b leans the
    grid to the clean end."""
    def build(steps: int, shift: float, fraction: float) -> Schedule:
        base = np.append(_beta_ppf(1 - np.arange(steps) / steps, a, b), 0.0)
        base[0] = 1.0
        return _on_the_switch(flow.shifted(base, shift), shift, fraction)
    return build


FIRST_LEVEL_TOLERANCE = 1e-4       # how far from 1 (pure noise) a list of noise levels may start


def check_sigmas(sigmas) -> torch.Tensor:
    """Noise levels made elsewhere as float32 on the CPU, or a ValueError saying what is wrong and what to do:
    a run starts from pure noise (1) and must end clean (0), never rising in between."""
    sigmas = torch.as_tensor(sigmas).detach()
    if sigmas.dim() != 1:
        raise ValueError(f"sigmas must be a 1-D list of noise levels, got shape {tuple(sigmas.shape)}")
    if len(sigmas) < 2:
        raise ValueError(f"sigmas hold {len(sigmas)} value(s): a run needs at least two, from 1 (pure noise) to 0 "
                         f"(clean)")
    levels = sigmas.to("cpu", torch.float32)
    if not bool(torch.isfinite(levels).all()):
        raise ValueError("sigmas contain NaN or infinite values: the node that made them is broken")
    first, last = float(levels[0]), float(levels[-1])
    if first > 1 + FIRST_LEVEL_TOLERANCE:
        raise ValueError(f"sigmas start at {first:.4g}, above 1: this flow model's noise levels run from 1 (pure "
                         f"noise) to 0 (clean), and schedulers made for other models start far higher (their default "
                         f"sigma_max of 14.6): set the maximum sigma to 1")
    outside = torch.nonzero((levels < 0) | (levels > 1 + FIRST_LEVEL_TOLERANCE)).flatten()
    if len(outside):
        i = int(outside[0])
        raise ValueError(f"sigmas hold {float(levels[i]):.4g} at position {i}, outside [0, 1]: noise levels run "
                         f"from 1 (pure noise) to 0 (clean)")
    if abs(first - 1) > FIRST_LEVEL_TOLERANCE:
        raise ValueError(f"sigmas start at {first:.4g}, not at 1: a run starts from pure noise, at level 1; a list "
                         f"split off a longer one, or made to denoise only part of the way, does not fit here")
    rising = torch.nonzero(levels[1:] > levels[:-1]).flatten()
    if len(rising):
        i = int(rising[0])
        raise ValueError(f"sigmas rise from {float(levels[i]):.4g} to {float(levels[i + 1]):.4g} at position "
                         f"{i + 1}: they must run down from 1 to 0 (a flipped list: flip it back)")
    if last != 0:
        raise ValueError(f"sigmas end at {last:.4g}, not at 0: the output would keep that much noise; end the list "
                         f"with 0 (schedulers append it; a list split off for a later pass does not fit here)")
    return levels


def from_sigmas(sigmas, shift: float, fraction: float) -> Schedule:
    """A schedule from noise levels made elsewhere (checked by `check_sigmas`), a level repeated dropped (a step
    of length zero changes nothing). MA-CFG is on above `macfg_switch`, taken through the same float32 round
    trip as the levels (t -> sigma -> t), so a level made from the switch itself lies on it."""
    keys = flow.timestep(torch.unique_consecutive(check_sigmas(sigmas)))
    switch = macfg_switch(fraction, shift)
    if math.isfinite(switch):
        switch = float(flow.timestep(flow.sigma(torch.tensor(switch, dtype=torch.float32))))
    steps = len(keys) - 1
    k = int((keys[:steps] > switch).sum())          # the first step with MA-CFG off (the keys decrease)
    return Schedule(keys, switch, frozenset({k}) if 0 < k < steps else frozenset())


SCHEDULES: dict[str, Callable[[int, float, float], Schedule]] = {
    "release": _release,
    "shifted": _shifted,
    "beta": _beta(0.6, 0.6),
    "beta_clean": _beta(0.55, 0.6),
}


def build(name: str, steps: int, shift: float, fraction: float) -> Schedule:
    """The schedule `name` for `steps` steps at `shift`, MA-CFG on for `fraction` of it."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r} (choose from {', '.join(SCHEDULES)})")
    return SCHEDULES[name](steps, shift, fraction)

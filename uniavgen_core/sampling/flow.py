"""The rectified-flow conventions (docs/MODEL.md §6.2), one owner for the schedule, the training
objective, the loop and every solver.

A timestep t runs from 1000 (pure noise) to 0 (clean); its noise level is sigma = t / 1000. A sample
at that level is x = (1 - sigma) x0 + sigma noise, whose velocity dx/dsigma is noise - x0, so the
clean sample it points at is x - sigma v. The shift s -> shift s / (1 + (shift - 1) s) moves noise
levels towards noise (shift > 1), at inference over the schedule and in training over the draws."""
from __future__ import annotations

NUM_TIMESTEPS = 1000


def sigma(t):
    return t / NUM_TIMESTEPS


def timestep(level):
    """The timestep of noise level `level` (the inverse of `sigma`)."""
    return level * NUM_TIMESTEPS


def shifted(s, shift: float):
    """The shifted noise level of s in [0, 1] (a tensor or a float)."""
    return shift * s / (1 + (shift - 1) * s)


def shifted_slope(level, shift: float):
    """d shifted(u) / du at the u that `shifted` takes to `level`: (shift - (shift - 1) level)^2 / shift. It is
    also the density of uniform levels over that of shifted ones at `level`."""
    return (shift - (shift - 1) * level) ** 2 / shift


def noisy(x0, noise, level):
    """The sample at noise level `level` between clean x0 and noise."""
    return (1 - level) * x0 + level * noise


def velocity(x0, noise):
    """The velocity of the straight path from x0 to noise (the training target)."""
    return noise - x0


def denoised(x, v, level):
    """The clean sample a velocity v at noise level `level` points at."""
    return x - level * v

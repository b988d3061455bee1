"""The timestep schedules (uniavgen_core/sampling/schedule.py): their grids, where MA-CFG switches on
them, and that a solver keeps its order across the switch only when the switch is a grid point."""
import math

import numpy as np
import pytest
import torch

from uniavgen_core.sampling import SOLVERS, SamplingParams
from uniavgen_core.sampling.schedule import SCHEDULES, _beta_ppf, build, macfg_switch, timesteps

STEP_COUNTS = list(range(1, 40)) + [50, 64, 128, 256, 333]


@pytest.mark.parametrize("name", sorted(SCHEDULES))
@pytest.mark.parametrize("shift", [0.01, 1.0, 5.0, 100.0])
@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 0.9, 1.0])
def test_every_schedule_runs_from_noise_to_clean_and_says_where_mac_cfg_switches(name, shift, fraction):
    for steps in STEP_COUNTS:
        grid = build(name, steps, shift, fraction)
        keys = grid.keys
        assert keys.dtype == torch.float32 and keys.shape == (steps + 1,)
        # from noise (float32 rounding of the release's own arithmetic: 1000.001 at shift 0.01) to clean
        assert float(keys[0]) == pytest.approx(1000, rel=1e-5) and float(keys[-1]) == 0
        assert bool((keys[1:] < keys[:-1]).all()), (steps, keys)
        on = [float(keys[i]) > grid.macfg_above for i in range(steps)]
        assert on == sorted(on, reverse=True)                  # on for a first run of steps, then off
        k = on.count(True)
        assert grid.breaks == (frozenset({k}) if 0 < k < steps else frozenset())


@pytest.mark.parametrize("name", sorted(set(SCHEDULES) - {"release"}))
@pytest.mark.parametrize("shift", [1.0, 5.0, 20.0])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.75])
def test_other_schedules_put_the_switch_on_a_grid_point_at_a_timestep_independent_of_the_steps(name, shift, fraction):
    switch = macfg_switch(fraction, shift)
    for steps in range(2, 80):
        grid = build(name, steps, shift, fraction)
        (k,) = grid.breaks
        assert grid.macfg_above == float(grid.keys[k]) == pytest.approx(switch, rel=1e-7)


def test_the_switch_marks_the_releases_steps_at_its_fraction_at_every_step_count():
    """At the release's fraction (0.5) the continuous switch turns MA-CFG on for exactly the released
    grid's first int(0.5 steps) steps from 2 steps on (one step is no grid), so the release's rule is a
    discretisation of one ODE."""
    for shift in (1.0, 5.0, 12.0):
        switch = macfg_switch(0.5, shift)
        for steps in range(2, 1001):
            keys = timesteps(steps, shift)
            assert [float(keys[i]) > switch for i in range(steps)] == [i < steps // 2 for i in range(steps)], steps


def test_beta_quantiles_against_closed_forms():
    q = np.linspace(0, 1, 101)
    assert np.allclose(_beta_ppf(q, 0.5, 0.5), np.sin(np.pi * q / 2) ** 2, atol=1e-9)    # arcsine
    assert np.allclose(_beta_ppf(q, 1.0, 1.0), q, atol=1e-9)                                # uniform
    x = _beta_ppf(q, 2.0, 2.0)
    assert np.allclose(3 * x ** 2 - 2 * x ** 3, q, atol=1e-8)                               # Beta(2, 2)
    x = _beta_ppf(q, 0.6, 0.6)
    assert np.allclose(x + x[::-1], 1, atol=1e-9) and abs(x[50] - 0.5) < 1e-8            # symmetric


def test_unknown_schedule_is_refused_when_the_parameters_are_made():
    with pytest.raises(ValueError, match="unknown schedule 'karras' .choose from release, shifted, beta"):
        SamplingParams(schedule="karras")


SWITCH_SIGMA = 0.6


def switched(state, t, step=None, above=None):
    """dx/dsigma = x cos(sigma) above the switch, 2 x cos(sigma) below: x(0) = x(1) e^-(sin 1 - sin s*) e^-2 sin s*."""
    gain = 1.0 if t > above else 2.0
    return tuple(x * gain * math.cos(t / 1000) for x in state)


def solve_switched(solver, schedule, steps):
    shift = 3.0
    # the fraction whose switch lies at SWITCH_SIGMA: invert shifted(1 - 0.999 f) = SWITCH_SIGMA
    base = SWITCH_SIGMA / (shift - (shift - 1) * SWITCH_SIGMA)
    fraction = (1 - base) / 0.999
    grid = build(schedule, steps, shift, fraction)
    keys = grid.keys.double()
    run = SOLVERS[solver](keys, breaks=grid.breaks)

    def velocity(state, t, step):       # the loop's rule: the field of step `step`
        field = float(keys[step]) > grid.macfg_above
        return switched(state, t, above=-math.inf if field else math.inf)

    state = (torch.tensor(1.0, dtype=torch.float64),)
    for i in range(steps):
        state = run.step(i, state, velocity(state, float(keys[i]), i), velocity)
    s = macfg_switch(fraction, shift) / 1000
    return abs(float(state[0]) - math.exp(-(math.sin(1) - math.sin(s)) - 2 * math.sin(s)))


@pytest.mark.parametrize("solver", ["ab2", "heun", "dpmpp_2m", "unipc", "adams"])
def test_a_second_order_solver_keeps_its_order_across_the_switch_only_on_a_grid_with_the_switch(solver):
    """Over two doublings of the steps (160 to 640) a second-order error falls 16-fold: more than 8-fold on
    a grid with the switch on it, less on the released grid, whose step across the switch costs first order."""
    on_grid = solve_switched(solver, "shifted", 160) / solve_switched(solver, "shifted", 640)
    across = solve_switched(solver, "release", 160) / solve_switched(solver, "release", 640)
    assert on_grid > 8 > across, (on_grid, across)


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_the_loop_samples_on_the_chosen_grid_and_tells_the_solver_its_breaks(tiny_model, monkeypatch, name):
    from helpers import random_request
    from uniavgen_core.sampling import Task, sample, solvers
    told, seen = [], []

    class Recording(solvers.AdamsBashforth2):
        def __init__(self, timesteps, breaks=frozenset()):
            told.append((timesteps.float(), breaks))
            super().__init__(timesteps, breaks)

    monkeypatch.setitem(solvers.SOLVERS, "recording", Recording)
    params = SamplingParams(steps=5, solver="recording", schedule=name, schedule_dtype=torch.float32)
    result = sample(tiny_model, [random_request(Task.AVG, 3)], params, callback=lambda info: seen.append(info.timestep))
    grid = build(name, 5, params.shift, params.macfg_fraction)
    keys, breaks = told[-1]
    assert torch.equal(keys, grid.keys) and breaks == grid.breaks and seen == grid.keys[:-1].tolist()
    assert bool(torch.isfinite(result.video).all() & torch.isfinite(result.audio).all())

"""The solvers of the flow-matching ODE (uniavgen_core/sampling/solvers.py): their order of convergence on
ODEs with known solutions, their restart at the guidance's jump (`breaks`), their options, and their
runs through `sample` on the tiny model."""
import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from helpers import random_request
from uniavgen_core.sampling import SOLVERS, SamplingParams, Task, sample, solvers, timesteps
from uniavgen_core.sampling.schedule import build


def cosine(state, t, step=None):
    """dx/dsigma = x cos(sigma): x(0) = x(1) exp(-sin 1)."""
    return tuple(x * math.cos(t / 1000) for x in state)


M, S = 0.5, 1.5


def gaussian(state, t, step=None):
    """The exact flow from N(0, 1) at sigma = 1 to N(M, S^2) at 0 along x = (1 - sigma) x0 + sigma noise:
    x(sigma) = (1 - sigma) M + std(sigma) z with std^2 = (1 - sigma)^2 S^2 + sigma^2, so x(0) = M + S x(1).
    Its data prediction is affine in x with coefficients smooth in sigma, also at sigma = 0."""
    sigma = t / 1000
    std = math.sqrt((1 - sigma) ** 2 * S * S + sigma * sigma)
    dstd = (sigma - (1 - sigma) * S * S) / std
    return tuple(-M + dstd * (x - (1 - sigma) * M) / std for x in state)


ODES = {"cosine": (cosine, 1.0, math.exp(-math.sin(1.0))), "gaussian": (gaussian, 1.3, M + S * 1.3)}


def solve(solver, steps, ode, breaks=frozenset(), **options):
    f, x1, _ = ODES[ode]
    keys = timesteps(steps, 5.0, torch.float64)
    run = SOLVERS[solver](keys, breaks=breaks, **options)
    state = (torch.tensor(x1, dtype=torch.float64),)
    for i in range(steps):
        state = run.step(i, state, f(state, float(keys[i])), f)
    return float(state[0])


def observed_orders(solver, ode, counts, **options):
    errors = [abs(solve(solver, n, ode, **options) - ODES[ode][2]) for n in counts]
    return [math.log2(coarse / fine) for coarse, fine in zip(errors, errors[1:])]


# (solver, options, ode, step counts in its asymptotic range, lowest and highest observed order allowed).
# Nominal order +-15 %. Heun and DPM-Solver++ end with a first-order step from the schedule's last noise
# level (sigma ~ 0.005 whatever the steps), whose error does not shrink with the steps: their counts stop
# before that floor shows. UniPC of order p corrects towards order p + 1: its band runs from p to p + 1.
# UniPC 3 on the Gaussian flow is left out: its error changes sign between 40 and 80 steps. Adams with its
# corrector likewise runs from its predictor's order to one more.
CASES = [
    ("euler", {}, "cosine", (40, 80, 160), 1, 1), ("euler", {}, "gaussian", (40, 80, 160), 1, 1),
    ("ab2", {}, "cosine", (40, 80, 160), 2, 2), ("ab2", {}, "gaussian", (40, 80, 160), 2, 2),
    ("heun", {}, "cosine", (20, 40, 80), 2, 2), ("heun", {}, "gaussian", (20, 40, 80), 2, 2),
    ("dpmpp_2m", {}, "cosine", (80, 160, 320), 2, 2), ("dpmpp_2m", {}, "gaussian", (40, 80, 160), 2, 2),
    ("unipc", {"order": 2}, "cosine", (40, 80, 160), 2, 3), ("unipc", {"order": 2}, "gaussian", (20, 40, 80), 2, 3),
    ("unipc", {"order": 3}, "cosine", (80, 160, 320), 3, 3),
    ("adams", {"order": 3, "corrector": False}, "cosine", (40, 80, 160), 3, 3),
    ("adams", {"order": 3, "corrector": False}, "gaussian", (40, 80, 160), 3, 3),
    ("adams", {"order": 2, "corrector": True}, "cosine", (40, 80, 160), 2, 3),
    ("adams", {"order": 2, "corrector": True}, "gaussian", (20, 40, 80), 2, 3),
    ("adams", {"order": 3, "corrector": True}, "cosine", (40, 80, 160), 3, 4),
    ("adams", {"order": 3, "corrector": True}, "gaussian", (40, 80, 160), 3, 4),
]


@pytest.mark.parametrize("solver, options, ode, counts, low, high", CASES)
def test_solvers_converge_at_their_order_on_odes_with_known_solutions(solver, options, ode, counts, low, high):
    """Doubling the steps divides the error at sigma = 0 by 2^order, on the release's shifted schedule."""
    orders = observed_orders(solver, ode, counts, **options)
    assert all(0.85 * low < p < 1.15 * high for p in orders), orders


def test_the_order_test_tells_first_from_second_order():
    """The bands above would refuse Euler in place of a second-order solver, and AB2 in place of Euler."""
    for ode in ODES:
        assert all(not 1.7 < p < 2.3 for p in observed_orders("euler", ode, (20, 40, 80, 160)))
        assert all(not 0.85 < p < 1.15 for p in observed_orders("ab2", ode, (40, 80, 160)))


@pytest.mark.parametrize("solver, options", [("dpmpp_2m", {}), ("unipc", {}), ("unipc", {"order": 3})])
def test_the_step_to_sigma_zero_returns_the_data_prediction(solver, options):
    keys = timesteps(3, 5.0, torch.float64)
    run = SOLVERS[solver](keys, **options)
    state = (torch.tensor(0.3, dtype=torch.float64),)
    for i in range(3):
        v = (torch.tensor(0.1 * i - 1.0, dtype=torch.float64),)
        before, state = state, run.step(i, state, v, gaussian)
    assert float(state[0]) == pytest.approx(float(before[0] - keys[2] / 1000 * v[0]), rel=1e-12)


def test_unipc_without_its_corrector_is_dpmpp_2m():
    """UniPC's bh2 predictor with one earlier point is DPM-Solver++(2M): a check of the coefficients."""
    keys = timesteps(12, 5.0, torch.float64)
    unipc, dpm = SOLVERS["unipc"](keys), SOLVERS["dpmpp_2m"](keys)
    a = b = (torch.tensor(1.3, dtype=torch.float64),)
    for i in range(12):
        unipc.last = None                            # drop what the corrector would use
        a, b = unipc.step(i, a, gaussian(a, float(keys[i])), None), dpm.step(i, b, gaussian(b, float(keys[i])), None)
        assert float(a[0]) == pytest.approx(float(b[0]), rel=1e-12, abs=1e-14)
    assert abs(solve("unipc", 12, "gaussian") - float(a[0])) > 1e-4         # the corrector does change it


def test_adams_weights_on_even_steps_are_the_textbook_coefficients():
    """Adams-Bashforth 3 and Adams-Moulton 3 on a step h after steps of h: h (23, -16, 5) / 12 on the velocities
    at the step's start and the two before it; h (5, 8, -1) / 12 on those at its end, start and the one before."""
    h = -0.05
    assert solvers._adams_weights([0.6, 0.65, 0.7], 0.6, 0.6 + h) == pytest.approx([h * c / 12 for c in (23, -16, 5)])
    assert solvers._adams_weights([0.55, 0.6, 0.65], 0.6, 0.6 + h) == pytest.approx([h * c / 12 for c in (5, 8, -1)])
    assert solvers._adams_weights([0.6], 0.6, 0.6 + h) == pytest.approx([h])           # Euler


def jumping(k):
    """A velocity that jumps between steps k - 1 and k: what MA-CFG's switch does to the guided one."""
    return lambda state, t, i: tuple(torch.full_like(x, 1.0 if i < k else -2.0) + 0.3 * x for x in state)


@pytest.mark.parametrize("solver, options", [("ab2", {}), ("dpmpp_2m", {}), ("unipc", {}), ("unipc", {"order": 3}),
                                             ("adams", {}), ("adams", {"order": 3, "corrector": False})])
def test_multistep_solvers_restart_at_a_break(solver, options):
    """At a break index the step is the one a fresh solver takes from the same state and velocity (first
    order, no velocity from before the jump, no correction across it); without the break it is not."""
    steps, k = 8, 4
    keys = timesteps(steps, 5.0, torch.float64)
    f = jumping(k)
    for breaks in (frozenset({k}), frozenset()):
        run = SOLVERS[solver](keys, breaks=breaks, **options)
        state = (torch.tensor(0.2, dtype=torch.float64),)
        for i in range(steps):
            v = f(state, float(keys[i]), i)
            if i == k:
                fresh = SOLVERS[solver](keys, **options).step(i, state, v, None)
            state = run.step(i, state, v, None)
            if i == k:
                same = float(state[0]) == pytest.approx(float(fresh[0]), rel=1e-12)
                assert same == bool(breaks), (breaks, float(state[0]), float(fresh[0]))


def test_ab2_takes_an_euler_step_at_a_break():
    """After a break AB2's step is exactly the step size times this velocity."""
    keys = timesteps(6, 5.0, torch.float64)
    run = SOLVERS["ab2"](keys, breaks=frozenset({3}))
    state = (torch.zeros(()),)
    for i in range(6):
        v = (torch.full((), 1.0 if i < 3 else -2.0),)
        before = state
        state = run.step(i, state, v, None)
        if i in (0, 3):
            assert float(state[0] - before[0]) == pytest.approx(float(keys[i + 1] - keys[i]) / 1000 * float(v[0]))


def test_heun_evaluates_the_far_end_of_a_step_in_the_field_of_that_step():
    """Into the guidance's switch too: the far end of step 2 lies on the switch, in step 2's field."""
    keys = timesteps(6, 5.0, torch.float64)
    evaluated = []

    def velocity(state, t, step):
        evaluated.append((t, step))
        return gaussian(state, t)
    run = SOLVERS["heun"](keys, breaks=frozenset({3}))
    state = (torch.tensor(0.4, dtype=torch.float64),)
    for i in range(6):
        state = run.step(i, state, gaussian(state, float(keys[i])), velocity)
    assert evaluated == [(float(keys[i + 1]), i) for i in range(5)]      # not at sigma = 0 (an Euler step)


def separable(state, t, step=None):
    """The cosine ODE for the video, the Gaussian flow for the audio: each modality's velocity its own."""
    return cosine(state[:1], t)[0], gaussian(state[1:], t)[0]


def test_adams_steps_the_dubbed_audio_with_unipc_up_to_the_switch():
    """dubbing_start unipc: in a batch, the clip whose video is given takes for its audio UniPC's steps up to the
    break and then a fresh Adams run's, for its video Adams' alone; the other clip is Adams' alone throughout."""
    steps, k = 10, 4
    keys = timesteps(steps, 5.0, torch.float64)
    gen = torch.Generator().manual_seed(3)
    start = tuple(torch.randn(2, n, generator=gen, dtype=torch.float64) for n in (3, 5))

    def run(solver, state, first, last):
        for i in range(first, last):
            state = solver.step(i, state, separable(state, float(keys[i])), separable)
        return state

    dubbed = SOLVERS["adams"](keys, breaks=frozenset({k}), dubbing_start="unipc",
                              video_given=torch.tensor([True, False]))
    got = run(dubbed, start, 0, steps)
    plain = run(SOLVERS["adams"](keys, breaks=frozenset({k})), start, 0, steps)
    at_switch = run(SOLVERS["unipc"](keys), start, 0, k)
    audio = run(SOLVERS["adams"](keys), at_switch, k, steps)[1]
    assert torch.allclose(got[0], plain[0], rtol=1e-12, atol=0)              # every video: Adams'
    assert torch.allclose(got[1][1], plain[1][1], rtol=1e-12, atol=0)        # the other clip's audio: Adams'
    assert torch.allclose(got[1][0], audio[0], rtol=1e-12, atol=0)           # the dubbed audio: UniPC, then Adams
    assert not torch.allclose(audio[0], plain[1][0], rtol=1e-6, atol=0)
    every = run(SOLVERS["adams"](keys, breaks=frozenset({k}), dubbing_start="unipc",
                                 video_given=torch.tensor([True, True])), start, 0, steps)
    assert torch.allclose(every[1], audio, rtol=1e-12, atol=0)               # every clip dubbed
    assert torch.allclose(every[0], plain[0], rtol=1e-12, atol=0)
    no_switch = run(SOLVERS["adams"](keys, dubbing_start="unipc", video_given=torch.tensor([True, True])), start, 0,
                    steps)                                                   # MA-CFG never switches: Adams alone
    alone = run(SOLVERS["adams"](keys), start, 0, steps)
    assert all(torch.equal(a, b) for a, b in zip(no_switch, alone))


def test_the_loop_tells_a_solver_which_clips_have_their_video_given(tiny_model, monkeypatch):
    told = []

    class Recording(solvers.Adams):
        def __init__(self, timesteps, breaks=frozenset(), video_given=None, **options):
            told.append(video_given)
            super().__init__(timesteps, breaks, video_given=video_given, **options)

    monkeypatch.setitem(solvers.SOLVERS, "recording", Recording)
    requests = [random_request(Task.AVG, 1), random_request(Task.V2A, 2), random_request(Task.A2V, 3, cond_len=70)]
    params = SamplingParams(steps=4, solver="recording", solver_options={"dubbing_start": "unipc"})
    mixed = sample(tiny_model, requests, params)
    assert told[-1].tolist() == [False, True, False]          # the first call is the parameters' check of the options
    plain = sample(tiny_model, requests, dataclasses.replace(params, solver="adams", solver_options={}))
    assert torch.allclose(mixed.video, plain.video, rtol=1e-5, atol=1e-6)
    assert torch.allclose(mixed.audio[[0, 2]], plain.audio[[0, 2]], rtol=1e-5, atol=1e-6)
    assert not torch.allclose(mixed.audio[1], plain.audio[1], rtol=1e-3, atol=1e-4)


def test_options_are_checked_when_the_parameters_are_made():
    with pytest.raises(ValueError, match="unipc: order must be 1, 2 or 3, got 4"):
        SamplingParams(solver="unipc", solver_options={"order": 4})
    with pytest.raises(ValueError, match="unipc: variant must be 'bh1' or 'bh2'"):
        SamplingParams(solver="unipc", solver_options={"variant": "bh3"})
    with pytest.raises(ValueError, match="solver 'dpmpp_2m' does not take the options .'order'."):
        SamplingParams(solver="dpmpp_2m", solver_options={"order": 2})
    with pytest.raises(ValueError, match="'breaks' is not an option; the sampling loop sets it"):
        SamplingParams(solver="ab2", solver_options={"breaks": frozenset({3})})
    with pytest.raises(ValueError, match="adams: order must be 1, 2 or 3, got 0"):
        SamplingParams(solver="adams", solver_options={"order": 0})
    with pytest.raises(ValueError, match="adams: corrector must be true or false, got 'yes'"):
        SamplingParams(solver="adams", solver_options={"corrector": "yes"})
    with pytest.raises(ValueError, match="adams: dubbing_start must be 'adams' or 'unipc', got 'heun'"):
        SamplingParams(solver="adams", solver_options={"dubbing_start": "heun"})
    with pytest.raises(ValueError, match="'video_given' is not an option; the sampling loop sets it from the tasks"):
        SamplingParams(solver="adams", solver_options={"video_given": torch.tensor([True])})
    SamplingParams(solver="unipc", solver_options={"order": 3, "variant": "bh1"})


@pytest.mark.parametrize("fraction, steps, breaks", [(0.5, 4, {2}), (0.5, 5, {2}), (0.0, 4, set()), (1.0, 4, set())])
def test_the_loop_tells_every_solver_where_mac_cfg_switches(tiny_model, monkeypatch, fraction, steps, breaks):
    from uniavgen_core.sampling import solvers
    told = []

    class Recording(solvers.AdamsBashforth2):
        def __init__(self, timesteps, breaks=frozenset()):
            told.append(breaks)
            super().__init__(timesteps, breaks)

    monkeypatch.setitem(solvers.SOLVERS, "recording", Recording)
    sample(tiny_model, [random_request(Task.AVG, 5)], SamplingParams(steps=steps, macfg_fraction=fraction,
                                                                     solver="recording"))
    assert told[-1] == frozenset(breaks)      # the first call is the parameters' check of the options


@pytest.mark.parametrize("solver, options", [("ab2", {}), ("heun", {}), ("dpmpp_2m", {}), ("unipc", {"order": 3}),
                                             ("unipc", {"variant": "bh1"}), ("adams", {"order": 3})])
def test_every_solver_is_deterministic_across_mac_cfg_switch(tiny_model, solver, options):
    request = [random_request(Task.AVG, 8)]
    params = SamplingParams(steps=4, solver=solver, solver_options=options)     # MA-CFG switches at step 2
    a, b = sample(tiny_model, request, params), sample(tiny_model, request, params)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)
    assert bool(torch.isfinite(a.video).all() & torch.isfinite(a.audio).all())


REFERENCE = json.loads((Path(__file__).parent / "data" / "solver_reference.json").read_text())


def trajectory(solver, options, keys):
    run = SOLVERS[solver](keys, **options)
    state, out = (torch.tensor(REFERENCE["start"], dtype=torch.float64),), []
    for i in range(len(keys) - 1):
        state = run.step(i, state, gaussian(state, float(keys[i])), gaussian)
        out.append(state[0][0])
    return torch.stack(out)


@pytest.mark.parametrize("case", REFERENCE["cases"], ids=lambda c: f"{c['solver']}-{c['options']}-{c['steps']}")
def test_unipc_and_dpmpp_follow_diffusers_step_by_step(case):
    """Against diffusers' flow-matching UniPC and DPM-Solver++ schedulers (benchmarks/solver_reference.py made the
    file), on the same grid: every state of the trajectory within 5e-6 (diffusers keeps sigmas in float32), while
    the other UniPC variant, or one order less, is further than 1e-4 from it. diffusers' bh1 is undefined (NaN)
    on the step to sigma = 0, where the pack's UniPC returns the data prediction: that state is left out."""
    keys = build("shifted", case["steps"], 5.0, 0.0).keys.double()
    keys[0] = REFERENCE["first_timestep"]
    theirs = torch.tensor(case["trajectory"], dtype=torch.float64)
    defined = torch.isfinite(theirs).all(1)
    assert bool(defined[:-1].all()) and (bool(defined[-1]) or case["options"].get("variant") == "bh1")
    ours = trajectory(case["solver"], case["options"], keys)
    assert float((ours - theirs)[defined].abs().max()) < 5e-6
    if case["solver"] == "unipc" and case["options"]["order"] > 1:
        for other in ({**case["options"], "variant": {"bh1": "bh2", "bh2": "bh1"}[case["options"]["variant"]]},
                      {**case["options"], "order": case["options"]["order"] - 1}):
            assert float((trajectory("unipc", other, keys) - theirs)[defined].abs().max()) > 1e-4

"""The audio-video-aware step cache (uniavgen_core/sampling/cache.py): off is exact, the passes it runs
follow its estimates per modality and per pass, and the audio alone can demand a pass."""
import dataclasses

import pytest
import torch

from helpers import random_request
from uniavgen_core.sampling import SamplingParams, Task, sample
from uniavgen_core.sampling.cache import StepCache
from uniavgen_core.sampling.guidance import GuidedVelocity, PassVelocities


class Fake(GuidedVelocity):
    """The guidance's combination over passes whose outputs are given functions of the state; records the
    passes it runs."""

    def __init__(self, video_fn, audio_fn, params=SamplingParams(), macfg_above=-1.0, null_fn=lambda c: 0.5 * c):
        self.params, self.macfg_above, self.evaluations = params, macfg_above, 0
        self.video_fn, self.audio_fn, self.null_fn, self.ran = video_fn, audio_fn, null_fn, []

    def passes(self, video, audio, t, cond=True, null=True, macfg=None):
        self.ran.append((cond, null))
        ref = torch.zeros_like(video[:, :, :1])
        v = torch.cat([ref, self.video_fn(video)], 2)
        a = self.audio_fn(audio)
        return PassVelocities(v if cond else None, a if cond else None, self.null_fn(v) if null else None,
                              self.null_fn(a) if null else None, None)


def trajectory(cache, steps=10, audio_speed=0.0):
    """States moving slowly in video; the audio moves by `audio_speed` per step."""
    video, audio = torch.ones(1, 2, 3, 2, 2), torch.ones(1, 4, 80)
    for i in range(steps):
        cache(video + 1e-4 * i, audio + audio_speed * i, 1000.0 - 100 * i)


def test_a_pass_is_reused_while_neither_modality_moves_and_run_when_the_audio_alone_does():
    still = Fake(lambda v: 2 * v, lambda a: torch.ones_like(a))
    trajectory(StepCache(still, 0.05))
    assert still.ran == [(True, True)] * 2          # the two warm-up steps; the model is not called after them
    moving = Fake(lambda v: 2 * v, lambda a: a ** 3)          # the video as before; the audio's output moves
    trajectory(StepCache(moving, 0.05), audio_speed=0.5)
    assert sum(c + n for c, n in moving.ran) == 20            # the audio demands both passes at every step


def test_the_guidance_weights_decide_which_pass_is_stale():
    """At scale 1 the unconditional pass has no weight (u + 1 (c - u) = c): it never reruns after the warm-up,
    while the conditional one follows the moving audio."""
    params = SamplingParams(video_cfg=1.0, audio_cfg=1.0)
    fake = Fake(lambda v: 2 * v, lambda a: a ** 3, params)
    trajectory(StepCache(fake, 0.05), audio_speed=0.5)
    assert fake.ran[2:] == [(True, False)] * 8


def test_the_unconditional_pass_is_the_fresh_conditional_minus_the_guidance_difference():
    """Both passes follow the moving audio but differ by a constant: once the difference is measured still, the
    unconditional pass is never run again and the guided velocity stays exact; reusing the unconditional pass's
    own output instead would be off by the audio's motion."""
    fake = Fake(lambda v: 2 * v, lambda a: a ** 3, null_fn=lambda c: c - 1)
    cache, exact = StepCache(fake, 0.05), Fake(lambda v: 2 * v, lambda a: a ** 3, null_fn=lambda c: c - 1)
    video, audio = torch.ones(1, 2, 3, 2, 2), torch.ones(1, 4, 80)
    for i in range(10):
        got = cache(video, audio + 0.5 * i, 1000.0 - 100 * i)
        want = exact(video, audio + 0.5 * i, 1000.0 - 100 * i)
        assert torch.allclose(got.audio, want.audio) and torch.allclose(got.video, want.video)
    assert fake.ran == [(True, True)] * 2 + [(True, False)] * 8
    first, last = (exact.passes(video, audio + 0.5 * i, 0.0).audio_null for i in (1, 9))
    assert not torch.allclose(first, last)       # the unconditional output itself moved all along


def test_the_unconditional_pass_reruns_when_mac_cfg_switches_its_field():
    fake = Fake(lambda v: 2 * v, lambda a: torch.ones_like(a), macfg_above=550.0)
    trajectory(StepCache(fake, 0.05))
    # a rate measured across the switch means nothing: the unconditional pass warms up again
    assert fake.ran == [(True, True)] * 2 + [(False, True)] * 2


def test_the_threshold_is_checked():
    with pytest.raises(ValueError, match="cache must be a number from 0 .off. to 1, got -0.1"):
        SamplingParams(cache=-0.1)
    with pytest.raises(ValueError, match="above 0, got 0; 0 turns it off"):
        StepCache(Fake(None, None), 0)


def test_off_runs_every_pass_and_a_tiny_threshold_changes_nothing(tiny_model):
    request = [random_request(Task.AVG, 12)]
    params = SamplingParams(steps=5, schedule_dtype=torch.float32)
    plain = sample(tiny_model, request, params)
    assert plain.evaluations == 10
    tight = sample(tiny_model, request, SamplingParams(steps=5, schedule_dtype=torch.float32, cache=1e-9))
    assert tight.evaluations == 10 and torch.equal(tight.video, plain.video) and torch.equal(tight.audio, plain.audio)
    loose = sample(tiny_model, request, SamplingParams(steps=5, schedule_dtype=torch.float32, cache=1.0))
    assert 4 <= loose.evaluations < 10
    assert bool(torch.isfinite(loose.video).all() & torch.isfinite(loose.audio).all())


def test_a_preset_is_one_value_sample_takes_and_keeps_the_models_guidance(tiny_model):
    from uniavgen_core.sampling.presets import PRESETS, Preset
    request = [random_request(Task.A2V, 13, cond_len=40)]
    mine = SamplingParams(video_cfg=4.5, audio_cfg=1.5, slg_layer=-1, schedule_dtype=torch.float32)
    fast = sample(tiny_model, request, mine, preset="fast")
    assert fast.evaluations == 2 * PRESETS["fast"].steps
    by_hand = sample(tiny_model, request, PRESETS["fast"].apply(mine))
    assert torch.equal(fast.video, by_hand.video) and torch.equal(fast.audio, by_hand.audio)
    assert PRESETS["fast"].apply(mine).video_cfg == 4.5 and PRESETS["release"].apply(mine).steps == 50
    assert sample(tiny_model, request, mine, preset=Preset(3)).evaluations == 6
    with pytest.raises(ValueError, match="unknown preset .quick. .choose from release, fast, balanced"):
        sample(tiny_model, request, mine, preset="quick")


def test_choices_by_name_map_onto_the_parameters():
    """preset custom with Euler on the release's schedule and no cache is the parameters unchanged; the solver names
    are the registry's plus UniPC's variants; a named preset sets steps, solver, schedule and cache together."""
    from uniavgen_core.sampling import SOLVERS
    from uniavgen_core.sampling.presets import PRESETS, choose, named_solver, solver_choices
    mine = SamplingParams(steps=7, video_cfg=4.5, slg_layer=-1)
    assert choose(mine) == (mine, [])
    assert solver_choices()[: len(SOLVERS)] == list(SOLVERS) and solver_choices()[0] == "euler"
    assert [named_solver(n) for n in ("heun", "unipc", "unipc_bh1", "unipc_order3")] == [
        ("heun", {}), ("unipc", {}), ("unipc", {"variant": "bh1"}), ("unipc", {"order": 3})]
    for name in solver_choices():              # every name makes valid parameters
        solver, options = named_solver(name)
        assert choose(mine, solver=name)[0].solver_options == options and solver in SOLVERS
    custom, notes = choose(mine, solver="unipc_bh1", schedule="beta", cache=0.1)
    assert (custom.steps, custom.solver, custom.solver_options, custom.schedule, custom.cache) == (
        7, "unipc", {"variant": "bh1"}, "beta", 0.1) and notes == []
    assert custom.video_cfg == 4.5 and custom.slg_layer == -1
    fast, notes = choose(mine, "fast", solver="heun", schedule="beta", cache=0.1)
    assert fast == PRESETS["fast"].apply(mine) and fast.video_cfg == 4.5
    assert notes == ["preset fast: 12 steps of adams, order 2, with its corrector, dubbing start unipc, on the "
                     "beta_clean schedule; it sets the steps, solver, schedule and cache (preset custom takes them as "
                     "set)"]
    by_hand, _ = choose(dataclasses.replace(mine, steps=12), solver="adams_unipc_dubbing", schedule="beta_clean")
    assert by_hand == fast
    assert choose(mine, "release")[0] == PRESETS["release"].apply(mine)
    assert choose(mine, "release")[1][0].startswith("preset release: 50 steps of euler on the release schedule")


def test_choices_say_what_a_sampler_or_sigmas_given_elsewhere_replace():
    from uniavgen_core.sampling.presets import choose
    mine = SamplingParams(steps=7)
    assert choose(mine, sampler="their sampler", sigmas=9) == (mine, [])      # Euler on the release's: as before
    _, notes = choose(mine, solver="dpmpp_2m", schedule="shifted", sampler="their sampler", sigmas=9)
    assert notes == ["their sampler steps in place of the solver dpmpp_2m; disconnect it to use dpmpp_2m",
                     "the noise levels given (9 steps) replace the 7 steps on the shifted schedule"]
    _, notes = choose(mine, "fast", sigmas=9)
    assert notes[1:] == ["the noise levels given (9 steps) replace the 12 steps on the beta_clean schedule"]
    _, notes = choose(mine, cache=0.2, sampler="their sampler")
    assert notes == []                         # the cache wraps the guided velocity any sampler drives


@pytest.mark.parametrize("choice, message", [
    (dict(preset="quick"), r"unknown preset 'quick': choose custom \(steps, solver, schedule and cache as set\) or "
                           r"one of release, fast, balanced"),
    (dict(solver="unipc_order9"), "unknown solver 'unipc_order9': choose one of euler, adams, ab2, heun, dpmpp_2m, "
                                  "unipc, unipc_bh1, unipc_order3, adams_order3, ab3, adams_unipc_dubbing$"),
    (dict(schedule="karras"), r"unknown schedule 'karras' \(choose from release, shifted, beta, beta_clean\)"),
    (dict(cache=-0.1), r"cache must be a number from 0 \(off\) to 1, got -0.1"),
    (dict(preset="fast", cache=float("inf")), r"cache must be a number from 0 \(off\) to 1, got inf"),
])
def test_a_bad_choice_is_named_with_what_to_choose(choice, message):
    from uniavgen_core.sampling.presets import choose
    with pytest.raises(ValueError, match=message):
        choose(SamplingParams(), **choice)

"""Schedule, per-task switches, batched CFG, batching of different requests, callbacks."""
from dataclasses import replace

import pytest
import torch

from helpers import rel_l2
from helpers import random_request
from uniavgen_core.sampling import SamplingParams, Task, pass_switches, sample, timesteps

# docs/MODEL.md §6.2: the 51 released timesteps (50 steps, shift 5, bf16)
RELEASED_BF16 = [1000, 996, 992, 988, 984, 976, 972, 968, 964, 956, 952, 944, 940, 932, 928, 920, 912, 904, 896,
                 888, 880, 868, 860, 848, 840, 828, 816, 804, 788, 776, 760, 744, 728, 708, 688, 668, 644, 620, 592,
                 564, 532, 496, 456, 412, 364, 310, 249, 179, 98.5, 4.96875, 0]


def test_released_bf16_schedule_bit_for_bit():
    sched = timesteps(50, 5.0, torch.bfloat16)
    assert sched.dtype == torch.bfloat16 and sched.tolist() == RELEASED_BF16


def test_float32_schedule_any_step_count():
    for steps in (1, 7, 30):
        sched = timesteps(steps, 3.0)
        assert sched.shape == (steps + 1,) and float(sched[0]) == 1000 and float(sched[-1]) == 0
        assert bool((sched[1:] < sched[:-1]).all())


@pytest.mark.parametrize("task, cond, late_null", [
    (Task.AVG, (True, True), (True, True)),
    (Task.RAVG, (True, False), (True, True)),
    (Task.A2V, (True, False), (True, False)),
    (Task.V2A, (False, True), (False, True)),
    (Task.CONTINUATION, (True, True), (True, True)),
    (Task.A2V_CONTINUATION, (True, False), (True, False)),
    (Task.V2A_CONTINUATION, (False, True), (False, True)),
])
def test_released_switch_table(task, cond, late_null):
    params = SamplingParams(steps=10, macfg_fraction=0.5, slg_layer=11)
    for macfg in (True, False):
        c, u = pass_switches(task, params, macfg)
        assert (c.a2v[0], c.v2a[0], c.skip_layer[0]) == (*cond, -1)
        expected = (False, False) if macfg else late_null
        assert (u.a2v[0], u.v2a[0], u.skip_layer[0]) == (*expected, 11)


def test_ravg_cond_v2a_option():
    c, _ = pass_switches(Task.RAVG, SamplingParams(ravg_cond_v2a=True), macfg=False)
    assert c.v2a == (True,)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.3, 0.34, 0.5, 0.75, 0.99, 1.0])
@pytest.mark.parametrize("shift", [0.01, 1.0, 5.0, 100.0])
def test_macfg_keyed_on_the_timestep_turns_on_for_the_releases_steps_at_any_step_count(fraction, shift):
    """The release turns MA-CFG on for the first int(fraction * steps) steps; keyed on the float32
    timestep (so evaluations between steps are defined), exactly those steps are above the boundary."""
    from uniavgen_core.sampling.schedule import build
    for steps in list(range(1, 60)) + [64, 100, 128, 200, 333, 500, 999, 1000]:
        grid = build("release", steps, shift, fraction)
        keys, above = grid.keys, grid.macfg_above
        assert [float(keys[i]) > above for i in range(steps)] == [i < int(fraction * steps) for i in range(steps)]


PARAMS = SamplingParams(steps=3, macfg_fraction=0.34, slg_layer=5)


def test_batched_cfg_equals_two_passes(tiny_model):
    reqs = [random_request(Task.RAVG, 11, ref_len=23)]
    one = sample(tiny_model, reqs, PARAMS)
    two = sample(tiny_model, reqs, replace(PARAMS, batch_cfg=False))
    assert rel_l2(one.video, two.video) < 1e-5 and rel_l2(one.audio, two.audio) < 1e-5


def test_batch_of_different_requests_equals_each_alone(tiny_model):
    reqs = [random_request(Task.RAVG, 21, text_len=31, ref_len=17),
            random_request(Task.A2V, 22, text_len=12, cond_len=40, caption_len=30),
            random_request(Task.V2A, 23, text_len=5),
            random_request(Task.AVG, 24, text_len=18),
            random_request(Task.CONTINUATION, 25, prior=2, cond_len=30, ref_len=9)]
    together = sample(tiny_model, reqs, PARAMS)
    for i, r in enumerate(reqs):
        alone = sample(tiny_model, [r], PARAMS)
        assert rel_l2(together.video[i: i + 1], alone.video) < 1e-5, r.task
        assert rel_l2(together.audio[i: i + 1], alone.audio) < 1e-5, r.task


def test_conditions_are_written_back(tiny_model):
    a2v = random_request(Task.A2V, 31, cond_len=25)
    v2a = random_request(Task.V2A, 32)
    further = random_request(Task.CONTINUATION, 33, prior=3, cond_len=52)
    out = sample(tiny_model, [a2v, v2a, further], SamplingParams(steps=2))
    assert torch.equal(out.video[0, :, :1], a2v.condition.cond_latent)
    assert torch.equal(out.audio[0, :25], a2v.condition.cond_mel)
    assert torch.equal(out.video[1], v2a.condition.cond_latent)
    # continuation: the prior clip's frames and mel rows are kept, what follows them is generated
    assert torch.equal(out.video[2, :, :3], further.condition.cond_latent)
    assert torch.equal(out.audio[2, :52], further.condition.cond_mel)
    assert not torch.equal(out.audio[2, 52:], torch.zeros_like(out.audio[2, 52:]))


def test_seed_reproduces_and_differs(tiny_model):
    a = sample(tiny_model, [random_request(Task.AVG, 41)], SamplingParams(steps=2))
    b = sample(tiny_model, [random_request(Task.AVG, 41)], SamplingParams(steps=2))
    c = random_request(Task.AVG, 41)
    c.seed = 42
    c = sample(tiny_model, [c], SamplingParams(steps=2))
    assert torch.equal(a.video, b.video) and not torch.equal(a.video, c.video)


def test_callback_sees_every_step_and_can_cancel(tiny_model):
    seen = []
    out = sample(tiny_model, [random_request(Task.AVG, 51)], SamplingParams(steps=3),
                 callback=seen.append, capture_face_masks=True)
    assert [s.step for s in seen] == [0, 1, 2] and seen[0].timestep == 1000.0
    assert seen[-1].face_masks.shape == (1, 15, 4, 2, 3) and out.face_masks is not None
    assert seen[0].denoised_video.shape == out.video.shape

    class Stop(Exception):
        pass

    def cancel(info):
        if info.step == 1:
            raise Stop

    with pytest.raises(Stop):
        sample(tiny_model, [random_request(Task.AVG, 52)], SamplingParams(steps=5), callback=cancel)


def test_bad_requests_are_rejected_with_a_reason(tiny_model):
    with pytest.raises(ValueError, match="RAVG needs a reference voice"):
        sample(tiny_model, [random_request(Task.RAVG, 61)], PARAMS)
    with pytest.raises(ValueError, match="A2V needs driving audio"):
        sample(tiny_model, [random_request(Task.A2V, 62)], PARAMS)
    with pytest.raises(ValueError, match="CONTINUATION needs a prior clip's leading frames"):
        sample(tiny_model, [random_request(Task.CONTINUATION, 66, prior=4, cond_len=9)], PARAMS)
    with pytest.raises(ValueError, match=r"CONTINUATION needs the prior clip's mel rows \(1 to 69\)"):
        sample(tiny_model, [random_request(Task.CONTINUATION, 67, prior=2)], PARAMS)
    with pytest.raises(ValueError, match="AVG takes no reference voice; use RAVG"):
        sample(tiny_model, [random_request(Task.AVG, 68, ref_len=5)], PARAMS)
    with pytest.raises(ValueError, match="must share frames"):
        sample(tiny_model, [random_request(Task.AVG, 63), random_request(Task.AVG, 64, mel=71)], PARAMS)
    with pytest.raises(ValueError, match="only 70 are generated"):
        sample(tiny_model, [random_request(Task.A2V, 65, cond_len=90)], PARAMS)
    with pytest.raises(ValueError, match="steps must be a whole number from 1"):
        SamplingParams(steps=0)


def test_a_registered_solver_is_chosen_by_name(tiny_model, monkeypatch):
    from uniavgen_core.sampling import solvers
    steps = []

    class Recording(solvers.Euler):
        def step(self, i, state, velocity_at_i, velocity):
            steps.append(i)
            return super().step(i, state, velocity_at_i, velocity)

    monkeypatch.setitem(solvers.SOLVERS, "recording", Recording)
    request = [random_request(Task.AVG, 21)]
    euler = sample(tiny_model, request, SamplingParams(steps=3))
    recorded = sample(tiny_model, request, SamplingParams(steps=3, solver="recording"))
    assert steps == [0, 1, 2] and torch.equal(recorded.video, euler.video) and torch.equal(recorded.audio, euler.audio)
    with pytest.raises(ValueError, match="unknown solver 'rk4'.*euler"):
        SamplingParams(solver="rk4")
    with pytest.raises(ValueError, match="solver 'euler' does not take the options .'order'."):
        SamplingParams(solver_options={"order": 2})


def test_a_solver_may_evaluate_between_steps_with_options_in_the_field_of_its_step(tiny_model, monkeypatch):
    """The protocol a multi-evaluation solver uses: Heun's predictor-corrector evaluates the velocity at
    the next timestep (and, with an option, halfway), with one algebra for both modalities; each
    evaluation takes the MA-CFG switch of the step it serves, also at the far end of the step before
    the switch."""
    from uniavgen_core.sampling import solvers
    from uniavgen_core.sampling.solvers import combine

    class Heun:
        def __init__(self, timesteps, breaks=frozenset(), at="next"):
            self.t, self.at = timesteps.float(), at

        def step(self, i, state, v, velocity):
            t0, t1 = float(self.t[i]), float(self.t[i + 1])
            t_eval = t1 if self.at == "next" else (t0 + t1) / 2
            if t_eval == 0:
                return combine((1, state), ((t1 - t0) / 1000, v))
            guess = combine((1, state), ((t_eval - t0) / 1000, v))
            v2 = velocity(guess, t_eval, i)
            if self.at == "next":
                return combine((1, state), ((t1 - t0) / 2000, v), ((t1 - t0) / 2000, v2))
            return combine((1, state), ((t1 - t0) / 1000, v2))            # the midpoint rule

    monkeypatch.setitem(solvers.SOLVERS, "heun-test", Heun)
    switches = []
    real_forward = tiny_model.forward

    def watch(video, audio, t, cond, sw, capture_masks=False):
        switches.append((round(float(t[0]), 3), sw.a2v[-1]))            # the null pass is last in the batch
        return real_forward(video, audio, t, cond, sw, capture_masks)
    monkeypatch.setattr(tiny_model, "forward", watch)
    request = [random_request(Task.AVG, 24)]
    params = SamplingParams(steps=4, macfg_fraction=0.5, solver="heun-test", schedule_dtype=torch.float32)
    keys = timesteps(4, params.shift, torch.float32)
    heun = sample(tiny_model, request, params)
    grid = [round(float(k), 3) for k in keys]
    assert [t for t, _ in switches] == [grid[0], grid[1], grid[1], grid[2], grid[2], grid[3], grid[3]]
    assert [null_a2v for _, null_a2v in switches] == [False, False, False, False, True, True, True]
    switches.clear()
    mid = sample(tiny_model, request, replace(params, solver_options={"at": "middle"}))
    assert len(switches) == 8 and abs(switches[1][0] - (grid[0] + grid[1]) / 2) < 1e-2
    euler = sample(tiny_model, request, replace(params, solver="euler"))
    assert 1e-4 < rel_l2(heun.video, euler.video) < 0.5 and 1e-4 < rel_l2(mid.video, heun.video) < 0.5


def test_a_velocity_wrapper_sees_every_step_and_can_replace_model_calls(tiny_model):
    """The seam a step cache uses: reusing step 0's velocity at step 1 runs the model twice, not
    three times, and changes the result (so the wrapper's answer is the one used)."""
    request = [random_request(Task.AVG, 22)]
    plain = sample(tiny_model, request, SamplingParams(steps=3))
    calls = []

    def reuse_first(inner):
        kept = []

        def velocity(video, audio, t):
            step = len(kept)                       # the wrapper sees one call per step
            kept.append(kept[0] if step == 1 else inner(video, audio, t))
            if step != 1:
                calls.append(step)
            return kept[-1]
        return velocity

    cached = sample(tiny_model, request, SamplingParams(steps=3), wrap_velocity=reuse_first)
    identity = sample(tiny_model, request, SamplingParams(steps=3), wrap_velocity=lambda inner: inner)
    assert calls == [0, 2] and torch.equal(identity.video, plain.video)
    assert rel_l2(cached.video, plain.video) > 1e-4


@pytest.mark.parametrize("batch_cfg", [True, False])
def test_a_cache_can_run_the_conditional_pass_alone_and_reuse_an_unconditional_one(tiny_model, batch_cfg):
    """The seam a guidance cache uses: at odd steps only the conditional pass runs (a forward of N
    samples, not 2N) and the previous step's unconditional velocity is combined with it; each modality
    of each pass is there to keep."""
    from uniavgen_core.sampling import PassVelocities
    from uniavgen_core.sampling.guidance import guide
    request = [random_request(Task.AVG, 23)]
    params = SamplingParams(steps=4, batch_cfg=batch_cfg)
    plain = sample(tiny_model, request, params)
    batches, combined = [], []

    def count(module, args):
        batches.append(args[0].shape[0])
    handle = tiny_model.register_forward_pre_hook(count)

    def reuse_null(inner):
        kept = {}

        def velocity(video, audio, t):
            kept["step"] = step = kept.get("step", -1) + 1
            if step % 2 == 0:
                kept["passes"] = inner.passes(video, audio, t)
                return inner.combine(kept["passes"])
            fresh = inner.passes(video, audio, t, null=False)
            assert fresh.video_null is None and fresh.audio_null is None
            old = kept["passes"]
            mixed = PassVelocities(fresh.video_cond, fresh.audio_cond, old.video_null, old.audio_null, None)
            out = inner.combine(mixed)
            combined.append(torch.equal(out.audio, guide(fresh.audio_cond, old.audio_null, params.audio_cfg)))
            return out
        return velocity
    try:
        cached = sample(tiny_model, request, params, wrap_velocity=reuse_null)
    finally:
        handle.remove()
    assert batches == ([2, 1, 2, 1] if batch_cfg else [1, 1, 1, 1, 1, 1])
    assert combined == [True, True]
    assert 1e-5 < rel_l2(cached.video, plain.video) < 0.5
    whole = sample(tiny_model, request, params, wrap_velocity=lambda inner: lambda *a: inner.combine(inner.passes(*a)))
    assert torch.equal(whole.video, plain.video) and torch.equal(whole.audio, plain.audio)

"""The instrument for sampling claims: the guided velocity's roughness in the timestep and the solver
gain, measured on the shipped small model through the sampler's own guided velocity."""
import math

import pytest

from uniavgen_core import demo
from uniavgen_core.mini.pipeline import MiniPipeline
from uniavgen_core.synthetic.clips import make_clip
from uniavgen_core.training import smoothness


@pytest.fixture(scope="module")
def pipe():
    return MiniPipeline(demo.MODEL, demo.CODEC)


@pytest.fixture(scope="module")
def clips():
    return [make_clip(seed, frames=49) for seed in (8_000_001, 8_000_002)]


def test_roughness_is_zero_without_a_step_and_counts_only_what_the_task_generates(pipe, clips):
    still = smoothness.roughness(pipe, "a2v", clips, at=(500.0,), dt=0.0)[500.0]
    assert still["video"] == [0.0, 0.0]
    assert all(math.isnan(x) for x in still["audio"])          # the driving audio is given, not generated
    moved = smoothness.roughness(pipe, "v2a", clips, at=(500.0,), dt=10.0)[500.0]
    assert all(math.isnan(x) for x in moved["video"]) and all(0 < x < 1 for x in moved["audio"])
    assert smoothness.generates("continuation") == {"video": True, "audio": True}


def test_every_task_of_the_table_has_a_setup_on_a_held_out_clip(pipe, clips):
    for setup in smoothness.SETUPS:
        job = smoothness.job(pipe, setup, clips[0], seed=0)
        assert job.request.task.name.lower() == setup
    voice = smoothness.job(pipe, "ravg", clips[0], seed=0).request.condition
    assert voice.ref_len > 0
    prior = smoothness.job(pipe, "continuation", clips[0], seed=0).request.condition
    assert 1 < prior.video_cond_frames < 13 and prior.audio_cond_frames > 0


def test_the_interval_covers_the_mean_and_skips_what_is_not_generated():
    mean, low, high = smoothness.mean_interval([1.0, 2.0, 3.0, math.nan])
    assert mean == 2.0 and low <= mean <= high
    assert all(math.isnan(x) for x in smoothness.mean_interval([math.nan]))

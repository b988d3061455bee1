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


def test_the_tool_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    from uniavgen_core.cli import smoothness as tool
    assert tool.main([str(demo.MODEL), str(demo.CODEC), "--clips", "1"]) == 2
    assert "--clips 1: must be from 2" in capsys.readouterr().err
    assert tool.main([str(demo.MODEL), str(demo.CODEC), "--steps", "80", "--reference-steps", "64"]) == 2
    assert "need 2 <= steps < reference steps" in capsys.readouterr().err
    assert tool.main([str(demo.MODEL), str(demo.CODEC), "--cfg", "nan", "4"]) == 2
    assert "--cfg nan 4.0: the guidance scales must be numbers from 0 to 100" in capsys.readouterr().err
    assert tool.main([str(demo.MODEL), str(demo.CODEC), "--shift", "0"]) == 2
    assert "--shift 0: shift 0 is outside" in capsys.readouterr().err
    assert tool.main([str(demo.MODEL), str(demo.CODEC), "--macfg-fraction", "1.5"]) == 2
    assert "--macfg-fraction 1.5: give a share from 0 to 1" in capsys.readouterr().err
    assert tool.main([str(tmp_path / "missing.safetensors"), str(demo.CODEC)]) == 2


def test_the_tables_show_each_generated_modality_with_its_interval():
    v = (0.01, 0.009, 0.011)
    solvers = {"euler": {"video": (0.15, 0.14, 0.16)}, "ab2": {"video": (0.05, 0.04, 0.06)},
               "gain": {"video": (3, 2.5, 3.5)}}
    results = {"a2v": {"roughness": {200.0: {"video": v}}, "solvers": solvers}}
    table = smoothness.markdown(results)
    assert "| a2v | video | 1.00 [0.90, 1.10] |" in table
    assert "| a2v | video | 0.1500 [0.1400, 0.1600] | 0.0500 [0.0400, 0.0600] | 3.00 [2.50, 3.50] |" in table


def test_the_tool_measures_on_the_grid_and_shift_it_is_given(monkeypatch, capsys):
    from uniavgen_core.cli import smoothness as tool
    seen = []
    monkeypatch.setattr(tool, "MiniPipeline", lambda *a: None)
    table = {"avg": {"roughness": {200.0: {"video": (0.01, 0.009, 0.011)}}}}
    monkeypatch.setattr(tool, "measure", lambda pipe, clips, params, **k: seen.append(params) or table)
    assert tool.main([str(demo.MODEL), str(demo.CODEC), "--clips", "2", "--schedule", "beta", "--shift", "3",
                      "--macfg-fraction", "0"]) == 0
    assert (seen[0].schedule, seen[0].shift, seen[0].macfg_fraction) == ("beta", 3.0, 0.0)
    assert "grid: beta, shift 3, MA-CFG fraction 0" in capsys.readouterr().out
    assert tool.main([str(demo.MODEL), str(demo.CODEC), "--clips", "2", "--no-solvers"]) == 0
    assert seen[1].schedule == "release" and "grid:" not in capsys.readouterr().out


def test_the_shipped_model_is_smooth_in_the_timestep(pipe, clips):
    """The instrument's bound: one unit of t (of 1000) moves the shipped model's guided velocity by at most 1 %
    at t = 200, 500 and 800, in every task and every modality it generates."""
    for setup in smoothness.SETUPS:
        made = [m for m, yes in smoothness.generates(setup).items() if yes]
        for t, rows in smoothness.roughness(pipe, setup, clips).items():
            for m in made:
                assert all(0 <= x <= 0.01 for x in rows[m]), (setup, t, m, rows[m])


def test_fast_steps_dubbings_audio_closer_to_the_converged_solution_than_adams_alone(pipe):
    """`fast`'s start (the dubbed audio by UniPC up to MA-CFG's switch) on the two validation clips of the sampling
    table that drove it (adams alone 0.071 and 0.118 from the converged solution on `beta`, with it 0.028 and
    0.022): on `beta_clean` against a converged solution from 48/96-step Euler."""
    import dataclasses

    from uniavgen_core.mini.pipeline import MINI_SAMPLING
    from uniavgen_core.sampling import sample
    from uniavgen_core.sampling.presets import PRESETS
    from uniavgen_core.training.evaluate import held_out
    jobs = [smoothness.job(pipe, "v2a", c, seed=i) for i, c in enumerate(held_out(4, "validation"))][2:]
    requests = [j.request for j in jobs]
    reference = smoothness.converged(pipe.model, requests, MINI_SAMPLING, 48)[1]
    fast = PRESETS["fast"].apply(MINI_SAMPLING)
    alone = dataclasses.replace(fast, solver_options={"order": 2, "corrector": True})
    distances = {name: [smoothness.relative(a, r) for a, r in zip(sample(pipe.model, requests, params).audio,
                                                                   reference)]
                 for name, params in (("fast", fast), ("alone", alone))}
    assert all(f < 0.6 * a for f, a in zip(distances["fast"], distances["alone"])), distances

"""The quality-against-evaluations table: what it measures on the shipped small model, its tool's checks,
its tables and plot."""
import json
import math

import pytest

from uniavgen_core import demo
from uniavgen_core.cli import sampling_table as tool
from uniavgen_core.mini.pipeline import MINI_SAMPLING, MiniPipeline
from uniavgen_core.sampling import sample
from uniavgen_core.sampling.presets import PRESETS, Preset
from uniavgen_core.synthetic.clips import make_clip
from uniavgen_core.training import sampling_table
from uniavgen_core.training.smoothness import job


SETTINGS = {"euler@2": Preset(2), "euler@4": Preset(4),
            "unipc-o2 cache 0.3@4": Preset(4, "unipc", {"order": 2}, "shifted", 0.3)}


@pytest.fixture(scope="module")
def pipe():
    return MiniPipeline(demo.MODEL, demo.CODEC)


@pytest.fixture(scope="module")
def clips():
    return [make_clip(seed, frames=49) for seed in (8_000_001, 8_000_002)]


@pytest.fixture(scope="module")
def results(pipe, clips):
    return sampling_table.measure(pipe, clips, SETTINGS, reference_steps=4, log=lambda m: None)


def test_each_task_reports_its_generated_modalities_evaluations_and_sync(results):
    assert list(results) == ["avg", "a2v", "v2a"]
    assert set(results["avg"]["euler@4"]["distance"]) == {"video", "audio"}
    assert set(results["a2v"]["euler@4"]["distance"]) == {"video"} and set(results["v2a"]["euler@4"]["distance"]) \
        == {"audio"}
    for setup in results.values():
        assert setup["euler@2"]["evaluations"] == 4 and setup["euler@4"]["evaluations"] == 8
        assert setup["unipc-o2 cache 0.3@4"]["evaluations"] <= 8
        for row in sampling_table.settings_of(setup).values():
            assert row["seconds"] > 0 and -1 <= row["sync"]["median_r0"] <= 1
            assert all(0 <= d[1] <= d[0] <= d[2] for d in row["distance"].values())


def test_a_resumed_run_keeps_its_rows_and_measures_only_the_missing_or_changed(pipe, clips, results):
    previous = json.loads(json.dumps(results))          # as --out stores it
    del previous["a2v"]["euler@4"]
    del previous["avg"]["unipc-o2 cache 0.3@4"]["evaluations_range"]    # a cache row measured on the whole batch
    previous["v2a"]["euler@2"]["preset"]["steps"] = 3   # measured under an older definition of the setting
    previous["avg"]["gone@9"] = {"preset": {}, "distance": {}}   # a setting no longer listed is kept
    logged, saved = [], []
    again = sampling_table.measure(pipe, clips, SETTINGS, reference_steps=4, log=logged.append, previous=previous,
                                   save=lambda r: saved.append(json.loads(json.dumps(r))))
    assert [m.split(":")[0] for m in logged if "evaluations" in m] == ["avg unipc-o2 cache 0.3@4", "a2v euler@4",
                                                                        "v2a euler@2"]
    assert len(saved) == 3 and saved[-1] == json.loads(json.dumps(again))
    assert saved[1]["v2a"] == previous["v2a"]            # stopped after a2v, the file would still hold v2a's rows
    assert {k: v for k, v in again["avg"].items() if " cache " not in k} == \
        {k: v for k, v in previous["avg"].items() if " cache " not in k}
    fresh = json.loads(json.dumps(results))             # everything is seeded: the rerun rows are the same
    for setup, name in (("avg", "unipc-o2 cache 0.3@4"), ("a2v", "euler@4"), ("v2a", "euler@2")):
        assert json.loads(json.dumps(again[setup][name]))["distance"] == fresh[setup][name]["distance"]


def test_step_cache_rows_are_each_clip_sampled_alone(pipe, clips, results):
    """A step cache decides for the batch it is given, so its rows are measured one clip at a time, as a user
    samples one clip: the row's evaluations per clip are those of each clip alone, and its distances theirs."""
    preset = SETTINGS["unipc-o2 cache 0.3@4"]
    for setup in ("avg", "v2a"):
        jobs = [job(pipe, setup, c, seed=i) for i, c in enumerate(clips)]
        alone = [sample(pipe.model, [j.request], preset.apply(MINI_SAMPLING)) for j in jobs]
        counts = [a.evaluations for a in alone]
        row = results[setup]["unipc-o2 cache 0.3@4"]
        assert row["evaluations_range"] == [min(counts), max(counts)] and row["evaluations"] == max(counts)
        together, per_clip = sampling_table.sample_clips(pipe, [j.request for j in jobs], preset.apply(MINI_SAMPLING))
        assert per_clip == counts
        assert all(together.audio[i].equal(a.audio[0]) and together.video[i].equal(a.video[0])
                   for i, a in enumerate(alone))


def test_a_setting_equal_to_one_measured_takes_its_row_without_a_run(pipe, clips, results):
    twins = {**SETTINGS, "preset four@4": Preset(4)}
    logged = []
    again = sampling_table.measure(pipe, clips, twins, reference_steps=4, log=logged.append,
                                   previous=json.loads(json.dumps(results)))
    assert logged == []                                 # no converged solution, no sampling
    assert all(again[setup]["preset four@4"] == again[setup]["euler@4"] for setup in sampling_table.SETUPS)


def test_more_euler_steps_come_closer_to_the_converged_solution(results):
    """Euler at 4 steps is nearer the extrapolation from 4/8-step Euler than Euler at 2."""
    for setup in results.values():
        for m, d in setup["euler@4"]["distance"].items():
            assert d[0] < setup["euler@2"]["distance"][m][0]


def test_tables_and_plot(results, tmp_path):
    text = sampling_table.markdown(results)
    assert text.count("| euler@4 | 8 |") == 3 and "Richardson from 4/8-step Euler" in text
    sampling_table.plot(results, str(tmp_path / "p.png"))
    assert (tmp_path / "p.png").stat().st_size > 10_000


def test_balanced_skips_guidance_passes_on_the_shipped_model(pipe, clips):
    """The step cache in the `balanced` preset runs fewer passes than two a step on the small model (19-29 of 32
    on the sampling table's clips, one at a time), the conditional pass every step."""
    preset = PRESETS["balanced"]
    for setup in ("avg", "a2v", "v2a"):
        result = sample(pipe.model, [job(pipe, setup, clips[0], seed=0).request], preset.apply(MINI_SAMPLING))
        assert preset.steps <= result.evaluations < 2 * preset.steps, setup
        assert bool(result.video.isfinite().all() & result.audio.isfinite().all())


def test_the_candidates_include_the_presets_and_stay_within_the_budgets():
    settings = sampling_table.candidates()
    assert {f"preset {n}@{p.steps}" for n, p in PRESETS.items()} <= set(settings)
    assert all(1 <= p.steps <= 50 and not math.isnan(p.cache) for p in settings.values())
    for family in ("euler", "ab2", "dpmpp_2m", "unipc-o2", "unipc-o3", "heun"):     # each solver on both grids
        grids = {p.schedule for name, p in settings.items() if name.split("@")[0] in (family, f"{family} beta")}
        assert {"shifted", "beta"} <= grids or (family == "euler" and {"release", "beta"} <= grids), family
    for family in ("euler", "ab2", "unipc-o2", "abm2", "abm2-dub"):       # on fast's grid, fast's solver on both
        assert "beta_clean" in {p.schedule for name, p in settings.items() if name.startswith(f"{family} beta_clean@")}
    assert settings["abm2-dub beta_clean@12"] == PRESETS["fast"]


def test_the_tool_refuses_bad_arguments_before_any_work(tmp_path, capsys):
    files = [str(demo.MODEL), str(demo.CODEC)]
    assert tool.main(files + ["--clips", "1"]) != 0
    assert "--clips 1" in capsys.readouterr().err
    assert tool.main(files + ["--only", "euler@7"]) != 0
    assert "unknown settings ['euler@7']" in capsys.readouterr().err
    assert tool.main(files + ["--out", str(tmp_path)]) != 0
    assert "is a folder: give a file name" in capsys.readouterr().err
    assert tool.main(files + ["--plot", str(tmp_path)]) != 0
    assert "--plot" in capsys.readouterr().err
    assert tool.main(files + ["--resume"]) != 0
    assert "--resume continues the run whose results are in --out" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{")
    assert tool.main(files + ["--out", str(tmp_path / "bad.json"), "--resume"]) != 0
    assert "is not the JSON this tool writes" in capsys.readouterr().err
    (tmp_path / "other.json").write_text(json.dumps({"avg": {"reference_steps": 128, "clips": 16, "tag": "x y"}}))
    assert tool.main(files + ["--out", str(tmp_path / "other.json"), "--resume"]) != 0
    assert "holds avg measured with other files, clips or reference steps" in capsys.readouterr().err

"""Parallel sampling (uniavgen_core/parallel) on gloo CPU processes against the single-process `sample` on the
tiny golden model: Ulysses and CFG + Ulysses on 4 ranks (one world spawned for the module runs every scenario),
CFG on 2 ranks through the golden runner; the traffic model against the bytes the ranks sent."""
import contextlib
import dataclasses
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from helpers import child_processes, golden_root, live, rel_l2
from test_golden_parity import OUT_TOL
from uniavgen_core.cli import golden as golden_cli
from uniavgen_core.golden import case_params, case_request, model_cases
from uniavgen_core.parallel import ParallelConfig, check_run, run_on_ranks, sample_on_rank
from uniavgen_core.parallel.traffic import step_bytes
from uniavgen_core.sampling import sample

TOL = 1e-5
STEPS = 2                   # one step with MA-CFG's interaction-free unconditional pass, one without
# (mode, golden case, latent frames) on 4 ranks: 1 + 6 video frames are padded (on 4 Ulysses ranks 2, 2, 2, 1), 1 + 7
# split evenly; the golden runner's test below runs cfg on 2 ranks
SCENARIOS = [("ulysses", "a2v", 6), ("cfg+ulysses", "avg", 7)]
RANKS = 4


def _run(name: str, frames: int):
    """The request and parameters of golden case `name` at `frames` latent frames (its seeded noise)."""
    golden = golden_root() / "public"
    case, inputs = next((c, i) for n, c, i in model_cases(golden) if n == name)
    request = case_request(dict(case, lat_frames=frames), inputs)
    if request.condition.cond_latent.shape[1] > 1:        # a whole driving video follows the frame count
        raise ValueError("scenarios take cases with a reference frame only")
    return request, dataclasses.replace(case_params(case), steps=STEPS)


@contextlib.contextmanager
def _counted(sent: list):
    """Adds to sent[0] the bytes this rank sends to others in the all-to-alls and all-gathers of the block."""
    all_to_all, all_gather = dist.all_to_all_single, dist.all_gather

    def counted_all_to_all(out, x, group=None):
        sent[0] += x.numel() * x.element_size() * (dist.get_world_size(group) - 1) // dist.get_world_size(group)
        return all_to_all(out, x, group=group)

    def counted_all_gather(parts, x, group=None):
        sent[0] += x.numel() * x.element_size() * (dist.get_world_size(group) - 1)
        return all_gather(parts, x, group=group)
    dist.all_to_all_single, dist.all_gather = counted_all_to_all, counted_all_gather
    try:
        yield
    finally:
        dist.all_to_all_single, dist.all_gather = all_to_all, all_gather


def _scenarios(model) -> list:
    """On every rank: each scenario sampled in parallel, and the bytes all ranks sent (rank 0's results kept)."""
    torch.set_grad_enabled(False)
    results = []
    for mode, name, frames in SCENARIOS:
        request, params = _run(name, frames)
        sent = [0]
        with _counted(sent):
            out = sample_on_rank(model, [request], params, ParallelConfig(RANKS, mode), capture_face_masks=True)
        total = torch.tensor(sent[0], dtype=torch.float64)
        dist.all_reduce(total)
        results.append((out.video, out.audio, out.face_masks, out.evaluations, int(total)))
    return results


@pytest.fixture(scope="module")
def world(tiny_model):
    """(the parallel results of the scenarios, the single-process results of the same runs)."""
    parallel = run_on_ranks(_scenarios, RANKS, tiny_model)        # its weights shared with the ranks, not copied
    return parallel, [sample(tiny_model, [r], p, capture_face_masks=True)
                      for r, p in (_run(n, f) for _, n, f in SCENARIOS)]


def _check(where: str, video, audio, ref) -> None:
    assert video.shape == ref.video.shape and audio.shape == ref.audio.shape, where
    assert rel_l2(video, ref.video) <= TOL, f"{where}: video {rel_l2(video, ref.video):.2e}"
    assert rel_l2(audio, ref.audio) <= TOL, f"{where}: audio {rel_l2(audio, ref.audio):.2e}"


def test_ulysses_and_cfg_ulysses_match_the_single_process_sample(world):
    parallel, single = world
    for (mode, name, frames), (video, audio, masks, evaluations, _), ref in zip(SCENARIOS, parallel, single):
        where = f"{mode} on {RANKS} ranks, {name} with {frames} latent frames"
        _check(where, video, audio, ref)
        # the face masks of the interactions, which run on the gathered frames of the conditional pass
        assert masks.shape == ref.face_masks.shape and rel_l2(masks, ref.face_masks) <= TOL, where
        assert evaluations == ref.evaluations == 2 * STEPS, where
    assert not child_processes()


def test_the_traffic_model_counts_what_the_ranks_send(world, tiny_model):
    """Two steps: the first with MA-CFG's interaction-free unconditional pass, the second without."""
    parallel, _ = world
    for (mode, name, frames), (*_, sent) in zip(SCENARIOS, parallel):
        request, params = _run(name, frames)
        model = [step_bytes(tiny_model.config, ParallelConfig(RANKS, mode), frames, *request.latent_size,
                            request.mel_frames, element=4, macfg=macfg, skip_layer=params.slg_layer)
                 for macfg in (True, False)]
        assert sent == sum(model), (mode, sent, model)


def test_the_golden_runner_samples_on_2_ranks_within_the_tolerance(golden_dir, tiny_model, tmp_path, capsys):
    """cfg on the public AVG case, from its inputs only: the official result within the
    runner's tolerance, the single-process sample within the parallel one."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for f in golden_dir.iterdir():
        if f.name.startswith(("config", "diffusion_pytorch_model")):
            (inputs / f.name).symlink_to(f)
    cases = json.loads((golden_dir / "golden.json").read_text())
    cases["cases"] = {"avg": cases["cases"]["avg"]}
    (inputs / "golden.json").write_text(json.dumps(cases))
    golden = load_file(golden_dir / "golden.safetensors")
    save_file({k: v for k, v in golden.items() if k.startswith("avg.in.")}, inputs / "golden.safetensors")
    args = [str(inputs), "--out", str(tmp_path / "out"), "--ranks", "2", "--parallel", "cfg"]
    assert golden_cli.main(args) == 0
    assert capsys.readouterr().out.startswith("sampling_seconds avg ")
    ours = load_file(tmp_path / "out" / "golden.safetensors")
    for key in ("avg.out.video", "avg.out.audio"):
        assert rel_l2(ours[key], golden[key]) <= OUT_TOL, key
    case = model_cases(inputs)[0]
    ref = sample(tiny_model, [case_request(case[1], case[2])], case_params(case[1]),
                 noise=(case[2]["noise_video"], case[2]["noise_audio"]))
    _check("the runner's cfg on 2 ranks", ours["avg.out.video"], ours["avg.out.audio"], ref)
    assert not child_processes()


def _fail_on_rank_1():
    if dist.get_rank() == 1:
        raise RuntimeError("rank 1 fails")
    time.sleep(600)         # rank 0 would outlive the test unless it is ended


def test_an_error_on_one_rank_ends_every_rank_and_is_raised_here():
    with pytest.raises(Exception, match="rank 1 fails"):
        run_on_ranks(_fail_on_rank_1, 2)
    assert not child_processes()


@pytest.mark.parametrize("ranks, mode, message", [
    (3, "cfg", "on 2 ranks"), (4, "cfg", "on 2 ranks"), (3, "cfg+ulysses", "even number"),
    (1, "ulysses", "at least 2"), (2, "tensor", "unknown parallel mode"),
])
def test_impossible_layouts_are_refused(ranks, mode, message):
    with pytest.raises(ValueError, match=message):
        ParallelConfig(ranks, mode)


def test_more_ulysses_ranks_than_frames_and_a_step_cache_are_refused():
    request, params = _run("avg", 2)           # 3 video frames: the reference and 2 latent frames
    with pytest.raises(ValueError, match="4 Ulysses ranks for 3 video frames"):
        check_run(ParallelConfig(4, "ulysses"), params, request.latent_frames)
    check_run(ParallelConfig(4, "cfg+ulysses"), params, request.latent_frames)          # 2 Ulysses ranks fit
    with pytest.raises(ValueError, match="step cache"):
        check_run(ParallelConfig(2, "cfg"), dataclasses.replace(params, cache=0.1), request.latent_frames)


def test_the_predicted_speedup_is_the_split_work_plus_the_traffic_over_the_link():
    from uniavgen_core.model.config import UniAVGenConfig
    from uniavgen_core.parallel.traffic import predicted_speedup
    config, shape = UniAVGenConfig.official(), (21, 46, 82, 506)      # 1 + 21 frames with the reference
    speed = lambda mode, ranks, link: predicted_speedup(config, ParallelConfig(ranks, mode), *shape, 1.2, link)
    assert speed("ulysses", 4, math.inf) == pytest.approx(4 * 22 / 24)        # 6 frames a rank, 2 of them padding
    assert speed("ulysses", 2, math.inf) == pytest.approx(2.0)
    assert 1.99 < speed("cfg", 2, 25e9) < 2.0                                  # 32 MB a step: nothing on 1.2 s
    for mode, ranks in (("ulysses", 2), ("ulysses", 8), ("cfg+ulysses", 4)):
        slow, fast = speed(mode, ranks, 25e9), speed(mode, ranks, 450e9)
        assert 1 < slow < fast < ranks


def _given(device, model):
    """A pool's loader: the model the pool was made with (its weights shared with the ranks)."""
    return model.to(device)


@pytest.fixture
def host_main(tmp_path, monkeypatch):
    """A main script, as a host such as ComfyUI runs, that leaves a mark whenever it is imported."""
    mark = tmp_path / "imported"
    script = tmp_path / "host_main.py"
    script.write_text(f"open({str(mark)!r}, 'a').write('imported')\n")
    main = type(os)("__main__")
    main.__file__, main.__spec__ = str(script), None
    monkeypatch.setitem(sys.modules, "__main__", main)
    return mark


def test_a_pool_keeps_its_ranks_for_job_after_job_reports_steps_and_cancels_on_every_rank(tiny_model, host_main):
    from uniavgen_core.parallel.pool import Cancelled, RankPool
    request, params = _run("avg", 3)
    alone = sample(tiny_model, [request], params, capture_face_masks=True)
    pool = RankPool(2, _given, tiny_model)
    try:
        assert not host_main.exists()                    # the ranks did not import the host's main script
        pids = [p.pid for p in pool.context.processes]
        for _ in range(2):                                   # the same ranks, the model loaded once
            steps = []
            out = pool.run(sample_on_rank, [request], params, ParallelConfig(2, "cfg"), progress=steps.append,
                           capture_face_masks=True)
            assert rel_l2(out.video, alone.video) <= TOL and rel_l2(out.audio, alone.audio) <= TOL
            assert rel_l2(out.face_masks, alone.face_masks) <= TOL
            assert [s.step for s in steps] == list(range(STEPS))
        with pytest.raises(Cancelled):
            pool.run(sample_on_rank, [request], params, ParallelConfig(2, "cfg"), cancelled=lambda: True)
        out = pool.run(sample_on_rank, [request], params, ParallelConfig(2, "cfg"))     # still usable
        assert rel_l2(out.video, alone.video) <= TOL and [p.pid for p in pool.context.processes] == pids
        with pytest.raises(ValueError, match="step cache"):        # every rank refuses it alike: the pool stays
            pool.run(sample_on_rank, [request], dataclasses.replace(params, cache=0.1), ParallelConfig(2, "cfg"))
        out = pool.run(sample_on_rank, [request], params, ParallelConfig(2, "cfg"))
        assert rel_l2(out.video, alone.video) <= TOL and [p.pid for p in pool.context.processes] == pids
    finally:
        pool.close()
    assert not child_processes() and not pool.alive


def _fail_on_rank_1_job(model, callback=None):
    if dist.get_rank() == 1:
        raise ValueError("rank 1 could not run the job")
    return "rank 0 ran"


def test_a_rank_that_fails_ends_the_pool_with_its_error_and_leaves_no_process(tiny_model):
    from uniavgen_core.parallel.pool import PoolError, RankPool
    pool = RankPool(2, _given, tiny_model)
    try:
        with pytest.raises(Exception, match="rank 1 could not run the job"):
            pool.run(_fail_on_rank_1_job)
        with pytest.raises(PoolError, match="make a new pool"):
            pool.run(_fail_on_rank_1_job)
    finally:
        pool.close()
    assert not child_processes() and not pool.alive


def _cpu_model(device):
    """A pool's loader for a host that gets killed: any small module."""
    return torch.nn.Linear(2, 2).to(device)


HOST = """
import sys, time
from uniavgen_core.parallel import RankPool
from test_parallel import _cpu_model
pool = RankPool(2, _cpu_model)
print(*(p.pid for p in pool.context.processes), flush=True)
time.sleep(600)
"""


def test_the_ranks_of_a_killed_host_end_with_it():
    """A host that is killed (no atexit, no finaliser) leaves no rank behind."""
    tests = Path(__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent)])}
    host = subprocess.Popen([sys.executable, "-c", HOST], stdout=subprocess.PIPE, text=True, env=env)
    try:
        pids = [int(p) for p in host.stdout.readline().split()]
        assert len(pids) == 2 and all(Path(f"/proc/{p}").exists() for p in pids)
    finally:
        host.send_signal(signal.SIGKILL)
        host.wait()
    deadline = time.monotonic() + 20
    while any(live(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(live(p) for p in pids), "a rank outlived its killed host"


@pytest.mark.parametrize("given, names", [(2, ["cpu", "cpu"]), ("cpu, cpu,cpu", ["cpu"] * 3), (["cpu"], ["cpu"])])
def test_devices_are_read_from_a_count_a_list_or_text(given, names):
    from uniavgen_core.parallel.pool import backend_for, parse_devices
    assert parse_devices(given) == names and backend_for(names) == "gloo"


@pytest.mark.parametrize("given, message", [
    (0, "at least 1"), ("cpu,,cpu", "one device per rank"), ("", "one device per rank"),
    ("gpu0", "not a device name"), ("meta", "cpu or cuda"), ("cuda:7", "CUDA device"),
])
def test_impossible_devices_are_refused(given, message):
    from uniavgen_core.parallel.pool import parse_devices
    with pytest.raises(ValueError, match=message):
        parse_devices(given)

"""Parallel sampling (uniavgen_core/parallel) on gloo CPU processes against the single-process `sample` on the
tiny golden model: CFG-parallel, Ulysses and both, on 2 and 4 ranks. Each world is spawned once for the module
and runs every scenario of its size."""
import dataclasses
import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from helpers import golden_root, rel_l2
from uniavgen_core.golden import case_params, case_request, model_cases
from uniavgen_core.parallel import ParallelConfig, check_run, run_on_ranks, sample_on_rank
from uniavgen_core.sampling import sample

TOL = 1e-5
STEPS = 2                   # one step with MA-CFG's interaction-free unconditional pass, one without
# (mode, golden case, latent frames): 1 + 6 video frames are padded on 2 and 4 Ulysses ranks, 1 + 7 split evenly
SCENARIOS = {2: [("cfg", "avg", 6), ("ulysses", "a2v", 6)], 4: [("cfg+ulysses", "avg", 6), ("ulysses", "avg", 7)]}


def _run(name: str, frames: int):
    """The request and parameters of golden case `name` at `frames` latent frames (its seeded noise)."""
    golden = golden_root() / "public"
    case, inputs = next((c, i) for n, c, i in model_cases(golden) if n == name)
    request = case_request(dict(case, lat_frames=frames), inputs)
    if request.condition.cond_latent.shape[1] > 1:        # a whole driving video follows the frame count
        raise ValueError("scenarios take cases with a reference frame only")
    return request, dataclasses.replace(case_params(case), steps=STEPS)


def _scenarios(ranks: int, model) -> list:
    """On every rank: each scenario of a world of `ranks`, sampled in parallel (rank 0's results kept)."""
    torch.set_grad_enabled(False)
    results = []
    for mode, name, frames in SCENARIOS[ranks]:
        request, params = _run(name, frames)
        out = sample_on_rank(model, [request], params, ParallelConfig(ranks, mode))
        results.append((out.video, out.audio, out.evaluations))
    return results


@pytest.fixture(scope="module", params=[2, 4], ids=["2 ranks", "4 ranks"])
def world(request, tiny_model):
    """(ranks, the parallel results of its scenarios, the single-process results of the same runs)."""
    ranks = request.param
    parallel = run_on_ranks(_scenarios, ranks, ranks, tiny_model)    # its weights shared, not copied
    single = [sample(tiny_model, [r], p) for r, p in (_run(n, f) for _, n, f in SCENARIOS[ranks])]
    return ranks, parallel, single


def _children() -> list[str]:
    """The command lines of this process's children, but for multiprocessing's resource tracker (one helper
    that the first spawn starts and that lives as long as this process)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError):
            continue
        if parent == os.getpid() and "resource_tracker" not in command:
            found.append(command)
    return found


def test_every_mode_matches_the_single_process_sample(world):
    ranks, parallel, single = world
    for (mode, name, frames), (video, audio, evaluations), ref in zip(SCENARIOS[ranks], parallel, single):
        where = f"{mode} on {ranks} ranks, {name} with {frames} latent frames"
        assert video.shape == ref.video.shape and audio.shape == ref.audio.shape, where
        assert rel_l2(video, ref.video) <= TOL, f"{where}: video {rel_l2(video, ref.video):.2e}"
        assert rel_l2(audio, ref.audio) <= TOL, f"{where}: audio {rel_l2(audio, ref.audio):.2e}"
        assert evaluations == ref.evaluations == 2 * STEPS, where
    assert not _children()


def _fail_on_rank_1(ranks: int):
    if dist.get_rank() == 1:
        raise RuntimeError("rank 1 fails")
    dist.barrier()          # the other ranks wait for it in a collective until they are ended
    return "unreachable"


def test_an_error_on_one_rank_ends_every_rank_and_is_raised_here():
    with pytest.raises(Exception, match="rank 1 fails"):
        run_on_ranks(_fail_on_rank_1, 2, 2)
    assert not _children()


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
        check_run(ParallelConfig(4, "ulysses"), [request], params)
    check_run(ParallelConfig(4, "cfg+ulysses"), [request], params)          # 2 Ulysses ranks fit
    with pytest.raises(ValueError, match="step cache"):
        check_run(ParallelConfig(2, "cfg"), [request], dataclasses.replace(params, cache=0.1))

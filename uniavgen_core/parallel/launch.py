"""Running a function on N gloo CPU processes of this machine, torn down however it ends."""
from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = datetime.timedelta(minutes=10)      # a collective that waits longer than this fails


def _rank_main(rank: int, world: int, store: str, result: str, fn, args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world, timeout=TIMEOUT)
    try:
        value = fn(*args)
        if rank == 0:
            torch.save(value, result)
    finally:
        dist.destroy_process_group()


def run_on_ranks(fn, ranks: int, *args):
    """fn(*args) on `ranks` spawned processes in one gloo process group (rank 0 .. ranks - 1); returns rank 0's
    value. fn and args must be picklable (fn a module-level function). An error in any rank ends them all
    and is raised here with that rank's traceback; no process outlives the call."""
    if not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks must be a whole number of at least 1, got {ranks!r}")
    with tempfile.TemporaryDirectory(prefix="uniavgen-ranks-") as folder:
        store, result = Path(folder) / "store", Path(folder) / "result.pt"
        context = mp.start_processes(_rank_main, args=(ranks, str(store), str(result), fn, args), nprocs=ranks,
                                     join=False, start_method="spawn")
        try:
            while not context.join():
                pass
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                process.join()
        return torch.load(result, weights_only=False)

"""Running a function on N gloo CPU processes of this machine, torn down however it ends."""
from __future__ import annotations

import datetime
import os
import pickle
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = datetime.timedelta(minutes=10)      # a collective that waits longer than this fails


def _rank_main(rank: int, world: int, store: str, results, fn, args):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=world, timeout=TIMEOUT)
    try:
        value = fn(*args)
        if rank == 0:       # by value, as bytes: nothing of rank 0 has to outlive it
            results.put(pickle.dumps(value))
        dist.barrier()      # no rank leaves while another still talks to it (gloo aborts on a closed peer)
    finally:
        dist.destroy_process_group()


def run_on_ranks(fn, ranks: int, *args):
    """fn(*args) on `ranks` spawned processes in one gloo process group (rank 0 .. ranks - 1); returns rank 0's
    value. fn and args must be picklable (fn a module-level function). An error in any rank ends them all
    and is raised here with that rank's traceback; no process outlives the call."""
    if not isinstance(ranks, int) or ranks < 1:
        raise ValueError(f"ranks must be a whole number of at least 1, got {ranks!r}")
    results = mp.get_context("spawn").SimpleQueue()     # rank 0's value: the function's own return, as from a
    got = []                                            # process pool, never a file another program could plant
    with tempfile.TemporaryDirectory(prefix="uniavgen-ranks-") as folder:
        context = mp.start_processes(_rank_main, args=(ranks, str(Path(folder) / "store"), results, fn, args),
                                     nprocs=ranks, join=False, start_method="spawn")
        try:
            done = False
            while not done:
                done = context.join(timeout=0.05)
                if not got and not results.empty():     # read while rank 0 writes: a large value fills the pipe
                    got.append(pickle.loads(results.get()))
        finally:
            for process in context.processes:
                if process.is_alive():
                    process.terminate()
                process.join()
    if not got:
        raise RuntimeError("the ranks ended without rank 0's result")
    return got[0]

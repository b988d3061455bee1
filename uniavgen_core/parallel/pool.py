"""Ranks that stay: N spawned processes in one process group, each holding a model loaded once, that run one job
after another (what a host such as ComfyUI keeps while a model is loaded), with rank 0's progress, a cancel
that every rank obeys at the same step, and an end however the host ends.

    pool = RankPool(2, load_model, path)             # load_model(path) on every rank, once
    result = pool.run(job, requests, params, progress=print, cancelled=lambda: False)
    pool.close()

`job(model, *args, callback=...)` runs on every rank with the same arguments (e.g. parallel.sample_on_rank);
it must call `callback(info)` once a step on every rank. Rank 0's value is returned by value. A cancel is
agreed on by all ranks at the next step (rank 0's decision, sent to all), so none is left in a collective; an
error in any rank ends the pool (the next `run` raises until a new pool is made)."""
from __future__ import annotations

import atexit
import datetime
import os
import pickle
import queue
import tempfile
import weakref
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = datetime.timedelta(minutes=10)


class Cancelled(Exception):
    """The run was cancelled by the host (all ranks stopped at the same step)."""


class PoolError(RuntimeError):
    pass


def _serve(rank: int, world: int, store: str, backend: str, load, load_args, jobs, replies, flags):
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.set_grad_enabled(False)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world, timeout=TIMEOUT)
    try:
        model = load(*load_args)
        replies.put(("ready", rank, None))
        while True:
            job = jobs[rank].get()
            if job is None:
                break
            fn, args, kwargs = job
            try:
                value = fn(model, *args, callback=_step_callback(rank, replies, flags), **kwargs)
                replies.put(("done", rank, pickle.dumps(value) if rank == 0 else None))
            except Cancelled:
                replies.put(("cancelled", rank, None))
    finally:
        dist.destroy_process_group()


def _step_callback(rank: int, replies, flags):
    """After every step: rank 0 reports it and reads the host's cancel flag, and sends its decision to all."""
    def step(info):
        stop = torch.tensor([float(flags[0])]) if rank == 0 else torch.zeros(1)
        dist.broadcast(stop, src=0)
        if rank == 0:
            replies.put(("step", rank, pickle.dumps(info)))
        if stop.item():
            raise Cancelled
    return step


class RankPool:
    def __init__(self, ranks: int, load, *load_args, backend: str = "gloo"):
        if not isinstance(ranks, int) or ranks < 1:
            raise ValueError(f"ranks must be a whole number of at least 1, got {ranks!r}")
        ctx = mp.get_context("spawn")
        self.ranks, self.folder = ranks, tempfile.TemporaryDirectory(prefix="uniavgen-pool-")
        self.jobs = [ctx.SimpleQueue() for _ in range(ranks)]
        self.replies, self.flags = ctx.Queue(), ctx.Array("b", [0], lock=False)
        self.context = mp.start_processes(
            _serve, args=(ranks, str(Path(self.folder.name) / "store"), backend, load, load_args, self.jobs,
                          self.replies, self.flags), nprocs=ranks, join=False, start_method="spawn")
        self._closer = weakref.finalize(self, _close, self.context, self.jobs, self.folder)
        atexit.register(self._closer)
        self._wait({"ready"}, count=ranks)

    @property
    def alive(self) -> bool:
        return all(p.is_alive() for p in self.context.processes)

    def run(self, fn, *args, progress=None, cancelled=None, **kwargs):
        """fn(model, *args, callback=..., **kwargs) on every rank; rank 0's value. progress(info) after every step;
        cancelled() -> True stops all ranks at the next step and raises Cancelled."""
        if not self.alive:
            raise PoolError("a rank of this pool has ended: make a new pool (load the model again)")
        self.flags[0] = 0
        for q in self.jobs:
            q.put((fn, args, kwargs))
        return self._wait({"done", "cancelled"}, count=self.ranks, progress=progress, cancelled=cancelled)

    def _wait(self, kinds: set, count: int, progress=None, cancelled=None):
        value, seen, stopped = None, 0, False
        while seen < count:
            if cancelled is not None and not self.flags[0] and cancelled():
                self.flags[0] = 1               # rank 0 reads it after its next step and tells the others
            try:
                kind, rank, data = self.replies.get(timeout=0.05)
            except queue.Empty:
                if not self.alive:
                    try:
                        self.context.join(timeout=1)    # the failed rank's error, with its traceback
                    finally:
                        self.close()
                    raise PoolError("a rank of the pool ended: make a new pool (load the model again)")
                continue
            if kind == "step" and progress is not None:
                progress(pickle.loads(data))
            elif kind in kinds:
                seen += 1
                stopped |= kind == "cancelled"
                if rank == 0 and data is not None:
                    value = pickle.loads(data)
        if stopped:
            raise Cancelled
        return value

    def close(self) -> None:
        """End every rank (also done when the pool is collected and when the interpreter exits)."""
        self._closer()


def _close(context, jobs, folder) -> None:
    for q in jobs:
        try:
            q.put(None)
        except (OSError, ValueError):
            pass
    for process in context.processes:
        process.join(timeout=5)
        if process.is_alive():
            process.terminate()
            process.join()
    folder.cleanup()

"""Ranks that stay: N spawned processes in one process group, each holding a model loaded once, that run one job
after another (what a host such as ComfyUI keeps while a model is loaded), with rank 0's progress, a cancel
that every rank obeys at the same step, and an end however the host ends.

    pool = RankPool(["cuda:0", "cuda:1"], load, path)  # load(device, path) on every rank, once
    result = pool.run(job, requests, params, progress=print, cancelled=lambda: False)
    pool.close()

`job(model, *args, callback=...)` runs on every rank with the same arguments (e.g. parallel.sample_on_rank);
it must call `callback(info)` once a step on every rank. Rank 0's value is returned by value. A cancel is
agreed on by all ranks at the next step (rank 0's decision, sent to all), so none is left in a collective; an
error in a rank is raised by `run` as that rank raised it; it ends the pool (the next `run` raises PoolError
until a new pool is made) unless every rank failed alike, which leaves none of them inside a collective. A rank
whose host process ends, however it ends (a kill included), ends too.

The ranks start from a bare main module: spawned processes otherwise import the host's main script again
(ComfyUI's main.py would parse its arguments, run start-up scripts and import its GPU code in every rank), so
`load`, the jobs and their arguments must come from importable modules, not from the main script."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import os
import pickle
import queue
import sys
import tempfile
import threading
import time
import traceback
import types
import weakref
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

TIMEOUT = datetime.timedelta(minutes=10)
FAILED_WAIT = 2.0           # seconds a rank's error waits for the others' before the pool is ended


class Cancelled(Exception):
    """The run was cancelled by the host (all ranks stopped at the same step)."""


class PoolError(RuntimeError):
    pass


def backend_for(devices: list[str]) -> str:
    """nccl where every rank has a CUDA device of its own and torch has nccl, else gloo (CPU ranks, or ranks
    sharing one GPU, which nccl refuses)."""
    cuda = [torch.device(d) for d in devices if torch.device(d).type == "cuda"]
    if len(cuda) == len(devices) and len(set(cuda)) == len(cuda) and dist.is_nccl_available():
        return "nccl"
    return "gloo"


def parse_devices(devices) -> list[str]:
    """A list of device names from an int (that many CPU ranks), a list, or text such as "cuda:0, cuda:1"."""
    if isinstance(devices, int) and not isinstance(devices, bool):
        if devices < 1:
            raise ValueError(f"ranks must be a whole number of at least 1, got {devices!r}")
        return ["cpu"] * devices
    names = [d.strip() for d in devices.split(",")] if isinstance(devices, str) else list(devices)
    if not names or not all(names):
        raise ValueError(f"devices {devices!r}: name one device per rank, separated by commas, e.g. "
                         f"'cuda:0, cuda:1' (or 'cpu, cpu' to try it on the CPU)")
    parsed = []
    for name in names:
        try:
            device = torch.device(name)
        except (RuntimeError, TypeError):
            raise ValueError(f"device {name!r} is not a device name: use cpu, cuda or cuda:N") from None
        if device.type not in ("cpu", "cuda"):
            raise ValueError(f"device {name!r}: ranks run on cpu or cuda devices")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise ValueError(f"device {name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
                             + (f" (cuda:0 to cuda:{torch.cuda.device_count() - 1})" if torch.cuda.device_count()
                                else "; use cpu"))
        # a bare "cuda" is GPU 0, so that "cuda, cuda:0" are seen as one GPU shared by two ranks
        parsed.append(f"cuda:{device.index or 0}" if device.type == "cuda" else "cpu")
    return parsed


def _end_with_host() -> None:
    """Ends this rank when the process that started it ends, so no rank outlives a killed host."""
    host = mp.parent_process()
    if host is not None:
        threading.Thread(target=lambda: (host.join(), os._exit(1)), daemon=True, name="end-with-host").start()


def _serve(rank: int, devices: list[str], store: str, backend: str, load, load_args, jobs, replies, flags):
    _end_with_host()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    torch.set_grad_enabled(False)
    device = torch.device(devices[rank])
    if device.type == "cuda":
        torch.cuda.set_device(device)
    dist.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=len(devices),
                            timeout=TIMEOUT)
    try:
        model = load(device, *load_args)
        replies.put(("ready", rank, 0, None))
        while True:
            job = jobs[rank].get()
            if job is None:
                break
            number, fn, args, kwargs = job
            try:
                value = fn(model, *args, callback=_step_callback(rank, number, replies, flags), **kwargs)
                replies.put(("done", rank, number, pickle.dumps(_portable(value)) if rank == 0 else None))
            except Cancelled:
                replies.put(("cancelled", rank, number, None))
            except Exception as err:        # the host raises it; it ends the pool unless every rank failed
                traceback.print_exc()
                replies.put(("failed", rank, number, _error_bytes(err)))
    finally:
        dist.destroy_process_group()


def _error_bytes(err: Exception) -> bytes:
    """The error as the host will raise it: itself when it pickles, else a RuntimeError with its text."""
    try:
        data = pickle.dumps(err)
        pickle.loads(data)
        return data
    except Exception:
        return pickle.dumps(RuntimeError(f"{type(err).__name__}: {err}"))


def _step_callback(rank: int, number: int, replies, flags):
    """After every step: rank 0 reports it and reads the host's cancel flag, and sends its decision to all."""
    def step(info):
        stop = torch.tensor([float(flags[0])] if rank == 0 else [0.0], device=_collective_device())
        dist.broadcast(stop, src=0)
        if rank == 0:
            replies.put(("step", rank, number, pickle.dumps(_portable(info))))
        if stop.item():
            raise Cancelled
    return step


def _portable(value):
    """value with its tensors (also inside dataclasses, lists, tuples and dicts) on the CPU: the host reads what
    a rank sends without touching the rank's device."""
    if isinstance(value, torch.Tensor):
        return value.cpu()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.replace(value, **{f.name: _portable(getattr(value, f.name))
                                             for f in dataclasses.fields(value) if f.init})
    if type(value) in (list, tuple):
        return type(value)(_portable(v) for v in value)
    if type(value) is dict:
        return {k: _portable(v) for k, v in value.items()}
    return value


def _collective_device() -> torch.device:
    """Where this rank's small collectives live: nccl moves CUDA tensors only."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


@contextlib.contextmanager
def _bare_main():
    """Spawns started inside the block do not import this process's main script again."""
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main


class RankPool:
    def __init__(self, devices, load, *load_args, backend: str | None = None, cancelled=None):
        """devices: one per rank (parse_devices: an int is that many CPU ranks); load(device, *load_args) makes
        each rank's model; backend: gloo or nccl (default: backend_for(devices)); cancelled() -> True while the
        ranks load ends them and raises Cancelled."""
        self.devices = parse_devices(devices)
        self.ranks, self.backend = len(self.devices), backend or backend_for(self.devices)
        ctx = mp.get_context("spawn")
        self.folder = tempfile.TemporaryDirectory(prefix="uniavgen-pool-")
        self.jobs = [ctx.SimpleQueue() for _ in range(self.ranks)]
        self.replies, self.flags = ctx.Queue(), ctx.Array("b", [0], lock=False)
        self.job = 0                            # the number of the job replies are awaited for
        with _bare_main():
            self.context = mp.start_processes(
                _serve, args=(self.devices, str(Path(self.folder.name) / "store"), self.backend, load, load_args,
                              self.jobs, self.replies, self.flags), nprocs=self.ranks, join=False,
                start_method="spawn")
        self._closer = weakref.finalize(self, _close, self.context, self.jobs, self.folder)   # also at exit
        self._wait({"ready"}, count=self.ranks, cancelled=cancelled)

    @property
    def alive(self) -> bool:
        return all(p.is_alive() for p in self.context.processes)

    def run(self, fn, *args, progress=None, cancelled=None, **kwargs):
        """fn(model, *args, callback=..., **kwargs) on every rank; rank 0's value. progress(info) after every step;
        cancelled() -> True stops all ranks at the next step and raises Cancelled."""
        if not self.alive:
            raise PoolError("a rank of this pool has ended: make a new pool (load the model again)")
        self.flags[0], self.job = 0, self.job + 1
        job = (self.job, fn, _portable(args), _portable(kwargs))     # no rank opens the host's GPU
        for q in self.jobs:
            q.put(job)
        return self._wait({"done", "cancelled"}, count=self.ranks, progress=progress, cancelled=cancelled)

    def _wait(self, kinds: set, count: int, progress=None, cancelled=None):
        value, seen, stopped, error = None, 0, False, None
        while seen < count:
            if cancelled is not None and not self.flags[0] and cancelled():
                if "ready" in kinds:            # still loading: no step to stop at
                    self.close()
                    raise Cancelled
                self.flags[0] = 1               # rank 0 reads it after its next step and tells the others
            try:
                kind, rank, job, data = self.replies.get(timeout=0.05)
            except queue.Empty:
                if not self.alive:
                    try:
                        self.context.join(timeout=1)    # the failed rank's error, with its traceback
                    finally:
                        self.close()
                    raise PoolError("a rank of the pool ended: make a new pool (load the model again)")
                continue
            if job != self.job:
                continue                        # a reply to a job the host stopped waiting for
            if kind == "failed":
                self._after_failure(seen)
                raise pickle.loads(data)
            if kind == "step" and progress is not None and error is None:
                try:
                    progress(pickle.loads(data))
                except BaseException as err:    # e.g. the host's interrupt: the ranks stop too, then it is raised
                    error, self.flags[0] = err, 1
            elif kind in kinds:
                seen += 1
                stopped |= kind == "cancelled"
                if rank == 0 and data is not None:
                    value = pickle.loads(data)
        if error is not None:
            raise error
        if stopped:
            raise Cancelled
        return value

    def _after_failure(self, finished: int) -> None:
        """After a rank's error: the pool stays when every other rank also stops within FAILED_WAIT (they all
        failed alike, e.g. on a bad input, none is left in a collective), else every rank is ended."""
        failed, deadline = 1, time.monotonic() + FAILED_WAIT
        while finished + failed < self.ranks and time.monotonic() < deadline:
            try:
                kind, _, job, _ = self.replies.get(timeout=0.05)
            except queue.Empty:
                continue
            if job == self.job and kind in ("failed", "done", "cancelled"):
                failed += kind == "failed"
                finished += kind != "failed"
        if finished + failed < self.ranks or finished:
            self.close()

    def close(self) -> None:
        """End every rank (also done when the pool is collected and when the interpreter exits)."""
        self._closer()


def _close(context, jobs, folder) -> None:
    for q in jobs:
        try:
            q.put(None)
        except (OSError, ValueError):
            pass
    deadline = time.monotonic() + 5             # for all of them: a rank held in a collective never reads None
    for process in context.processes:
        process.join(timeout=max(0.0, deadline - time.monotonic()))
    for process in context.processes:
        if process.is_alive():
            process.terminate()
        process.join()
    folder.cleanup()

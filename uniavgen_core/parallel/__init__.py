"""Sampling on several devices with torch.distributed: CFG-parallel guidance and Ulysses sequence parallelism
of the video branch (docs/ARCHITECTURE.md, "Several devices")."""
from .jobs import load_on_rank, long_on_rank
from .launch import run_on_ranks
from .layout import MODES, Groups, ParallelConfig
from .pool import Cancelled, PoolError, RankPool, parse_devices
from .run import check_run, sample_on_rank

__all__ = ["run_on_ranks", "MODES", "Groups", "ParallelConfig", "check_run", "sample_on_rank", "RankPool",
           "Cancelled", "PoolError", "parse_devices", "load_on_rank", "long_on_rank"]

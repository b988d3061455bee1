"""How the ranks of a parallel run are laid out: CFG groups and Ulysses groups.

With C = 2 CFG ranks (or 1) and U Ulysses ranks, rank r has CFG index r // U and Ulysses index r % U:
ranks c*U .. c*U + U - 1 form the Ulysses group of CFG index c (they share one pass and split its
video tokens), and ranks {u, U + u} form a CFG pair (they exchange their passes' velocities).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch.distributed as dist

MODES = ("cfg", "ulysses", "cfg+ulysses")


@dataclass(frozen=True)
class ParallelConfig:
    """ranks: processes taking part; mode: "cfg" (the conditional and unconditional pass on two ranks),
    "ulysses" (the video tokens of each pass split over every rank) or "cfg+ulysses" (two halves of the
    ranks, one pass each, its video tokens split over the half)."""
    ranks: int
    mode: str

    def __post_init__(self):
        if self.mode not in MODES:
            raise ValueError(f"unknown parallel mode {self.mode!r}: choose one of {', '.join(MODES)}")
        if not isinstance(self.ranks, int) or isinstance(self.ranks, bool) or self.ranks < 2:
            raise ValueError(f"a parallel run needs a whole number of ranks of at least 2, got {self.ranks!r}")
        if self.mode == "cfg" and self.ranks != 2:
            raise ValueError(f"cfg-parallel runs the two guidance passes on 2 ranks, not {self.ranks}: "
                             f"give 2 ranks (devices), or use cfg+ulysses or ulysses to split each pass further")
        if self.mode == "cfg+ulysses" and self.ranks % 2:
            raise ValueError(f"cfg+ulysses splits the ranks into two halves, one per guidance pass; "
                             f"{self.ranks} ranks do not halve: use an even number")

    @property
    def cfg_ranks(self) -> int:
        return 2 if self.mode.startswith("cfg") else 1

    @property
    def ulysses_ranks(self) -> int:
        return self.ranks // self.cfg_ranks

    def check_frames(self, latent_frames: int) -> None:
        check_ulysses_frames(self.ulysses_ranks, latent_frames)


def check_ulysses_frames(ranks: int, latent_frames: int) -> None:
    """Every Ulysses rank must hold at least one of the 1 + F video frames (the reference first)."""
    if ranks > 1 + latent_frames:
        raise ValueError(f"{ranks} Ulysses ranks for {1 + latent_frames} video frames (the reference and "
                         f"{latent_frames} latent frames): use at most {1 + latent_frames} Ulysses ranks")


@dataclass
class Groups:
    """This rank's place and its process groups (None where that kind of split is off)."""
    config: ParallelConfig
    rank: int
    cfg_index: int            # 0: the conditional pass, 1: the unconditional one
    cfg: object               # the CFG pair of this rank
    ulysses: object           # the Ulysses group of this rank

    @classmethod
    def create(cls, config: ParallelConfig) -> "Groups":
        """The groups of `config` in the initialised default process group (every rank calls this), made once
        per process group: a run of many samples (a long job's segments) reuses them."""
        world = dist.group.WORLD
        made = _MADE.get(config)
        if made is not None and made[0] is world:
            return made[1]
        if dist.get_world_size() != config.ranks:
            raise ValueError(f"the process group has {dist.get_world_size()} ranks but the parallel configuration "
                             f"asks for {config.ranks}")
        c, u, rank = config.cfg_ranks, config.ulysses_ranks, dist.get_rank()
        # every rank creates every group, in the same order, as torch.distributed requires
        pairs = [dist.new_group([k * u + j for k in range(c)]) for j in range(u)] if c > 1 else None
        halves = [dist.new_group(list(range(k * u, (k + 1) * u))) for k in range(c)] if u > 1 else None
        groups = cls(config, rank, rank // u, pairs and pairs[rank % u], halves and halves[rank // u])
        _MADE[config] = (world, groups)
        return groups


_MADE: dict[ParallelConfig, tuple] = {}      # config -> (the default process group they belong to, Groups)

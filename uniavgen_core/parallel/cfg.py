"""CFG-parallel guidance: the conditional pass on one rank of a pair, the unconditional pass (with its
MA-CFG switches and its skipped layer, as the single-device guidance sets them) on the other, and one
all-gather of both passes' velocities a step, after which every rank combines them identically. Face masks,
when captured, are the conditional ranks' (rank 0's among them)."""
from __future__ import annotations

import torch
import torch.distributed as dist

from ..sampling.guidance import GuidedVelocity, PassVelocities, Velocity


class CfgParallelVelocity:
    """The guided velocity of `guided` (same call, same result) with its two passes on the two ranks of `pair`;
    `index` 0 runs the conditional pass, 1 the unconditional one."""

    def __init__(self, guided: GuidedVelocity, pair, index: int):
        self.guided, self.pair, self.index = guided, pair, index

    def __call__(self, video: torch.Tensor, audio: torch.Tensor, t: float, macfg: bool | None = None) -> Velocity:
        cond = self.index == 0
        mine = self.guided.passes(video, audio, t, cond=cond, null=not cond, macfg=macfg)
        self.guided.evaluations += 1                     # the pass the other rank ran
        v, a = (mine.video_cond, mine.audio_cond) if cond else (mine.video_null, mine.audio_null)
        flat = torch.cat([v.flatten(), a.flatten()])
        both = [torch.empty_like(flat) for _ in range(2)]
        _all_gather(both, flat, self.pair)
        (v_c, a_c), (v_u, a_u) = (self._unflatten(x, v, a) for x in both)
        # the face masks come from the conditional pass: the conditional rank has them (rank 0 is one)
        return self.guided.combine(PassVelocities(v_c, a_c, v_u, a_u, mine.face_masks if cond else None))

    @staticmethod
    def _unflatten(flat: torch.Tensor, video: torch.Tensor, audio: torch.Tensor):
        return flat[: video.numel()].view_as(video), flat[video.numel():].view_as(audio)


def _all_gather(parts: list[torch.Tensor], x: torch.Tensor, group) -> None:
    """dist.all_gather, through the CPU where the group's backend is gloo and x is on a GPU (gloo gathers CPU
    tensors only: two ranks sharing one GPU talk over gloo, since nccl refuses a GPU twice)."""
    if not x.is_cuda or dist.get_backend(group) != "gloo":
        dist.all_gather(parts, x, group=group)
        return
    staged = [torch.empty_like(x, device="cpu") for _ in parts]
    dist.all_gather(staged, x.cpu(), group=group)
    for part, got in zip(parts, staged):
        part.copy_(got)

"""Classifier-free guidance of the two branches (docs/MODEL.md §6.3-§6.4).

Every step runs a conditional and an unconditional pass of the DiT and moves each modality from
the unconditional velocity towards the conditional one by its own scale. The passes differ in
their prompts and in their interaction switches: Modality-Aware CFG turns both interactions off in
the unconditional pass of the first steps, and skip-layer guidance drops one layer pair there.
"""
from __future__ import annotations

from typing import NamedTuple

import torch

from ..model.conditioning import ConditionBatch, Switches
from ..model.dit import UniAVGenModel
from .params import SamplingParams, Task


def pass_switches(task: Task, step: int, params: SamplingParams) -> tuple[Switches, Switches]:
    """(conditional, unconditional) switches of one request at one step (docs/MODEL.md §6.3)."""
    on = params.interactions
    a2v = task != Task.V2A and on
    v2a_cond = on and (task in (Task.AVG, Task.V2A) or (task == Task.RAVG and params.ravg_cond_v2a))
    v2a_null = task != Task.A2V and on
    cond = Switches((a2v,), (v2a_cond,), (-1,))
    if step < int(params.macfg_fraction * params.steps):       # MA-CFG: interaction-free null pass
        null = Switches((False,), (False,), (params.slg_layer,))
    else:
        null = Switches((a2v,), (v2a_null,), (params.slg_layer,))
    return cond, null


def guide(conditional: torch.Tensor, unconditional: torch.Tensor, scale: float) -> torch.Tensor:
    """u + scale (c - u)."""
    return unconditional + scale * (conditional - unconditional)


class Velocity(NamedTuple):
    video: torch.Tensor                 # [N, C, F, h, w] float32, the generated frames (reference dropped)
    audio: torch.Tensor                 # [N, S, 80] float32
    face_masks: torch.Tensor | None     # the conditional pass's masks, when captured


class GuidedVelocity:
    """The guided velocity of a batch of requests at one step: (step, video, audio, t) -> Velocity.

    A step cache wraps an instance of this (same call, same result type) and decides when to call it."""

    def __init__(self, model: UniAVGenModel, tasks: list[Task], params: SamplingParams, cond: ConditionBatch,
                 null: ConditionBatch, capture_face_masks: bool = False):
        self.model, self.tasks, self.params = model, tasks, params
        self.cond, self.null = cond, null
        self.both = ConditionBatch.cat([cond, null]) if params.batch_cfg else None
        self.capture = capture_face_masks

    def switches(self, step: int) -> tuple[Switches, Switches]:
        per_request = [pass_switches(task, step, self.params) for task in self.tasks]
        return Switches.cat([p[0] for p in per_request]), Switches.cat([p[1] for p in per_request])

    def __call__(self, step: int, video: torch.Tensor, audio: torch.Tensor, t: torch.Tensor) -> Velocity:
        sw_c, sw_u = self.switches(step)
        n = len(self.tasks)
        if self.both is not None:          # both passes as one batched forward
            out = self.model(torch.cat([video, video]), torch.cat([audio, audio]), torch.cat([t, t]), self.both,
                             Switches.cat([sw_c, sw_u]), capture_masks=self.capture)
            vel_v_c, vel_v_u = out.video.split(n)
            vel_a_c, vel_a_u = out.audio.split(n)
            masks = None if out.face_masks is None else out.face_masks[:n]
        else:
            vel_v_c, vel_a_c, masks = self.model(video, audio, t, self.cond, sw_c, capture_masks=self.capture)
            vel_v_u, vel_a_u, _ = self.model(video, audio, t, self.null, sw_u)
        vel_v = guide(vel_v_c, vel_v_u, self.params.video_cfg)
        vel_a = guide(vel_a_c, vel_a_u, self.params.audio_cfg)
        return Velocity(vel_v[:, :, 1:], vel_a, masks)       # the reference frame's prediction is dropped

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


class PassVelocities(NamedTuple):
    """Each pass's velocity per modality before guidance combines them; a pass not run is None.
    Video [N, C, 1 + F, h, w] (the reference frame's prediction included), audio [N, S, 80], float32."""
    video_cond: torch.Tensor | None
    audio_cond: torch.Tensor | None
    video_null: torch.Tensor | None
    audio_null: torch.Tensor | None
    face_masks: torch.Tensor | None     # the conditional pass's, when captured


class GuidedVelocity:
    """The guided velocity of a batch of requests at one step: (step, video, audio, t) -> Velocity.

    A step cache wraps an instance of this (same call, same result type) and decides when to call it;
    it may run one pass alone (`passes`) and combine it with a pass it kept (`combine`)."""

    def __init__(self, model: UniAVGenModel, tasks: list[Task], params: SamplingParams, cond: ConditionBatch,
                 null: ConditionBatch, capture_face_masks: bool = False):
        self.model, self.tasks, self.params = model, tasks, params
        self.cond, self.null = cond, null
        self.both = ConditionBatch.cat([cond, null]) if params.batch_cfg else None
        self.capture = capture_face_masks

    def switches(self, step: int) -> tuple[Switches, Switches]:
        per_request = [pass_switches(task, step, self.params) for task in self.tasks]
        return Switches.cat([p[0] for p in per_request]), Switches.cat([p[1] for p in per_request])

    def passes(self, step: int, video: torch.Tensor, audio: torch.Tensor, t: torch.Tensor, cond: bool = True,
               null: bool = True) -> PassVelocities:
        """The conditional and/or unconditional pass at this step; both as one batched forward when the
        parameters ask for it."""
        sw_c, sw_u = self.switches(step)
        n = len(self.tasks)
        if cond and null and self.both is not None:
            out = self.model(torch.cat([video, video]), torch.cat([audio, audio]), torch.cat([t, t]), self.both,
                             Switches.cat([sw_c, sw_u]), capture_masks=self.capture)
            (v_c, v_u), (a_c, a_u) = out.video.split(n), out.audio.split(n)
            return PassVelocities(v_c, a_c, v_u, a_u, None if out.face_masks is None else out.face_masks[:n])
        v_c = a_c = v_u = a_u = masks = None
        if cond:
            v_c, a_c, masks = self.model(video, audio, t, self.cond, sw_c, capture_masks=self.capture)
        if null:
            v_u, a_u, _ = self.model(video, audio, t, self.null, sw_u)
        return PassVelocities(v_c, a_c, v_u, a_u, masks)

    def combine(self, p: PassVelocities) -> Velocity:
        """Each modality moved from the unconditional velocity towards the conditional one by its scale."""
        video = guide(p.video_cond, p.video_null, self.params.video_cfg)
        audio = guide(p.audio_cond, p.audio_null, self.params.audio_cfg)
        return Velocity(video[:, :, 1:], audio, p.face_masks)   # the reference frame's prediction is dropped

    def __call__(self, step: int, video: torch.Tensor, audio: torch.Tensor, t: torch.Tensor) -> Velocity:
        return self.combine(self.passes(step, video, audio, t))

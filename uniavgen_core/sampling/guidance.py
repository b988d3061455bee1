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
from .params import SamplingParams
from .tasks import TASKS, Task


def pass_switches(task: Task, params: SamplingParams, macfg: bool) -> tuple[Switches, Switches]:
    """(conditional, unconditional) switches of one request (docs/MODEL.md §6.3), from the task table;
    `macfg`: the unconditional pass is the interaction-free one of Modality-Aware CFG."""
    on = params.interactions
    (a2v_c, v2a_c), (a2v_u, v2a_u) = TASKS[task].interactions(params.ravg_cond_v2a)
    cond = Switches((a2v_c and on,), (v2a_c and on,), (-1,))
    if macfg:
        return cond, Switches((False,), (False,), (params.slg_layer,))
    return cond, Switches((a2v_u and on,), (v2a_u and on,), (params.slg_layer,))


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
    """The guided velocity of a batch of requests: (video, audio, t) -> Velocity, t a float32 timestep
    of the run's schedule or between two of them. The model sees t rounded to the schedule's dtype (bf16
    as released). MA-CFG is keyed on t itself (on above `macfg_above`), unless the caller names the field
    (`macfg`): a solver evaluating at the far end of a step takes the field of the step it is in.

    A step cache wraps an instance of this (same call, same result type) and decides when to call it;
    it may run one pass alone (`passes`) and combine it with a pass it kept (`combine`)."""

    def __init__(self, model: UniAVGenModel, tasks: list[Task], params: SamplingParams, cond: ConditionBatch,
                 null: ConditionBatch, macfg_above: float, t_dtype: torch.dtype, capture_face_masks: bool = False):
        self.model, self.tasks, self.params = model, tasks, params
        self.cond, self.null = cond, null
        self.both = ConditionBatch.cat([cond, null]) if params.batch_cfg else None
        self.capture = capture_face_masks
        self.macfg_above, self.t_dtype = macfg_above, t_dtype
        self.evaluations = 0        # passes run, per request: one batched conditional + unconditional forward is 2

    def switches(self, t: float, macfg: bool | None = None) -> tuple[Switches, Switches]:
        macfg = t > self.macfg_above if macfg is None else macfg
        per_request = [pass_switches(task, self.params, macfg) for task in self.tasks]
        return Switches.cat([p[0] for p in per_request]), Switches.cat([p[1] for p in per_request])

    def passes(self, video: torch.Tensor, audio: torch.Tensor, t: float, cond: bool = True,
               null: bool = True, macfg: bool | None = None) -> PassVelocities:
        """The conditional and/or unconditional pass at timestep t; both as one batched forward when the
        parameters ask for it."""
        sw_c, sw_u = self.switches(t, macfg)
        n = len(self.tasks)
        self.evaluations += int(cond) + int(null)
        t_model = torch.tensor(t, dtype=torch.float32).to(self.t_dtype).to(video.device).expand(n)
        if cond and null and self.both is not None:
            out = self.model(torch.cat([video, video]), torch.cat([audio, audio]), torch.cat([t_model, t_model]),
                             self.both, Switches.cat([sw_c, sw_u]), capture_masks=self.capture)
            (v_c, v_u), (a_c, a_u) = out.video.split(n), out.audio.split(n)
            return PassVelocities(v_c, a_c, v_u, a_u, None if out.face_masks is None else out.face_masks[:n])
        v_c = a_c = v_u = a_u = masks = None
        if cond:
            v_c, a_c, masks = self.model(video, audio, t_model, self.cond, sw_c, capture_masks=self.capture)
        if null:
            v_u, a_u, _ = self.model(video, audio, t_model, self.null, sw_u)
        return PassVelocities(v_c, a_c, v_u, a_u, masks)

    def combine(self, p: PassVelocities) -> Velocity:
        """Each modality moved from the unconditional velocity towards the conditional one by its scale."""
        video = guide(p.video_cond, p.video_null, self.params.video_cfg)
        audio = guide(p.audio_cond, p.audio_null, self.params.audio_cfg)
        return Velocity(video[:, :, 1:], audio, p.face_masks)   # the reference frame's prediction is dropped

    def __call__(self, video: torch.Tensor, audio: torch.Tensor, t: float, macfg: bool | None = None) -> Velocity:
        return self.combine(self.passes(video, audio, t, macfg=macfg))

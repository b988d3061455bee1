"""What a sampling run is asked for and what it returns: tasks, parameters, requests, results."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..model.conditioning import Condition
from .schedule import SCHEDULES
from .solvers import SOLVERS, check_options
from .tasks import Task


MAX_STEPS = 1000
MAX_GUIDANCE = 100.0           # far past any useful scale (the release: 3 and 2); beyond, the guided step overflows
SHIFT_RANGE = (0.01, 100.0)    # the release: 5; far outside, the schedule collapses onto one end (0/0 at 1e-30)


@dataclass(frozen=True)
class SamplingParams:
    steps: int = 50
    shift: float = 5.0
    video_cfg: float = 3.0
    audio_cfg: float = 2.0
    macfg_fraction: float = 0.5     # fraction of steps whose unconditional pass has both interactions off
    slg_layer: int = 11         # layer pair skipped in the unconditional pass; <= 0 turns it off
    # The release turns V2A off in RAVG's conditional pass only (docs/MODEL.md §8.1), so late
    # guidance pushes the audio away from the video. False reproduces the release; True keeps V2A
    # on in that pass, consistent with AVG.
    ravg_cond_v2a: bool = False
    batch_cfg: bool = True      # conditional and unconditional passes as one batched forward
    interactions: bool = True   # False: both cross-modal interactions off in every pass (an ablation)
    schedule_dtype: torch.dtype | None = None   # None: the model's compute dtype, as released
    solver: str = "euler"       # a name registered in solvers.SOLVERS
    solver_options: dict = field(default_factory=dict, hash=False)   # keyword arguments of the solver
    schedule: str = "release"   # a name in schedule.SCHEDULES: the grid of timesteps, chosen apart from the solver
    cache: float = 0.0          # step cache threshold (cache.StepCache): 0 runs every pass, as released

    def __post_init__(self):
        for name in ("shift", "video_cfg", "audio_cfg", "macfg_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {self.steps!r}")
        if not 0.0 <= self.macfg_fraction <= 1.0:
            raise ValueError(f"macfg_fraction must be within [0, 1], got {self.macfg_fraction}")
        if not SHIFT_RANGE[0] <= self.shift <= SHIFT_RANGE[1]:
            raise ValueError(f"shift {self.shift:g} is outside {SHIFT_RANGE[0]:g}..{SHIFT_RANGE[1]:g}: the noise "
                             f"schedule would collapse onto one end; the release uses 5")
        for name in ("video_cfg", "audio_cfg"):
            if abs(getattr(self, name)) > MAX_GUIDANCE:
                raise ValueError(f"{name} {getattr(self, name):g} is beyond {MAX_GUIDANCE:g}: the guided step "
                                 f"would overflow; the release uses 3 (video) and 2 (audio)")
        if self.solver not in SOLVERS:
            raise ValueError(f"unknown solver {self.solver!r} (choose from {', '.join(SOLVERS)})")
        check_options(self.solver, self.solver_options)
        if not isinstance(self.cache, (int, float)) or isinstance(self.cache, bool) or not 0 <= self.cache <= 1:
            raise ValueError(f"cache must be a number from 0 (off) to 1, got {self.cache!r}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r} (choose from {', '.join(SCHEDULES)})")


@dataclass
class Request:
    """One generation job. Latents are normalised Wan2.2 latents, mels normalised (docs/MODEL.md §7.6, §7.3).

    `condition` / `null_condition` hold the prompts of the conditional and unconditional passes
    (null: the negative caption and speech text; the same reference and conditioning inputs)."""
    task: Task
    condition: Condition
    null_condition: Condition
    latent_frames: int      # F, generated latent frames including the first (reference) one
    mel_frames: int         # S, generated mel frames
    seed: int = 2025

    @property
    def latent_size(self) -> tuple:
        return tuple(self.condition.ref_latent.shape[2:])


@dataclass
class StepInfo:
    step: int                          # 0-based index of the finished step
    steps: int
    timestep: float
    video: torch.Tensor                # [N, C, F, h, w] latents after this step (float32)
    audio: torch.Tensor                # [N, S, 80]
    denoised_video: torch.Tensor       # current estimate of the clean latents, for previews
    denoised_audio: torch.Tensor
    face_masks: torch.Tensor | None    # [N, layers, F, h/2, w/2] from the conditional pass, if requested


@dataclass
class SampleResult:
    video: torch.Tensor                # [N, C, F, h, w] float32, conditions written back (docs/MODEL.md §6.5)
    audio: torch.Tensor                # [N, S, 80] float32
    face_masks: torch.Tensor | None = None   # last step's conditional-pass masks, if requested
    evaluations: int = 0               # guidance passes of the model run per request (2 a step without a cache)

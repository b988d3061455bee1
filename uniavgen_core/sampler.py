"""Flow-matching sampler with per-modality and modality-aware CFG (docs/MODEL.md §6)."""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .conditioning import Condition, ConditionBatch, Switches
from .model import UniAVGenModel

NUM_TIMESTEPS = 1000


class Task(enum.IntEnum):
    AVG = 0    # joint audio + video from a reference face, caption and transcript
    RAVG = 1   # the same with a reference voice
    A2V = 2    # audio-driven video
    V2A = 3    # video-driven audio (dubbing)


MAX_STEPS = 1000


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

    def __post_init__(self):
        for name in ("shift", "video_cfg", "audio_cfg", "macfg_fraction"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        if not isinstance(self.steps, int) or not 1 <= self.steps <= MAX_STEPS:
            raise ValueError(f"steps must be a whole number from 1 to {MAX_STEPS}, got {self.steps!r}")
        if not 0.0 <= self.macfg_fraction <= 1.0:
            raise ValueError(f"macfg_fraction must be within [0, 1], got {self.macfg_fraction}")
        if self.shift <= 0:
            raise ValueError(f"shift must be > 0, got {self.shift}")


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


def timesteps(steps: int, shift: float, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """[steps + 1] shifted timesteps from 1000 to 0 (docs/MODEL.md §6.2): linspace(1000, 1) in float32,
    a final 0, the shift in float32, then rounded to `dtype` (bf16 in the release)."""
    base = np.append(np.linspace(NUM_TIMESTEPS, 1, steps, dtype=np.float32), np.float32(0.0))
    s = torch.from_numpy(base) / NUM_TIMESTEPS
    return (shift * s / (1 + (shift - 1) * s) * NUM_TIMESTEPS).to(dtype)


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


def seeded_noise(request: Request) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 CPU noise: video [1, 48, F, h, w] then audio [1, S, 80] from one generator seeded
    with the request's seed, so a seed gives the same result on any device."""
    gen = torch.Generator("cpu").manual_seed(request.seed)
    video = torch.randn((1, request.condition.ref_latent.shape[0], request.latent_frames, *request.latent_size),
                        generator=gen)
    return video, torch.randn((1, request.mel_frames, 80), generator=gen)


def _check_inputs(model: UniAVGenModel, requests: list[Request]):
    """What the model would turn into an index error, a matmul error or NaN, named before any work."""
    cfg = model.config
    for i, r in enumerate(requests):
        if not isinstance(r.seed, int) or not 0 <= r.seed < 2 ** 64:
            raise ValueError(f"request {i}: seed must be a whole number from 0 to 2**64 - 1, got {r.seed!r}")
        for which, c in (("condition", r.condition), ("null_condition", r.null_condition)):
            where = f"request {i} {which}"
            ids = c.speech_ids
            if ids.numel() and (int(ids.min()) < -1 or int(ids.max()) >= cfg.speech_vocab_size):
                raise ValueError(f"{where}: speech ids {int(ids.min())}..{int(ids.max())} are outside this model's "
                                 f"vocabulary (0..{cfg.speech_vocab_size - 1}, -1 pads): the vocabulary does not "
                                 f"belong to this model")
            if c.caption.dim() == 2 and c.caption.shape[0] and c.caption.shape[1] != cfg.text_dim:
                raise ValueError(f"{where}: caption features are {c.caption.shape[1]} wide; this model takes "
                                 f"{cfg.text_dim} (umT5-XXL for the release)")
            for name in ("caption", "ref_latent", "cond_latent", "ref_mel", "cond_mel"):
                t = getattr(c, name)
                if t is not None and t.is_floating_point() and not bool(torch.isfinite(t).all()):
                    raise ValueError(f"{where}: {name} contains NaN or infinite values; an input (picture, "
                                     f"audio, prompt) or an upstream node is broken")


def _check_batch(requests: list[Request]):
    if not requests:
        raise ValueError("no requests to sample")
    first = requests[0]
    for r in requests[1:]:
        if (r.latent_frames, r.mel_frames, r.latent_size) != (first.latent_frames, first.mel_frames, first.latent_size):
            raise ValueError("requests in one batch must share frames, mel frames and latent size; "
                             f"got {(first.latent_frames, first.mel_frames, first.latent_size)} and "
                             f"{(r.latent_frames, r.mel_frames, r.latent_size)}")
    for r in requests:
        if r.task == Task.V2A and r.condition.video_cond_frames != r.latent_frames:
            raise ValueError(f"V2A needs the whole conditioning video ({r.latent_frames} latent frames), "
                             f"got {r.condition.video_cond_frames}")
        if r.task == Task.A2V and r.condition.audio_cond_frames == 0:
            raise ValueError("A2V needs driving audio (cond_mel)")
        if r.task == Task.RAVG and r.condition.ref_len == 0:
            raise ValueError("RAVG needs a reference voice (ref_mel)")


@torch.no_grad()
def sample(model: UniAVGenModel, requests: list[Request], params: SamplingParams = SamplingParams(),
           noise: tuple[torch.Tensor, torch.Tensor] | None = None,
           callback: Callable[[StepInfo], None] | None = None, capture_face_masks: bool = False,
           device: torch.device | str | None = None) -> SampleResult:
    """Euler flow-matching from noise to clean latents for a batch of requests.

    noise: (video [N, C, F, h, w], audio [N, S, 80]); default: each request's seeded noise.
    callback: called after every step with a StepInfo; raise from it to cancel.
    device: where to compute (default: where the model's first weight is; a memory manager
    that streams weights passes its compute device).
    """
    _check_batch(requests)
    _check_inputs(model, requests)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = model.compute_dtype
    first = requests[0]
    stack = lambda conds: ConditionBatch.stack(conds, first.latent_frames, first.mel_frames,
                                               model.config.text_len, device, dtype)
    cond_batch, null_batch = stack([r.condition for r in requests]), stack([r.null_condition for r in requests])
    both = ConditionBatch.cat([cond_batch, null_batch]) if params.batch_cfg else None
    if noise is None:
        pairs = [seeded_noise(r) for r in requests]
        noise = (torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
    x_v, x_a = (n.to(device=device, dtype=torch.float32) for n in noise)
    sched_host = timesteps(params.steps, params.shift, params.schedule_dtype or dtype)
    sched = sched_host.to(device)
    n = len(requests)
    masks = None

    try:
        for i in range(params.steps):
            per_request = [pass_switches(r.task, i, params) for r in requests]
            sw_c = Switches.cat([p[0] for p in per_request])
            sw_u = Switches.cat([p[1] for p in per_request])
            t = sched[i].expand(n)
            v_in, a_in = x_v.to(dtype), x_a.to(dtype)
            if params.batch_cfg:
                out = model(torch.cat([v_in, v_in]), torch.cat([a_in, a_in]), torch.cat([t, t]), both,
                            Switches.cat([sw_c, sw_u]), capture_masks=capture_face_masks)
                vel_v_c, vel_v_u = out.video.split(n)
                vel_a_c, vel_a_u = out.audio.split(n)
                masks = None if out.face_masks is None else out.face_masks[:n]
            else:
                out_c = model(v_in, a_in, t, cond_batch, sw_c, capture_masks=capture_face_masks)
                out_u = model(v_in, a_in, t, null_batch, sw_u)
                (vel_v_c, vel_a_c, masks), (vel_v_u, vel_a_u, _) = out_c, out_u
            vel_v = vel_v_u + params.video_cfg * (vel_v_c - vel_v_u)
            vel_a = vel_a_u + params.audio_cfg * (vel_a_c - vel_a_u)
            dt = (sched[i] - sched[i + 1]) / NUM_TIMESTEPS
            x_a = x_a + (-vel_a) * dt
            x_v = x_v + (-vel_v[:, :, 1:]) * dt           # the reference frame's prediction is dropped
            if not bool(torch.isfinite(x_v).all() & torch.isfinite(x_a).all()):      # one device sync
                raise FloatingPointError(f"step {i + 1} of {params.steps} produced NaN or infinite values; the "
                                         f"weights or the compute precision overflowed: load the model in bf16 "
                                         f"or fp32")
            if callback is not None:
                sigma = float(sched_host[i]) / NUM_TIMESTEPS
                callback(StepInfo(i, params.steps, float(sched_host[i]), x_v, x_a,
                                  v_in.float() - sigma * vel_v[:, :, 1:], a_in.float() - sigma * vel_a, masks))
    finally:
        if getattr(model, "block_swap", None) is not None:
            model.block_swap.park()        # drop the next step's prefetched layer

    # write the conditions back (docs/MODEL.md §6.5)
    for j, r in enumerate(requests):
        x_v[j, :, : r.condition.video_cond_frames] = r.condition.cond_latent.to(x_v)
        if r.condition.audio_cond_frames:
            x_a[j, : r.condition.audio_cond_frames] = r.condition.cond_mel.to(x_a)
    return SampleResult(x_v, x_a, masks)

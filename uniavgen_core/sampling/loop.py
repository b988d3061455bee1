"""The sampling loop: noise to clean latents for a batch of requests (docs/MODEL.md §6).

Each step asks the guidance for a velocity and the solver for an update; the loop itself only
checks inputs and results, reports progress and writes the conditions back at the end. `prepare` and
`Prepared.finish` are its two ends, apart, for a sampler written elsewhere to drive the same guided
velocity (flat.py)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..model.conditioning import ConditionBatch
from ..model.dit import UniAVGenModel
from ..units import N_MELS
from .cache import StepCache
from .presets import PRESETS, Preset
from .guidance import GuidedVelocity, Velocity
from .params import Request, SampleResult, SamplingParams, StepInfo
from .tasks import TASKS, Given
from . import flow
from . import schedule
from . import solvers
from .solvers import State


MAX_INPUT = 1e4      # normalised latents and mels and umT5 features stay within a few units; 1e4 is fp16-safe


def seeded_noise(request: Request) -> tuple[torch.Tensor, torch.Tensor]:
    """float32 CPU noise: video [1, 48, F, h, w] then audio [1, S, 80] from one generator seeded
    with the request's seed, so a seed gives the same result on any device."""
    gen = torch.Generator("cpu").manual_seed(request.seed)
    video = torch.randn((1, request.condition.ref_latent.shape[0], request.latent_frames, *request.latent_size),
                        generator=gen)
    return video, torch.randn((1, request.mel_frames, N_MELS), generator=gen)


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
                if t is None or not t.is_floating_point() or not t.numel():
                    continue
                if not bool(torch.isfinite(t).all()):
                    raise ValueError(f"{where}: {name} contains NaN or infinite values; an input (picture, "
                                     f"audio, prompt) or an upstream node is broken")
                peak = float(t.abs().max())
                if peak > MAX_INPUT:
                    raise ValueError(f"{where}: {name} holds values up to {peak:.3g}, far beyond the few units of a "
                                     f"normalised input (at most {MAX_INPUT:g} is taken): an upstream node scaled "
                                     f"it wrongly")


def overflow_cause(params: SamplingParams, dtype: torch.dtype) -> str:
    """What to change after a step overflowed, given what is known here: the inputs were checked
    finite and in range before sampling, so the precision, the guidance or the weights are left."""
    causes = []
    if max(abs(params.video_cfg), abs(params.audio_cfg)) > 10:
        causes.append(f"the guidance (video_cfg {params.video_cfg:g}, audio_cfg {params.audio_cfg:g}; the release "
                      f"uses 3 and 2) multiplies the gap between two predictions that much: lower it")
    if dtype == torch.float16:
        causes.append("float16 overflows past 65504: load the model in bf16 or fp32")
    else:
        causes.append(f"the model computes in {str(dtype).removeprefix('torch.')}, whose range is float32's, so "
                      f"its weights produce these values: a LoRA at too high a strength, or a damaged checkpoint")
    return "; ".join(causes)


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
        c = r.condition
        TASKS[r.task].check_conditions(r.latent_frames, r.mel_frames, c.video_cond_frames, c.audio_cond_frames,
                                       c.ref_len)


@dataclass
class Prepared:
    """A checked run before its first step, for any driver of the guided velocity: `sample` steps it with the
    pack's solvers; a sampler written elsewhere may drive it (flat.Denoiser), then hands its result to `finish`."""
    model: UniAVGenModel
    requests: list[Request]
    params: SamplingParams
    schedule: schedule.Schedule     # the timesteps, MA-CFG's boundary and where the guided velocity jumps
    velocity: Callable[..., Velocity]     # (video, audio, float32 timestep) -> Velocity; the state in `dtype`
    guided: GuidedVelocity          # the guidance under any cache or wrapper: it counts the passes run
    noise: State                    # (video [N, C, F, h, w], audio [N, S, 80]) float32 on the compute device
    dtype: torch.dtype              # the model's compute dtype
    t_dtype: torch.dtype            # what the model's timesteps and the pack's solvers are rounded to

    @property
    def steps(self) -> int:
        return len(self.schedule.keys) - 1

    def park(self):
        """Drop what block swap prefetched for a next step (call it however the run ends)."""
        if getattr(self.model, "block_swap", None) is not None:
            self.model.block_swap.park()

    def finish(self, video: torch.Tensor, audio: torch.Tensor, face_masks: torch.Tensor | None = None) -> SampleResult:
        """The clean state with the conditions written back into it (docs/MODEL.md §6.5)."""
        for j, r in enumerate(self.requests):
            video[j, :, : r.condition.video_cond_frames] = r.condition.cond_latent.to(video)
            if r.condition.audio_cond_frames:
                audio[j, : r.condition.audio_cond_frames] = r.condition.cond_mel.to(audio)
        return SampleResult(video, audio, face_masks, self.guided.evaluations)


def prepare(model: UniAVGenModel, requests: list[Request], params: SamplingParams = SamplingParams(),
            noise: tuple[torch.Tensor, torch.Tensor] | None = None, capture_face_masks: bool = False,
            device: torch.device | str | None = None,
            wrap_velocity: Callable[[GuidedVelocity], Callable[..., Velocity]] | None = None,
            sigmas: torch.Tensor | None = None, preset: Preset | str | None = None) -> Prepared:
    """Checks the requests and builds the guided velocity, the schedule and the float32 noise state on the
    compute device (the arguments: `sample`'s)."""
    if isinstance(preset, str) and preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if preset is not None:
        params = (PRESETS[preset] if isinstance(preset, str) else preset).apply(params)
    _check_batch(requests)
    _check_inputs(model, requests)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    dtype = model.compute_dtype
    first = requests[0]
    stack = lambda conds: ConditionBatch.stack(conds, first.latent_frames, first.mel_frames,
                                               model.config.text_len, device, dtype)
    t_dtype = params.schedule_dtype or dtype
    if sigmas is None:
        grid = schedule.build(params.schedule, params.steps, params.shift, params.macfg_fraction)
    else:
        grid = schedule.from_sigmas(sigmas, params.shift, params.macfg_fraction)
    velocity = GuidedVelocity(model, [r.task for r in requests], params, stack([r.condition for r in requests]),
                              stack([r.null_condition for r in requests]), grid.macfg_above, t_dtype,
                              capture_face_masks)
    guided = velocity
    if params.cache:
        velocity = StepCache(velocity, params.cache)
    if wrap_velocity is not None:
        velocity = wrap_velocity(velocity)
    if noise is None:
        pairs = [seeded_noise(r) for r in requests]
        noise = (torch.cat([p[0] for p in pairs]), torch.cat([p[1] for p in pairs]))
    state = tuple(n.to(device=device, dtype=torch.float32) for n in noise)
    return Prepared(model, requests, params, grid, velocity, guided, state, dtype, t_dtype)


@torch.no_grad()
def sample(model: UniAVGenModel, requests: list[Request], params: SamplingParams = SamplingParams(),
           noise: tuple[torch.Tensor, torch.Tensor] | None = None,
           callback: Callable[[StepInfo], None] | None = None, capture_face_masks: bool = False,
           device: torch.device | str | None = None,
           wrap_velocity: Callable[[GuidedVelocity], Callable[..., Velocity]] | None = None,
           sigmas: torch.Tensor | None = None, preset: Preset | str | None = None) -> SampleResult:
    """Flow-matching from noise to clean latents for a batch of requests, with the guidance of
    `params` and its solver (Euler as released).

    noise: (video [N, C, F, h, w], audio [N, S, 80]); default: each request's seeded noise.
    callback: called after every step with a StepInfo; raise from it to cancel.
    device: where to compute (default: where the model's first weight is; a memory manager
    that streams weights passes its compute device).
    wrap_velocity: wraps the guided velocity (same call: video, audio, float32 timestep; same result),
    e.g. a step cache that reuses earlier velocities instead of running the model.
    preset: a name in presets.PRESETS or a Preset: its steps, solver, schedule and cache over `params`
    (whose guidance stays).
    sigmas: noise levels from 1 to 0 made elsewhere, in place of the parameters' schedule and steps
    (schedule.from_sigmas: MA-CFG is on above `schedule.macfg_switch`).
    """
    run = prepare(model, requests, params, noise, capture_face_masks, device, wrap_velocity, sigmas, preset)
    params = run.params
    grid, velocity, dtype, steps = run.schedule, run.velocity, run.dtype, run.steps
    keys = grid.keys                # float32: what guidance keys on; rounded to t_dtype for the model and the solver

    def evaluate(state: State, t: float, step: int) -> State:
        """The guided velocity of a solver's state at timestep t in the velocity field of step `step`, for
        solvers that evaluate between steps or at a step's far end."""
        vel = velocity(state[0].to(dtype), state[1].to(dtype), t, macfg=float(keys[step]) > grid.macfg_above)
        return vel.video, vel.audio

    x_v, x_a = run.noise
    sched_host = keys.to(run.t_dtype)
    video_given = torch.tensor([TASKS[r.task].video == Given.ALL for r in run.requests], device=x_v.device)
    solver = solvers.build(params.solver, sched_host.to(x_v.device), grid.breaks, video_given, params.solver_options)
    masks = None

    try:
        for i in range(steps):
            v_in, a_in = x_v.to(dtype), x_a.to(dtype)
            vel = velocity(v_in, a_in, float(keys[i]))
            masks = vel.face_masks
            x_v, x_a = solver.step(i, (x_v, x_a), (vel.video, vel.audio), evaluate)
            if not bool(torch.isfinite(x_v).all() & torch.isfinite(x_a).all()):      # one device sync
                raise FloatingPointError(f"step {i + 1} of {steps} produced NaN or infinite values: "
                                         f"{overflow_cause(params, dtype)}")
            if callback is not None:
                level = flow.sigma(float(sched_host[i]))
                callback(StepInfo(i, steps, float(sched_host[i]), x_v, x_a,
                                  flow.denoised(v_in.float(), vel.video, level),
                                  flow.denoised(a_in.float(), vel.audio, level), masks))
    finally:
        run.park()        # drop the next step's prefetched layer
    return run.finish(x_v, x_a, masks)

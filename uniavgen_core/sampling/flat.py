"""The joint state as one flat tensor and the guided velocity as a denoiser, for samplers written for a
single latent tensor and a data prediction (k-diffusion's convention, which ComfyUI's samplers follow).

The state (video [N, C, F, h, w], audio [N, S, 80]) is one float32 tensor [N, D], a row per request; a sampler
calls the denoiser with it and a noise level sigma in [0, 1] and gets the clean sample it points at,
x - sigma v (flow.py), v the guided velocity at timestep 1000 sigma in its MA-CFG field (loop.prepare)."""
from __future__ import annotations

import math

import torch

from . import flow
from .loop import Prepared, overflow_cause


class FlatLayout:
    """(video, audio) <-> one float32 tensor [N, D], D = C F h w + S 80: each row is one request's video then
    its audio, flattened."""

    def __init__(self, video_shape: tuple[int, ...], audio_shape: tuple[int, ...]):
        self.video_shape, self.audio_shape = tuple(video_shape), tuple(audio_shape)
        self.split = (math.prod(video_shape[1:]), math.prod(audio_shape[1:]))

    def pack(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        n = self.video_shape[0]
        return torch.cat([video.reshape(n, -1), audio.reshape(n, -1)], dim=1).float()

    def unpack(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        video, audio = flat.split(self.split, dim=1)
        return video.reshape(self.video_shape), audio.reshape(self.audio_shape)


class Denoiser:
    """(x [N, D], sigma) -> x - sigma v, the data prediction of a prepared run's guided velocity; sigma a number
    or a tensor of one level per row (the same for all). Keeps the last call's face masks (when captured)."""

    def __init__(self, run: Prepared):
        self.run = run
        self.layout = FlatLayout(run.noise[0].shape, run.noise[1].shape)
        self.face_masks: torch.Tensor | None = None

    def noise(self) -> torch.Tensor:
        """The run's seeded noise, flat."""
        return self.layout.pack(*self.run.noise)

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, sigma) -> torch.Tensor:
        levels = torch.as_tensor(sigma, dtype=torch.float32).reshape(-1)
        level = levels[:1]
        if not bool((levels == level).all()):
            raise ValueError(f"one noise level per call, got {levels.tolist()} for the rows of the batch")
        video, audio = self.layout.unpack(x)
        dtype = self.run.dtype
        # t = 1000 sigma in float32, as from_sigmas makes the timesteps MA-CFG's boundary is compared with
        vel = self.run.velocity(video.to(dtype), audio.to(dtype), float(flow.timestep(level.cpu())))
        self.face_masks = vel.face_masks
        out = flow.denoised(x, self.layout.pack(vel.video, vel.audio).to(x.dtype), level.to(x))
        if not bool(torch.isfinite(out).all()):
            cause = ("the sampler's own state was, so the sampler diverged on these sigmas" if not
                     bool(torch.isfinite(x).all()) else overflow_cause(self.run.params, dtype))
            raise FloatingPointError(f"the prediction at noise level {float(level):.4g} holds NaN or infinite "
                                     f"values: {cause}")
        return out

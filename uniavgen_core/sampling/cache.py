"""An audio-video-aware step cache: runs a guidance pass only when reusing its last output would move
the guided velocity of either modality by more than a threshold.

Every step needs two passes of the DiT, conditional (c) and unconditional (u), and each yields both
modalities, since the two branches run together. Modality m's guided velocity is u + s_m (c - u)
(s_m: video_cfg, audio_cfg), so reusing a stale pass changes it by w (its change), w = s_m for the
conditional pass and 1 - s_m for the unconditional one. The change of a pass's output is estimated from
how far the state has moved since the pass last ran, times the pass's own rate of change measured
between its last two runs (the output-to-input ratio that TeaCache and EasyCache track):

    estimate(p, m) = |w_p,m| k_p,m |x_m - x_p,m| / |v_m|,   k_p,m = |out_p,m - out'_p,m| / |x_p,m - x'_p,m|

with x_p, out_p (x'_p, out'_p) the state and output at the pass's last (previous) run and v_m the last
guided velocity; norms are taken per request and the largest counts. A pass runs when its estimate for
video OR audio exceeds the threshold, so the audio is never traded for the video; the two passes are
decided separately (reusing the unconditional pass alone halves a step's cost), and a pass always runs
while it has fewer than two runs behind it in its current field (MA-CFG's switch changes the
unconditional pass's field).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .guidance import GuidedVelocity, PassVelocities, Velocity

PASSES = ("cond", "null")


def _row_norms(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).float().norm(dim=1)


@dataclass
class _Run:
    state: tuple[torch.Tensor, torch.Tensor]      # the (video, audio) the pass ran on
    out: tuple[torch.Tensor, torch.Tensor]        # its (video, audio) velocities
    field: bool                                   # MA-CFG on for that run
    rate: tuple[float, float] | None = None       # k per modality, from this run and the one before


class StepCache:
    """Wraps a GuidedVelocity: same call, same result type, fewer passes (the inner one counts those run).
    `threshold` > 0: the largest estimated relative change of a guided velocity a reused pass may cause."""

    def __init__(self, inner: GuidedVelocity, threshold: float):
        if not threshold > 0:
            raise ValueError(f"the step cache's threshold must be above 0, got {threshold!r}; 0 turns it off")
        self.inner, self.threshold = inner, threshold
        self.runs: dict[str, _Run | None] = dict.fromkeys(PASSES)
        self.guided_norms: tuple[torch.Tensor, torch.Tensor] | None = None
        self.masks = None
        p = inner.params
        self.weights = {"cond": (p.video_cfg, p.audio_cfg), "null": (1 - p.video_cfg, 1 - p.audio_cfg)}

    def _needed(self, name: str, state, field: bool) -> bool:
        run = self.runs[name]
        if run is None or run.rate is None or self.guided_norms is None or (name == "null" and run.field != field):
            return True
        for m in range(2):
            moved = _row_norms(state[m] - run.state[m])
            estimate = abs(self.weights[name][m]) * run.rate[m] * moved / self.guided_norms[m].clamp_min(1e-12)
            if float(estimate.max()) > self.threshold:
                return True
        return False

    def _remember(self, name: str, state, out, field: bool):
        before, rate = self.runs[name], None
        if before is not None and before.field == field:          # no rate across MA-CFG's jump
            rate = tuple(float((_row_norms(out[m] - before.out[m]) /
                                _row_norms(state[m] - before.state[m]).clamp_min(1e-12)).max()) for m in range(2))
        self.runs[name] = _Run(tuple(s.clone() for s in state), out, field, rate)

    def __call__(self, video: torch.Tensor, audio: torch.Tensor, t: float, macfg: bool | None = None) -> Velocity:
        field = t > self.inner.macfg_above if macfg is None else macfg
        state = (video, audio)
        run = {name: self._needed(name, state, field) for name in PASSES}
        fresh = self.inner.passes(video, audio, t, cond=run["cond"], null=run["null"], macfg=field) \
            if any(run.values()) else None
        for name in PASSES:
            if run[name]:
                out = (fresh.video_cond, fresh.audio_cond) if name == "cond" else (fresh.video_null, fresh.audio_null)
                self._remember(name, state, out, field)
        if run["cond"]:
            self.masks = fresh.face_masks
        c, u = self.runs["cond"].out, self.runs["null"].out
        guided = self.inner.combine(PassVelocities(c[0], c[1], u[0], u[1], self.masks))
        self.guided_norms = (_row_norms(guided.video), _row_norms(guided.audio))
        return guided

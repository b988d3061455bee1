"""An audio-video-aware step cache: runs a guidance pass only when reusing what it last gave would move
the guided velocity of either modality by more than a threshold.

Every step needs two passes of the DiT, conditional (c) and unconditional (u), and each yields both
modalities, since the two branches run together. Modality m's guided velocity is u + s_m (c - u)
(s_m: video_cfg, audio_cfg). A pass not run is taken from what ran before:

- the conditional pass, as its last output: the guided velocity changes by s_m times the change of c;
- the unconditional pass, when the conditional one runs, as the fresh c minus the difference d = c - u of
  the last step that ran both (the guidance direction, which changes far more slowly than either pass:
  the two share the state's motion); the guided velocity then changes by (1 - s_m) times the change of d;
- the unconditional pass, when neither runs, as what the last step used.

The change of a reused quantity q (c, d, or u) is estimated from how far the state has moved since q was
last measured, times q's own rate of change between its last two measurements (the output-to-input ratio
that TeaCache and EasyCache track):

    estimate(q, m) = |w_q,m| k_q,m |x_m - x_q,m| / |v_m|,   k_q,m = |q_m - q'_m| / |x_q,m - x'_q,m|

with w the weight above, x_q, q (x'_q, q') the state and value at the last (previous) measurement and v_m
the last guided velocity; norms are taken per request and the largest counts. A pass runs when its estimate
for video OR audio exceeds the threshold, so the audio is never traded for the video; the conditional pass
is decided first, then the unconditional one by the estimate that applies, and each always runs while its
quantity has fewer than two measurements behind it in its current field (MA-CFG's switch changes the
unconditional pass's field, and with it d's).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .guidance import GuidedVelocity, PassVelocities, Velocity


def _row_norms(x: torch.Tensor) -> torch.Tensor:
    return x.flatten(1).float().norm(dim=1)


@dataclass
class _Measured:
    state: tuple[torch.Tensor, torch.Tensor]      # the (video, audio) it was measured on
    value: tuple[torch.Tensor, torch.Tensor]      # its (video, audio) value there
    field: bool                                   # MA-CFG on for that measurement
    rate: tuple[float, float] | None = None       # k per modality, from this measurement and the one before


class StepCache:
    """Wraps a GuidedVelocity: same call, same result type, fewer passes (the inner one counts those run).
    `threshold` > 0: the largest estimated relative change of a guided velocity a reused pass may cause."""

    def __init__(self, inner: GuidedVelocity, threshold: float):
        if not threshold > 0:
            raise ValueError(f"the step cache's threshold must be above 0, got {threshold!r}; 0 turns it off")
        self.inner, self.threshold = inner, threshold
        self.measured: dict[str, _Measured | None] = {"cond": None, "null": None, "difference": None}
        self.used_null: tuple[torch.Tensor, torch.Tensor] | None = None   # the u the last step combined
        self.guided_norms: tuple[torch.Tensor, torch.Tensor] | None = None
        self.masks = None
        p = inner.params
        null = (1 - p.video_cfg, 1 - p.audio_cfg)
        self.weights = {"cond": (p.video_cfg, p.audio_cfg), "null": null, "difference": null}

    def _needed(self, name: str, state, field: bool) -> bool:
        known = self.measured[name]
        if known is None or known.rate is None or self.guided_norms is None or (
                name != "cond" and known.field != field):
            return True
        for m in range(2):
            moved = _row_norms(state[m] - known.state[m])
            estimate = abs(self.weights[name][m]) * known.rate[m] * moved / self.guided_norms[m].clamp_min(1e-12)
            if float(estimate.max()) > self.threshold:
                return True
        return False

    def _measure(self, name: str, state, value, field: bool):
        before, rate = self.measured[name], None
        if before is not None and before.field == field:          # no rate across MA-CFG's jump
            rate = tuple(float((_row_norms(value[m] - before.value[m]) /
                                _row_norms(state[m] - before.state[m]).clamp_min(1e-12)).max()) for m in range(2))
        self.measured[name] = _Measured(tuple(s.clone() for s in state), value, field, rate)

    def __call__(self, video: torch.Tensor, audio: torch.Tensor, t: float, macfg: bool | None = None) -> Velocity:
        field = t > self.inner.macfg_above if macfg is None else macfg
        state = (video, audio)
        cond = self._needed("cond", state, field)
        null = self._needed("difference" if cond else "null", state, field)
        fresh = self.inner.passes(video, audio, t, cond=cond, null=null, macfg=field) if cond or null else None
        if cond:
            self.masks = fresh.face_masks
            self._measure("cond", state, (fresh.video_cond, fresh.audio_cond), field)
        c = self.measured["cond"].value
        if null:
            u = (fresh.video_null, fresh.audio_null)
            self._measure("null", state, u, field)
            if cond:
                self._measure("difference", state, (c[0] - u[0], c[1] - u[1]), field)
        elif cond:
            d = self.measured["difference"].value
            u = (c[0] - d[0], c[1] - d[1])
        else:
            u = self.used_null
        self.used_null = u
        guided = self.inner.combine(PassVelocities(c[0], c[1], u[0], u[1], self.masks))
        self.guided_norms = (_row_norms(guided.video), _row_norms(guided.audio))
        return guided

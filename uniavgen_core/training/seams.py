"""What a long clip looks and sounds like at its joins, measured on its pictures and wave (no model).

A join is where a segment's new part starts: picture `first` (units.video_frames of the segment's first new
latent frame), so the transition into it is transition `first - 1` (between pictures first-1 and first).

- lip sync: the score of every 3 s window (r at offset 0, training/lipsync.py).
- picture change: the mean absolute difference of consecutive pictures, per transition; the largest at joins
  against the largest anywhere else.
- colour step: the mean colour of the two pictures after a join minus that of the two before, its largest
  channel; against the same step at every other transition.
- drift: the face region's RMSE against the reference picture, per window; the last window against the first.
- clicks: the wave's largest sample-to-sample change within ±10 ms of a join against the 99.9th percentile of
  that change over the whole wave; gaps: 20 ms frames at least 40 dB below the wave's active level that start
  within ±50 ms of a join and are not silent in the driving audio; against how much of the whole wave is that
  quiet (a speaking task's joins fall between sentences, where a pause is natural).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .. import units
from ..units import FPS, SAMPLE_RATE
from . import lipsync

WINDOW_SECONDS = 3.0        # lip sync is scored over windows of this length along a long clip
CLICK_WINDOW = 0.010        # s either side of a join
GAP_FRAME = 0.020           # s
GAP_BELOW = 40.0            # dB under the active level
GAP_WINDOW = 0.050          # s either side of a join


def window_scores(frames: torch.Tensor, wave: torch.Tensor, box, seconds: float = WINDOW_SECONDS) -> list[float]:
    """The lip-sync score (r at offset 0) of each whole `seconds` window of a clip."""
    n = round(seconds * FPS)
    mouth = lipsync.mouth_openness(frames, box)
    env = lipsync.audio_envelope(wave, SAMPLE_RATE, frames.shape[0])
    return [lipsync.sync_score(mouth[i: i + n], env[i: i + n]).r0 for i in range(0, frames.shape[0] - n + 1, n)]


def join_pictures(segments) -> list[int]:
    """The first new picture of every segment after the first (frontend/long.py's Segment)."""
    return [units.video_frames(s.start + s.prior) for s in segments[1:]]


def picture_changes(frames: torch.Tensor) -> np.ndarray:
    """[T, H, W, 3] -> [T - 1]: the mean absolute difference of consecutive pictures."""
    f = frames.float()
    return (f[1:] - f[:-1]).abs().mean(dim=(1, 2, 3)).numpy()


def colour_steps(frames: torch.Tensor, span: int = 2) -> np.ndarray:
    """[T, H, W, 3] -> [T - 1]: for transition i, the largest channel change of the mean colour of pictures
    i+1..i+span against i-span+1..i (nan where a side is short)."""
    means = frames.float().mean(dim=(1, 2)).numpy()                # [T, 3]
    out = np.full(len(means) - 1, np.nan)
    for i in range(span - 1, len(means) - span):
        out[i] = np.abs(means[i + 1: i + 1 + span].mean(0) - means[i + 1 - span: i + 1].mean(0)).max()
    return out


def face_drift(frames: torch.Tensor, reference: torch.Tensor, mask: torch.Tensor, window: int) -> np.ndarray:
    """The face region's RMSE against the reference picture, averaged over each whole window of pictures."""
    m = mask.float()[..., None]
    err = (((frames.float() - reference.float()) ** 2) * m).sum(dim=(1, 2, 3)) / (3 * m.sum())
    rmse = err.sqrt().numpy()
    return np.array([rmse[i: i + window].mean() for i in range(0, len(rmse) - window + 1, window)])


def active_level(wave: np.ndarray, frame: int) -> float:
    """dB of the mean power of the loudest half of the wave's frames (the speech, not its pauses)."""
    n = len(wave) // frame
    power = np.sort((wave[: n * frame].reshape(n, frame) ** 2).mean(1))[n // 2:]
    return 10 * np.log10(power.mean() + 1e-12)


def audio_joins(wave: torch.Tensor, joins: list[int], driving: torch.Tensor | None = None) -> dict:
    """Clicks and gaps at the joins (picture indices) of a 24 kHz wave; `driving`: the driving audio (A2V),
    whose own pauses are not counted as gaps."""
    w = wave.float().numpy()
    given = None if driving is None else driving.float().numpy()
    step = np.abs(np.diff(w))
    typical = float(np.percentile(step, 99.9)) + 1e-9
    near = round(CLICK_WINDOW * SAMPLE_RATE)
    at = [round(p / FPS * SAMPLE_RATE) for p in joins]
    clicks = [float(step[max(0, a - near): a + near].max()) / typical for a in at if a < len(step)]
    frame = round(GAP_FRAME * SAMPLE_RATE)
    level = active_level(w, frame)
    quiet = lambda x, a: 10 * np.log10(float((x[a: a + frame] ** 2).mean()) + 1e-12) < level - GAP_BELOW
    reach = round(GAP_WINDOW * SAMPLE_RATE)
    starts = range(0, len(w) - frame, frame)
    silent = sum(quiet(w, a) for a in starts) / max(1, len(starts))
    gaps = 0
    for a in at:
        for start in range(max(0, a - reach), min(len(w) - frame, a + reach), frame):
            if quiet(w, start) and (given is None or not quiet(given, start)):
                gaps += 1
                break
    return {"click_ratio_max": max(clicks, default=0.0), "click_ratio_median": float(np.median(clicks)) if clicks
            else 0.0, "gaps": gaps, "joins": len(at), "silent_fraction": silent}


@dataclass
class SeamReport:
    join_change_max: float          # the largest picture change at a join
    inside_change_max: float        # the largest anywhere else in the clip
    change_max: float               # the largest anywhere
    join_colour_max: float          # the largest colour step at a join
    inside_colour_p99: float        # the 99th percentile of colour steps elsewhere
    drift_first: float              # face-region RMSE against the reference: first window
    drift_last: float               # ... last window
    windows_synced: float           # the fraction of 3 s windows with lip sync r0 >= 0.3
    audio: dict

    def row(self) -> dict:
        return {**{k: v for k, v in self.__dict__.items() if k != "audio"}, **self.audio}


def measure(frames: torch.Tensor, wave: torch.Tensor, joins: list[int], reference: torch.Tensor,
            mask: torch.Tensor, window_scores: list[float], window: int = round(WINDOW_SECONDS * FPS)) -> SeamReport:
    change = picture_changes(frames)
    colour = colour_steps(frames)
    at = np.zeros(len(change), dtype=bool)
    at[[j - 1 for j in joins if 0 < j <= len(change)]] = True
    drift = face_drift(frames, reference, mask, window)
    return SeamReport(float(change[at].max()) if at.any() else 0.0, float(change[~at].max()), float(change.max()),
                      float(np.nanmax(colour[at])) if at.any() else 0.0, float(np.nanpercentile(colour[~at], 99)),
                      float(drift[0]), float(drift[-1]),
                      float(np.mean([r >= 0.3 for r in window_scores])) if window_scores else 0.0,
                      audio_joins(wave, joins))

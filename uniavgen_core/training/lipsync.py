"""Lip-sync metric on explicit signals: mouth openness from pixels against the audio's low-band envelope.

SyncNet-style evaluation, but on signals that can be read off directly: per video frame, one number for how
open the mouth is and one for how loud the low band of the speech is. Their Pearson correlation is measured at
a few frame offsets; the offset with the highest correlation is the estimated audio/video shift and
`confidence` (peak minus median correlation over offsets) says how distinct that peak is.

Both signals are high-passed before they are correlated (a centred moving average of ``DETREND_FRAMES`` frames
is subtracted). Without it, the slow "talking / not talking" shape that every clip shares (silence, a sentence,
silence) dominates: on the synthetic clips, shuffled pairs then correlate at r0 = 0.40 and the confidence of
real pairs (0.31) is barely above theirs (0.17). High-passed, shuffled pairs sit at r0 = -0.08 and real pairs
reach a confidence of 0.92 against 0.30, so the number measures the syllable-rate movement that lip sync is
about. ``detrend_frames=0`` gives the plain correlation.

Conventions
-----------
* Offset ``k`` means the mouth LAGS the audio by ``k`` frames: ``r[k] = corr(mouth[t + k], envelope[t])``.
  A positive offset is a mouth that moves after the sound that drives it.
* The audio band is 100-1000 Hz (voicing and the first formant, which tracks jaw opening), measured in Hz from
  each window's spectrum, so any sample rate works without resampling.
* Openness is the mean darkness (1 - luma) inside the mouth box by default: monotone in how much of the dark
  mouth interior is visible and free of thresholds.

Frozen inputs (a mouth or an envelope whose standard deviation is below a floor) score r = 0 at every offset,
confidence 0 and ``frozen=True``, so a still mouth can never score well.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..units import FPS

LOW_BAND_HZ = (100.0, 1000.0)
MOUTH_MIN_STD = 2e-3   # openness units (darkness 0..1 or fraction of pixels)
AUDIO_MIN_STD = 0.5    # dB; audio_envelope of silence is exactly flat
DETREND_FRAMES = 9     # 0.56 s at 16 fps: about two syllables; slower movement is removed before correlating


def _numpy(x) -> np.ndarray:
    """numpy view of a numpy array, torch tensor or sequence."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if str(x.dtype) in ("torch.bfloat16", "torch.float16"):
            x = x.float()
        x = x.numpy()
    return np.asarray(x)


# --------------------------------------------------------------------------------------------------- audio


def audio_envelope(wave, sample_rate: int, frames: int, fps: float = FPS, band: tuple[float, float] = LOW_BAND_HZ,
                   window_frames: float = 2.0, floor_db: float = 50.0) -> np.ndarray:
    """Per-frame log energy (dB) of the audio's low band: [frames] float64.

    wave: [S] or [C, S] (channels averaged), any sample rate. For frame i, a Hann window of
    ``window_frames / fps`` seconds is centred on the middle of the frame's span [i/fps, (i+1)/fps) (zero
    padding past either end) and the power in ``band`` Hz is summed from its spectrum. The energy is the band's
    mean square (a full-scale sine in the band reads -3 dB). Energies are floored at ``floor_db`` below the
    clip's loudest frame over the FULL band (and at -100 dB), so silence and faint noise read flat and a loud
    sound outside the band does not raise the floor's reference for the band.
    """
    x = _numpy(wave).astype(np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise ValueError(f"wave must be [S] or [C, S], got shape {x.shape}")
    if frames <= 0:
        return np.zeros(0)
    sr = float(sample_rate)
    lo, hi = band[0], min(band[1], sr / 2)
    if hi <= lo:
        raise ValueError(f"sample rate {sample_rate} Hz is too low for the band {band} Hz")

    n = max(8, int(round(window_frames * sr / fps)))
    centres = np.round((np.arange(frames) + 0.5) * sr / fps).astype(np.int64)
    idx = centres[:, None] + (np.arange(n) - n // 2)[None, :]          # [frames, n] sample indices
    pad = n                                                           # zero padding on both sides
    padded = np.zeros(len(x) + 2 * pad + int(centres[-1]) + n)
    padded[pad:pad + len(x)] = x
    segs = padded[idx + pad]

    win = np.hanning(n)
    spec = np.abs(np.fft.rfft(segs * win, axis=1)) ** 2
    freqs = np.fft.rfftfreq(n, 1.0 / sr)
    # One-sided Parseval: mean square of the windowed signal = 2 * sum|X_k|^2 / (n * sum w^2) (DC/Nyquist aside).
    scale = 2.0 / (n * np.sum(win ** 2))
    in_band = (freqs >= lo) & (freqs <= hi)
    band_ms = spec[:, in_band].sum(axis=1) * scale
    full_ms = spec[:, 1:].sum(axis=1) * scale
    floor = max(1e-10, float(full_ms.max()) * 10 ** (-floor_db / 10))
    return 10 * np.log10(np.maximum(band_ms, floor))


# --------------------------------------------------------------------------------------------------- video


def _luma(frames) -> np.ndarray:
    """[T, H, W] luma in 0..1 from [T, H, W, 3|1] or [T, H, W] frames, float 0..1 or uint8."""
    f = _numpy(frames)
    scale = 255.0 if f.dtype == np.uint8 else 1.0
    f = f.astype(np.float64) / scale
    if f.ndim == 4 and f.shape[-1] == 3:
        return f @ np.array([0.299, 0.587, 0.114])                  # Rec. 601 luma
    if f.ndim == 4 and f.shape[-1] == 1:
        return f[..., 0]
    if f.ndim == 3:
        return f
    raise ValueError(f"frames must be [T, H, W, 3], [T, H, W, 1] or [T, H, W], got shape {f.shape}")


def _otsu(values: np.ndarray, bins: int = 256) -> float:
    """Threshold maximising the between-class variance of values in 0..1."""
    hist, edges = np.histogram(values, bins=bins, range=(0.0, 1.0))
    p = hist / max(1, hist.sum())
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(p)
    m0 = np.cumsum(p * centres)
    mean = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mean * w0 - m0) ** 2 / (w0 * (1 - w0))
    between = np.nan_to_num(between, nan=-1.0, posinf=-1.0)
    return float(edges[int(np.argmax(between)) + 1])


def mouth_openness(frames, box: tuple[float, float, float, float], method: str = "darkness") -> np.ndarray:
    """How open the mouth is in each frame, read from pixels: [T] float64.

    frames: [T, H, W, 3] float 0..1 or uint8 (numpy or torch). box: (top, left, bottom, right) pixels, clipped
    to the frame. Methods:

    * ``"darkness"`` (default): mean of 1 - luma inside the box. Strictly increasing in the visible area of a
      dark interior on a lighter face, no threshold to tune; also moves with overall lighting, which only
      matters when the lighting changes in step with the speech.
    * ``"dark_fraction"``: fraction of box pixels darker than one threshold for the whole clip (Otsu's on the
      luma of every box pixel in every frame). Insensitive to gradual shading changes, but only non-decreasing:
      dark lips can fall on the dark side of the threshold, so an opening still hidden by the lip line reads
      the same as a closed mouth.
    """
    luma = _luma(frames)
    _, h, w = luma.shape
    top, left, bottom, right = box
    t0, b0 = int(np.clip(np.floor(top), 0, h)), int(np.clip(np.ceil(bottom), 0, h))
    l0, r0 = int(np.clip(np.floor(left), 0, w)), int(np.clip(np.ceil(right), 0, w))
    if b0 <= t0 or r0 <= l0:
        raise ValueError(f"mouth box {box} is empty inside a {h}x{w} frame")
    crop = luma[:, t0:b0, l0:r0].reshape(luma.shape[0], -1)
    if method == "darkness":
        return 1.0 - crop.mean(axis=1)
    if method == "dark_fraction":
        return (crop < _otsu(crop)).mean(axis=1).astype(np.float64)
    raise ValueError(f"unknown openness method {method!r} (darkness, dark_fraction)")


# --------------------------------------------------------------------------------------------------- scoring


@dataclass
class SyncScore:
    """Sync of one clip. r[i] is the correlation at offsets[i]; offset > 0: the mouth lags the audio."""
    r: np.ndarray
    offsets: np.ndarray
    r0: float
    offset: int
    confidence: float
    frozen: bool


def high_pass(x: np.ndarray, window: int) -> np.ndarray:
    """x minus its centred moving average over `window` frames (ends padded with the end values); window <= 1
    returns x unchanged."""
    if window <= 1:
        return x
    padded = np.pad(x, (window // 2, window - 1 - window // 2), mode="edge")
    return x - np.convolve(padded, np.ones(window) / window, mode="valid")


def _pearson(a: np.ndarray, b: np.ndarray, min_std_a: float, min_std_b: float) -> float:
    if len(a) < 3:
        return 0.0
    sa, sb = a.std(), b.std()
    if sa < min_std_a or sb < min_std_b:
        return 0.0
    return float(np.mean((a - a.mean()) * (b - b.mean())) / (sa * sb))


def sync_score(mouth, envelope, max_offset: int = 4, mouth_min_std: float = MOUTH_MIN_STD,
               audio_min_std: float = AUDIO_MIN_STD, detrend_frames: int = DETREND_FRAMES) -> SyncScore:
    """Pearson correlation of mouth openness and audio envelope at offsets -max_offset..+max_offset.

    r[k] = corr(mouth[t + k], envelope[t]) over the frames where both exist (the longer input is trimmed to the
    shorter first), both signals high-passed over `detrend_frames` frames first. ``offset`` is the argmax (ties
    go to the smallest |k|) and ``confidence`` the peak minus the median over offsets. A mouth with
    std < mouth_min_std or an envelope with std < audio_min_std (dB), measured before the high-pass, is frozen:
    r = 0 everywhere, confidence 0.
    """
    m = _numpy(mouth).astype(np.float64).ravel()
    e = _numpy(envelope).astype(np.float64).ravel()
    n = min(len(m), len(e))
    m, e = m[:n], e[:n]
    offsets = np.arange(-max_offset, max_offset + 1)
    if n < 3 or m.std() < mouth_min_std or e.std() < audio_min_std:
        return SyncScore(r=np.zeros(len(offsets)), offsets=offsets, r0=0.0, offset=0, confidence=0.0, frozen=True)
    # the floors scale with what the high-pass keeps of each signal
    keep_m, keep_e = high_pass(m, detrend_frames), high_pass(e, detrend_frames)
    floor_m = mouth_min_std * keep_m.std() / m.std()
    floor_e = audio_min_std * keep_e.std() / e.std()
    m, e = keep_m, keep_e
    r = np.empty(len(offsets))
    for i, k in enumerate(offsets):
        if k >= 0:
            r[i] = _pearson(m[k:], e[:n - k], floor_m, floor_e)
        else:
            r[i] = _pearson(m[:n + k], e[-k:], floor_m, floor_e)
    # argmax over offsets visited by increasing |k| so ties prefer the smallest shift
    order = np.argsort(np.abs(offsets), kind="stable")
    best = order[int(np.argmax(r[order]))]
    return SyncScore(r=r, offsets=offsets, r0=float(r[max_offset]), offset=int(offsets[best]),
                     confidence=float(r[best] - np.median(r)), frozen=False)


def score_clip(frames, box, wave, sample_rate: int, fps: float = FPS, max_offset: int = 4,
               method: str = "darkness", detrend_frames: int = DETREND_FRAMES) -> SyncScore:
    """sync_score of one clip straight from its frames, mouth box and waveform."""
    mouth = mouth_openness(frames, box, method)
    return sync_score(mouth, audio_envelope(wave, sample_rate, len(mouth), fps), max_offset,
                      detrend_frames=detrend_frames)


# --------------------------------------------------------------------------------------------------- summaries


def _bootstrap(values: np.ndarray, stat, n_boot: int, seed: int) -> tuple[float, float]:
    """Percentile 95% interval of stat over resamples (with replacement) of values."""
    if len(values) == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    boot = stat(values[idx], axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return float(lo), float(hi)


@dataclass
class Summary:
    """Sync over a set of clips; frozen clips count with r0 = 0 and confidence 0."""
    median_r0: float
    r0_ci: tuple[float, float]
    mean_confidence: float
    confidence_ci: tuple[float, float]
    mean_abs_offset: float
    frac_offset0: float
    n: int
    n_frozen: int


def summarise(scores: Sequence[SyncScore], n_boot: int = 2000, seed: int = 0) -> Summary:
    """Median r0 and mean confidence with bootstrap 95% intervals (deterministic for a seed), offset stats."""
    r0 = np.array([s.r0 for s in scores], dtype=np.float64)
    conf = np.array([s.confidence for s in scores], dtype=np.float64)
    offs = np.array([s.offset for s in scores], dtype=np.float64)
    if len(scores) == 0:
        nan = float("nan")
        return Summary(nan, (nan, nan), nan, (nan, nan), nan, nan, 0, 0)
    return Summary(
        median_r0=float(np.median(r0)),
        r0_ci=_bootstrap(r0, np.median, n_boot, seed),
        mean_confidence=float(conf.mean()),
        confidence_ci=_bootstrap(conf, np.mean, n_boot, seed + 1),
        mean_abs_offset=float(np.abs(offs).mean()),
        frac_offset0=float(np.mean(offs == 0)),
        n=len(scores),
        n_frozen=sum(bool(s.frozen) for s in scores),
    )


def derangement(n: int, seed: int = 0) -> np.ndarray:
    """A permutation with no fixed point: clips in a random order, each paired with the next one (cyclically)."""
    if n < 2:
        raise ValueError("a mismatched pairing needs at least 2 clips")
    order = np.random.default_rng(seed).permutation(n)
    partner = np.empty(n, dtype=np.int64)
    partner[order] = np.roll(order, -1)
    return partner


def shuffled_null(mouths: Sequence, envelopes: Sequence, seed: int = 0, max_offset: int = 4,
                  detrend_frames: int = DETREND_FRAMES) -> list[SyncScore]:
    """Scores of mismatched pairs: clip i's mouth with clip derangement(n, seed)[i]'s envelope.

    Both signals are trimmed to the shorter one. Summarised, this is the level that chance plus each clip's own
    rhythm reaches; real pairs should clear it.
    """
    if len(mouths) != len(envelopes):
        raise ValueError(f"{len(mouths)} mouths but {len(envelopes)} envelopes")
    partner = derangement(len(mouths), seed)
    out = []
    for i, j in enumerate(partner):
        m, e = _numpy(mouths[i]).ravel(), _numpy(envelopes[j]).ravel()
        n = min(len(m), len(e))
        out.append(sync_score(m[:n], e[:n], max_offset, detrend_frames=detrend_frames))
    return out


@dataclass
class Difference:
    """Mean of a - b over paired clips with its bootstrap 95% interval."""
    mean: float
    ci: tuple[float, float]
    n: int
    field: str = "confidence"


def paired_difference(a_scores: Sequence[SyncScore], b_scores: Sequence[SyncScore], n_boot: int = 2000,
                      seed: int = 0, field: str = "confidence") -> Difference:
    """Mean of a.field - b.field over the same clips (index-paired), bootstrapping the clips.

    field: "confidence" or "r0". An interval clear of 0 means condition a scores differently from b.
    """
    if len(a_scores) != len(b_scores):
        raise ValueError(f"paired scores differ in count: {len(a_scores)} vs {len(b_scores)}")
    if field not in ("confidence", "r0"):
        raise ValueError(f"field must be 'confidence' or 'r0', got {field!r}")
    d = np.array([getattr(a, field) - getattr(b, field) for a, b in zip(a_scores, b_scores)], dtype=np.float64)
    mean = float(d.mean()) if len(d) else float("nan")
    return Difference(mean=mean, ci=_bootstrap(d, np.mean, n_boot, seed), n=len(d), field=field)

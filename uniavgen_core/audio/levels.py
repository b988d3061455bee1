"""Output levels of the vocoders: measurement, loudness levelling and a smooth peak limiter (the levels of
media files on the command line: python -m uniavgen_core.cli.levels).

A generated mel may ask for a wave louder than full scale. Clamping it would flatten its peaks into
square-topped distortion; here the gain is lowered around each peak instead (`limit_peaks`), and the
weight-free vocoder also turns an over-loud clip down to the level of training speech (`level_speech`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from ..units import SAMPLE_RATE

CEILING = 10 ** (-1 / 20)        # -1 dBFS: the limiter's ceiling, with room for a lossy encoder's overshoot
CLIPPED = 0.99                   # a sample at or beyond this magnitude counts as clipped
# The active level of UniAVGen-mini's training speech (espeak-ng scaled to peak 0.6, synthetic.speech):
# -19.9 dBFS on average over its first 64 training clips (seeds 0-63; -24.2 to -14.5), by `active_level_db`.
SPEECH_LEVEL_DB = -20.0
LEVEL_ROUNDS = 4                 # gain corrections after limiting (level_speech)
LIMITER_HALF_WIDTH = 240         # samples (10 ms) over which the limiter's gain falls and recovers
GATE_FRAME = 480                 # 20 ms frames for the active level
ABSOLUTE_GATE_DB = -70.0         # frames quieter than this are silence ...
RELATIVE_GATE_DB = -20.0         # ... and so are frames this far below the mean of the rest (as in EBU R128)


def _batched(wave: torch.Tensor) -> torch.Tensor:
    """[N] or [B, N] -> float32 [B, N]."""
    if wave.dim() not in (1, 2):
        raise ValueError(f"expected a waveform [samples] or [batch, samples], got {tuple(wave.shape)}")
    return wave.float().reshape(-1, wave.shape[-1])


def active_level_db(wave: torch.Tensor) -> torch.Tensor:
    """Loudness of the speech in a wave, ignoring its pauses: the RMS level in dBFS of the 20 ms frames
    above -70 dBFS and within 20 dB of the mean power of those frames. [N] -> scalar, [B, N] -> [B];
    -inf for silence."""
    x = _batched(wave)
    frames = F.pad(x, (0, -x.shape[-1] % GATE_FRAME)).reshape(x.shape[0], -1, GATE_FRAME)
    power = frames.double().pow(2).mean(-1)
    gated = power > 10 ** (ABSOLUTE_GATE_DB / 10)
    mean = (power * gated).sum(-1) / gated.sum(-1).clamp(min=1)
    gated &= power > mean[:, None] * 10 ** (RELATIVE_GATE_DB / 10)
    level = 10 * torch.log10((power * gated).sum(-1) / gated.sum(-1).clamp(min=1))
    level = torch.where(gated.any(-1), level, torch.full_like(level, -math.inf)).float()
    return level[0] if wave.dim() == 1 else level


def limit_peaks(wave: torch.Tensor, ceiling: float = CEILING, half_width: int = LIMITER_HALF_WIDTH) -> torch.Tensor:
    """A wave whose samples stay within +-`ceiling`, its gain lowered smoothly around each louder peak;
    a wave already within the ceiling is returned unchanged.

    The gain a sample needs, r = min(1, ceiling / |x|), is taken as the minimum over +-half_width
    samples, then averaged over +-half_width: each averaged value is a minimum over a window that
    contains the sample, so the gain never exceeds what the sample needs, and it ramps linearly
    over 2 * half_width + 1 samples instead of jumping."""
    x = _batched(wave)
    if x.numel() == 0 or float(x.abs().max()) <= ceiling:
        return wave
    top = ceiling * (1 - 2 ** -23)          # rounding the product to float32 then never lands above the ceiling
    need = (top / x.double().abs().clamp(min=top))[:, None]
    size = 2 * half_width + 1
    floor = -F.max_pool1d(F.pad(-need, (half_width, half_width), value=-1.0), size, stride=1)
    gain = F.avg_pool1d(F.pad(floor, (half_width, half_width), mode="replicate"), size, stride=1)[:, 0]
    return (x.double() * gain).to(wave.dtype).reshape(wave.shape)


def level_speech(wave: torch.Tensor, target_db: float | None = SPEECH_LEVEL_DB,
                 ceiling: float = CEILING) -> torch.Tensor:
    """Each item turned down to `target_db` active level where it is louder (never up: a quiet or silent
    mel stays as quiet as it asks), with its peaks limited to `ceiling`. target_db None: peaks only.

    Limiting a loud burst lowers the level a little, so the gain starts where the unlimited wave would
    meet the target and is raised by the shortfall left after limiting, for a few rounds. The level in
    dB grows at most as fast as the gain does, so the rounds approach the target from below."""
    x = _batched(wave)
    if target_db is None:
        return limit_peaks(x, ceiling).reshape(wave.shape)
    gain, out = torch.ones(x.shape[0]), x
    for _ in range(LEVEL_ROUNDS):
        shortfall = target_db - active_level_db(out)                # +inf for silence: the gain stays 1
        gain = (gain * torch.pow(10.0, shortfall / 20)).clamp(max=1)
        out = limit_peaks(x * gain[:, None], ceiling)
    return out.reshape(wave.shape)


@dataclass(frozen=True)
class Levels:
    peak: float              # largest |sample|
    rms_db: float            # RMS over the whole wave, dBFS
    active_db: float         # RMS over its speech (active_level_db), dBFS
    crest: float             # peak / RMS
    clipped: float           # share of samples with |x| >= CLIPPED

    def row(self) -> str:
        return (f"peak {self.peak:.3f}  RMS {self.rms_db:6.1f} dBFS  active {self.active_db:6.1f} dBFS  "
                f"crest {self.crest:5.2f}  clipped {100 * self.clipped:6.3f} %")


def measure(wave: torch.Tensor) -> Levels:
    """The levels of a wave [N] (all channels flattened when given more)."""
    x = wave.double().flatten()
    peak = float(x.abs().max()) if x.numel() else 0.0
    rms = float(x.pow(2).mean().sqrt()) if x.numel() else 0.0
    db = lambda v: 20 * math.log10(v) if v > 0 else -math.inf
    return Levels(peak, db(rms), float(active_level_db(x.float())), peak / rms if rms else math.nan,
                  float((x.abs() >= CLIPPED).double().mean()) if x.numel() else 0.0)


def read_audio(path, rate: int | None = None, limit: float | None = None) -> tuple[torch.Tensor, int]:
    """The first audio stream of a media file decoded with PyAV (FFmpeg: wav, mp3, flac, m4a, a video's sound):
    ([channels, samples] float32, rate), resampled to `rate` when given. A file that is missing, not audio or
    damaged, or longer than `limit` seconds (read from its header, else counted while decoding, so a huge file
    costs nothing) raises ValueError saying what to do."""
    import av
    import numpy as np

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file; give a recording (wav, mp3, flac, m4a, ...)")
    try:
        box = av.open(str(path))
    except (av.error.FFmpegError, OSError) as err:
        raise ValueError(f"{path} cannot be read as audio ({err}): give a wav, mp3, flac or m4a file") from None
    with box:
        if not box.streams.audio:
            raise ValueError(f"{path} has no audio stream: give a recording")
        stream = box.streams.audio[0]
        known = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else None
        if known is None and box.duration:
            known = box.duration / av.time_base
        if limit is not None and known is not None and known > limit:
            raise ValueError(f"{path} is {known:.1f} s; at most {limit:g} s are taken: trim it")
        rate = rate or stream.rate or SAMPLE_RATE
        to_float = av.AudioResampler(format="fltp", rate=rate)       # planar float32 at `rate`, channels kept
        pieces, samples = [], 0
        try:
            for frame in box.decode(stream):
                made = [f.to_ndarray() for f in to_float.resample(frame)]
                pieces += made
                samples += sum(p.shape[1] for p in made)
                if limit is not None and samples > (limit + 1) * rate:
                    raise ValueError(f"{path} is longer than {limit:g} s, the most that is taken: trim it")
            pieces += [f.to_ndarray() for f in to_float.resample(None)]
        except av.error.FFmpegError as err:
            raise ValueError(f"{path} is damaged ({err}): export it again") from None
    if not pieces:
        return torch.zeros(1, 0), rate
    return torch.from_numpy(np.concatenate(pieces, axis=1)), rate

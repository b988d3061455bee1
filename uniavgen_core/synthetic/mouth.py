"""Mouth opening driven by the speech: low-band loudness per video frame, closed on m, b and p."""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..units import FPS, SAMPLE_RATE

LOW_BAND = (100.0, 1000.0)     # Hz: voiced speech energy, mostly the first formant
FLOOR = 1e-7                   # power floor of the log energy (digital silence)
SPAN = 7.0                     # nats of log energy from closed to fully open
HEADROOM = 0.5                 # nats below the clip's loudest frame at which the mouth is fully open


@functools.lru_cache(maxsize=4)
def _window(length: int) -> torch.Tensor:
    return torch.hann_window(length, periodic=False)


def lowband_log_energy(wave: torch.Tensor, frames: int, fps: int = FPS,
                       sample_rate: int = SAMPLE_RATE) -> torch.Tensor:
    """[frames] natural log of the mean 100-1000 Hz power per video frame.

    Frame i is shown during [i, i+1) / fps; its window is a Hann window two frames long centred on that
    interval (audio beyond the wave counts as silence)."""
    hop = sample_rate // fps
    start = hop // 2                     # window i starts at i*hop - hop/2 in the wave, i.e. at i*hop padded
    right = max((frames + 1) * hop - start - wave.shape[-1], 0)
    chunks = F.pad(wave.float()[None], (start, right))[0].unfold(0, 2 * hop, hop)[:frames]
    power = torch.fft.rfft(chunks * _window(2 * hop)).abs().square()
    freqs = torch.fft.rfftfreq(2 * hop, 1 / sample_rate)
    band = (freqs >= LOW_BAND[0]) & (freqs < LOW_BAND[1])
    return torch.log(power[:, band].mean(-1) / (2 * hop) + FLOOR)


def is_closure(phoneme: str) -> bool:
    """Bilabials (espeak names m, b, p and their variants) close the lips."""
    return phoneme[:1] in ("m", "b", "p")


def closed_frames(phonemes: list[tuple[str, float]], frames: int, fps: int = FPS,
                  end: float | None = None) -> torch.Tensor:
    """[frames] bool: frames during an m, b or p (those whose centre lies inside one, and the frame holding
    its midpoint). A phoneme lasts until the next one starts, the last one until `end` seconds."""
    closed = torch.zeros(frames, dtype=torch.bool)
    centres = (torch.arange(frames) + 0.5) / fps
    for i, (name, start) in enumerate(phonemes):
        if not is_closure(name):
            continue
        stop = phonemes[i + 1][1] if i + 1 < len(phonemes) else (end if end is not None else start)
        closed |= (centres >= start) & (centres < stop)
        mid = int((start + stop) / 2 * fps)
        if 0 <= mid < frames:
            closed[mid] = True
    return closed


def mouth_track(wave: torch.Tensor, phonemes: list[tuple[str, float]], frames: int, fps: int = FPS) -> torch.Tensor:
    """Openness [frames] in [0, 1] for a 24 kHz wave: the low-band log energy, lightly smoothed, mapped
    linearly from SPAN + HEADROOM nats below the clip's loudest frame (closed) to HEADROOM below it
    (open); zero during m, b and p (phoneme times in seconds from the wave's start)."""
    energy = lowband_log_energy(wave, frames, fps)
    padded = torch.cat([energy[:1], energy, energy[-1:]])
    smooth = 0.25 * padded[:-2] + 0.5 * padded[1:-1] + 0.25 * padded[2:]
    top = smooth.max().clamp_min(math.log(FLOOR) + SPAN + HEADROOM)     # a silent clip stays closed
    openness = ((smooth - (top - HEADROOM - SPAN)) / SPAN).clamp(0, 1)
    openness[closed_frames(phonemes, frames, fps, wave.shape[-1] / SAMPLE_RATE)] = 0
    return openness

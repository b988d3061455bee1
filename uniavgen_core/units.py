"""The units shared by the model and the front ends: frame rates, strides and the audio hop, and
the relations between seconds, video frames (16 fps), latent frames and mel frames (100/s).

The release generates 81 video frames = 5.0625 s = 21 latent frames = 506 mel frames."""
from __future__ import annotations

import math
from dataclasses import dataclass

FPS = 16
SAMPLE_RATE = 24_000         # audio samples per second, in and out of the model
HOP = 240                    # audio samples per mel frame
N_MELS = 80                  # mel bins, the audio branch's input and output width
MEL_RATE = SAMPLE_RATE // HOP    # 100 mel frames per second
TEMPORAL_STRIDE = 4          # Wan2.2 VAE: latent frame i >= 1 covers 4 video frames
SPATIAL_STRIDE = 16          # Wan2.2 VAE: a latent cell covers 16 x 16 pixels
LATENT_CHANNELS = 48         # Wan2.2 VAE latent channels
MAX_SECONDS = 30             # longest clip generated at once (the release is trained on 5 s; chain clips beyond)


def latent_frames(video_frames: int) -> int:
    if video_frames < 5 or (video_frames - 1) % TEMPORAL_STRIDE:
        raise ValueError(f"{video_frames} video frames: the count must be 4k+1 and at least 5 (e.g. 81)")
    if video_frames > MAX_SECONDS * FPS + 1:
        raise ValueError(f"{video_frames} video frames is more than {MAX_SECONDS} s at {FPS} fps; generate "
                         f"shorter clips and chain them")
    return (video_frames - 1) // TEMPORAL_STRIDE + 1


def video_frames(latent: int) -> int:
    return TEMPORAL_STRIDE * (latent - 1) + 1


def mel_frames(video_frames: int) -> int:
    """Mel frames covering `video_frames` at 16 fps (81 -> 506)."""
    return math.floor(video_frames * MEL_RATE / FPS)


@dataclass(frozen=True)
class Duration:
    video_frames: int
    latent_frames: int
    mel_frames: int

    @property
    def seconds(self) -> float:
        return self.video_frames / FPS

    @property
    def samples(self) -> int:
        """Waveform samples after the vocoder (HOP per mel frame)."""
        return self.mel_frames * HOP

    @classmethod
    def from_video_frames(cls, frames: int) -> "Duration":
        return cls(frames, latent_frames(frames), mel_frames(frames))

    @classmethod
    def from_seconds(cls, seconds: float) -> "Duration":
        """The nearest 4k+1 frame count (at least 5) for a wanted length in seconds."""
        if not 0 < seconds <= MAX_SECONDS:
            raise ValueError(f"duration must be more than 0 and at most {MAX_SECONDS} s, got {seconds} s; chain "
                             f"clips for longer videos")
        k = max(1, round((seconds * FPS - 1) / TEMPORAL_STRIDE))
        return cls.from_video_frames(TEMPORAL_STRIDE * k + 1)


def pixel_size(latent_size: tuple[int, int]) -> tuple[int, int]:
    """(height, width) in pixels of a latent (h, w)."""
    return tuple(SPATIAL_STRIDE * side for side in latent_size)

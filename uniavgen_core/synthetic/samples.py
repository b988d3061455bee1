"""The example inputs the shipped workflows load, made by the synthetic generator (no third-party
faces or voices): a face picture, a reference voice, driving speech, a talking clip and a long recording (the
command line: python -m uniavgen_core.cli.samples).

The pack copies them into ComfyUI's input folder when they are missing there (nodes/examples.py).
"""
from __future__ import annotations

import wave
from pathlib import Path

import torch

from ..mp4 import write_mp4
from ..units import SAMPLE_RATE
from .clips import make_clip, recording
from .speech import synthesize

FACE_SEED, SPEECH_SEED = 7_000_001, 7_000_002      # outside the training, codec and held-out ranges
LONG_SEED = 7_000_003                              # the long recording's sentences
SPEECH_TEXT = "the weather was cold this morning, but the sun is out now."
LONG_SECONDS = 20.0
FILES = ("uniavgen_face.png", "uniavgen_voice.wav", "uniavgen_speech.wav", "uniavgen_clip.mp4",
         "uniavgen_long_speech.wav")


def write_wav(path: Path, wave_24k: torch.Tensor) -> None:
    pcm = (wave_24k.clamp(-1, 1).numpy() * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(SAMPLE_RATE)
        f.writeframes(pcm.tobytes())


def make(out: Path) -> list[Path]:
    from PIL import Image

    out.mkdir(parents=True, exist_ok=True)
    face = make_clip(FACE_SEED, frames=81, size=512)
    picture = (face.frames[0].clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    Image.fromarray(picture).save(out / FILES[0], optimize=True)
    write_wav(out / FILES[1], face.ref_wave)
    write_wav(out / FILES[2], synthesize(SPEECH_TEXT, make_clip(SPEECH_SEED, frames=17).voice).wave)
    clip = make_clip(SPEECH_SEED, frames=81, size=256)
    write_mp4(out / FILES[3], clip.frames, clip.wave)
    write_wav(out / FILES[4], long_recording()[0])
    return [out / name for name in FILES]


def long_recording() -> tuple[torch.Tensor, str]:
    """LONG_SECONDS of sentences in the driving speech's voice, with pauses (the long lip-sync template's), and
    what it says."""
    wave, text = recording(make_clip(SPEECH_SEED, frames=17).voice, LONG_SECONDS, LONG_SEED)
    return wave[: round(LONG_SECONDS * SAMPLE_RATE)], text

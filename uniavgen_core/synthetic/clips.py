"""Deterministic synthetic talking-face clips: a random face saying a random sentence in a random voice."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..units import FPS, HOP, SAMPLE_RATE, latent_frames, mel_frames
from .faces import Face, blinks, caption, face_mask, mouth_box, random_face, render
from .mouth import mouth_track
from .sentences import sentence
from .speech import Voice, random_voice, synthesize

MAX_LEAD = 1.0            # s of silence before the speech, drawn uniformly from [0, MAX_LEAD]
MIN_FRAMES = 17
MIN_TAIL = 0.1            # s of silence kept after the speech
REF_SECONDS = (1.0, 2.0)  # length of the voice reference
_CANDIDATES = 12          # sentences drawn per attempt to pick one of about the wanted length


@dataclass
class Clip:
    """One training clip. `wave` has mel_frames(T) * 240 samples at 24 kHz; `phonemes` are (espeak name,
    start s) on the clip's clock; `ref_wave` is another sentence by the same voice (a multiple of 240
    samples long). `mouth_box` is (top, left, bottom, right), bottom/right exclusive."""
    frames: torch.Tensor            # [T, H, W, 3] float32 in [0, 1]
    wave: torch.Tensor              # [N] float32
    text: str
    caption: str
    face: Face
    voice: Voice
    openness: torch.Tensor          # [T] in [0, 1]
    blink: torch.Tensor             # [T] in [0, 1]
    face_mask: torch.Tensor         # [H, W] in [0, 1]
    mouth_box: tuple[int, int, int, int]
    ref_wave: torch.Tensor
    ref_text: str
    phonemes: list[tuple[str, float]]
    speech: tuple[float, float]     # start and end of the speech, s


def _predicted_seconds(text: str, voice: Voice) -> float:
    """espeak's speaking time for `text`, from a fit on generated sentences (about 12 % error)."""
    pauses = sum(text.count(p) for p in ",.?!") - 1
    return (7.4 * len(text) + 6.8 * len(text.split())) / voice.rate + 0.27 * pauses + 0.05


def _speak_within(rng: np.random.Generator, voice: Voice, target: float, shortest: float, longest: float):
    """(text, utterance) for a sentence lasting `shortest`..`longest` s, about `target` s: of several drawn
    sentences the one predicted closest to the target is spoken, and the target moves after a miss."""
    for _ in range(6):
        words = max(1, round(target * voice.rate / 47))
        candidates = [sentence(rng, max_words=words + 2, min_words=max(1, words - 2)) for _ in range(_CANDIDATES)]
        text = min(candidates, key=lambda c: abs(_predicted_seconds(c, voice) - target))
        utterance = synthesize(text, voice)
        if shortest <= utterance.seconds <= longest:
            return text, utterance
        target *= 0.85 if utterance.seconds > longest else 1.15
    # rarely reached: the shortest sentence that fits, faster if need be
    for rate in (voice.rate, int(voice.rate * 1.3), int(voice.rate * 1.6)):
        fast = Voice(voice.name, rate, voice.pitch, voice.range)
        for text in ("okay.", "hi!", "yes."):
            utterance = synthesize(text, fast)
            if utterance.seconds <= longest:
                return text, utterance
    raise RuntimeError(f"nothing fits in {longest:.2f} s for {voice}")


def make_clip(seed: int, frames: int = 49, size: int = 128) -> Clip:
    """The clip for `seed` (bit-identical on every call), `frames` (4k+1, at least 17) of `size` x `size`
    pixels: speech starts after 0-1 s of silence (at most 30 % of the clip) and ends at least 0.1 s
    before the end."""
    latent_frames(frames)       # validates the count
    if frames < MIN_FRAMES:
        raise ValueError(f"{frames} frames: synthetic clips need at least {MIN_FRAMES} frames to hold a sentence")
    rng = np.random.default_rng(seed)
    face = random_face(rng, size)
    voice = random_voice(rng)
    samples = mel_frames(frames) * HOP
    # varied timing: where the speech sits must be read from the audio, not guessed
    lead = rng.uniform(0, min(MAX_LEAD, 0.3 * frames / FPS))
    room = samples / SAMPLE_RATE - lead - MIN_TAIL
    text, spoken = _speak_within(rng, voice, rng.uniform(0.45, 0.95) * room, 0.3 * room, room)
    start = int(round(lead * SAMPLE_RATE))
    wave = torch.zeros(samples)
    wave[start:start + spoken.wave.shape[0]] = spoken.wave
    phonemes = [(name, at + start / SAMPLE_RATE) for name, at in spoken.phonemes]
    openness = mouth_track(wave, phonemes, frames, FPS)
    blink = blinks(rng, frames, FPS)
    ref_text, ref = _speak_within(rng, voice, rng.uniform(1.25, 1.75), *REF_SECONDS)
    ref_wave = torch.nn.functional.pad(ref.wave, (0, -ref.wave.shape[0] % HOP))
    return Clip(render(face, openness, blink), wave, text, caption(face), face, voice, openness, blink,
                face_mask(face), mouth_box(face), ref_wave, ref_text, phonemes,
                (start / SAMPLE_RATE, (start + spoken.wave.shape[0]) / SAMPLE_RATE))


def recording(voice: Voice, seconds: float, seed: int, pauses: tuple[float, float] = (0.25, 0.8)):
    """(wave, transcript): at least `seconds` of sentences drawn with `seed`, spoken by `voice` with pauses of
    `pauses` seconds between them (a long synthetic recording)."""
    rng = np.random.default_rng(seed)
    parts, texts, samples = [], [], 0
    while samples < seconds * SAMPLE_RATE:
        text = sentence(rng, max_words=12, min_words=5)
        spoken = synthesize(text, voice).wave
        pause = torch.zeros(round(rng.uniform(*pauses) * SAMPLE_RATE))
        parts += [spoken, pause]
        texts.append(text)
        samples += spoken.shape[0] + pause.shape[0]
    return torch.cat(parts), " ".join(texts)

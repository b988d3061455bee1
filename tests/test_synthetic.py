"""The synthetic talking-face clip generator: determinism, lengths, lip sync, faces, text."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from uniavgen_core.units import HOP
from uniavgen_core.synthetic import speech
from uniavgen_core.synthetic.clips import make_clip
from uniavgen_core.synthetic.faces import (HAIR_STYLES, eye_box, blinks, caption, face_mask, mouth_box,
                                           random_face, render)
from uniavgen_core.synthetic.mouth import closed_frames, is_closure, lowband_log_energy, mouth_track
from uniavgen_core.synthetic.sentences import VOCAB, sentence
from uniavgen_core.units import FPS, mel_frames

DARK = 0.2     # luminance below which a pixel counts as mouth interior
REPO = Path(__file__).resolve().parents[1]


def luma(frames):
    return frames @ torch.tensor([0.299, 0.587, 0.114])


@pytest.fixture(scope="module")
def clips():
    return [make_clip(seed) for seed in range(12)]


DIGEST = """
import hashlib
def clip_digest(clip):
    h = hashlib.sha256()
    for t in (clip.frames, clip.wave, clip.ref_wave, clip.openness):
        h.update(t.numpy().tobytes())
    h.update((clip.text + clip.ref_text + clip.caption).encode())
    return h.hexdigest()
"""
_namespace: dict = {}
exec(DIGEST, _namespace)
clip_digest = _namespace["clip_digest"]


def test_clip_is_deterministic_within_and_across_processes(clips):
    make_clip(100)                      # other speech in between must not change anything
    again = make_clip(3)
    assert torch.equal(again.frames, clips[3].frames) and torch.equal(again.wave, clips[3].wave)
    assert torch.equal(again.ref_wave, clips[3].ref_wave) and again.text == clips[3].text
    code = DIGEST + "from uniavgen_core.synthetic.clips import make_clip\nprint(clip_digest(make_clip(3)))"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == clip_digest(clips[3])
    other = clips[4]
    assert not torch.equal(other.wave, clips[3].wave) and not torch.equal(other.frames, clips[3].frames)


@pytest.mark.parametrize("frames", [17, 49, 81])
def test_lengths(frames):
    clip = make_clip(frames, frames=frames, size=64)
    assert clip.frames.shape == (frames, 64, 64, 3) and clip.frames.dtype == torch.float32
    assert clip.wave.shape == (mel_frames(frames) * HOP,) and clip.wave.dtype == torch.float32
    assert clip.openness.shape == clip.blink.shape == (frames,) and clip.face_mask.shape == (64, 64)
    assert 0 <= clip.frames.min() and clip.frames.max() <= 1
    assert clip.ref_wave.shape[0] % HOP == 0 and 1.0 <= clip.ref_wave.shape[0] / 24000 <= 2.01


@pytest.mark.parametrize("frames", [48, 13])
def test_rejects_bad_frame_counts(frames):
    with pytest.raises(ValueError):
        make_clip(0, frames=frames)


def test_speech_sits_inside_the_clip_with_silence_around(clips):
    fills = []
    for clip in clips:
        start, end = clip.speech
        assert 0 <= start <= min(1.0, 0.3 * len(clip.frames) / FPS) and end <= clip.wave.shape[0] / 24000 - 0.1
        a, b = round(start * 24000), round(end * 24000)
        assert torch.all(clip.wave[:a] == 0) and torch.all(clip.wave[b:] == 0)
        assert clip.wave[a:b].abs().max() > 0.3
        fills.append((end - start) / (len(clip.frames) / FPS))
    assert 0.45 < np.median(fills) < 0.85 and min(fills) > 0.25


def test_openness_follows_low_band_energy(clips):
    rs = [np.corrcoef(c.openness.numpy(), lowband_log_energy(c.wave, len(c.frames)).numpy())[0, 1] for c in clips]
    assert np.mean(rs) > 0.8 and min(rs) > 0.5      # measured over 50 clips: mean 0.86, min 0.69


def test_low_band_energy_is_the_low_band():
    t = torch.arange(24000 * 2) / 24000
    low, high = (lowband_log_energy(0.3 * torch.sin(2 * np.pi * f * t), 32) for f in (300.0, 3000.0))
    assert (low[2:-2] - high[2:-2]).min() > 5
    assert torch.all(lowband_log_energy(torch.zeros(48000), 32) == lowband_log_energy(torch.zeros(48000), 32)[0])


def test_mouth_is_closed_on_bilabials_and_in_silence(clips):
    gated = 0
    for clip in clips:
        frames = len(clip.frames)
        closed = closed_frames(clip.phonemes, frames, FPS, clip.speech[1])
        assert torch.all(clip.openness[closed] == 0)
        gated += int(closed.sum())
        # each frame's energy window spans one frame either side of it
        centres = (torch.arange(frames) + 0.5) / FPS
        silent = (centres + 1 / FPS <= clip.speech[0]) | (centres - 1 / FPS >= clip.speech[1])
        assert silent.any() and torch.all(clip.openness[silent] == 0)
        assert clip.openness.max() == 1
    assert gated >= len(clips)          # sentences have m, b or p
    assert torch.all(mouth_track(torch.zeros(48000), [], 32) == 0)
    assert is_closure("m") and is_closure("b") and is_closure("p") and not is_closure("n")


def test_every_bilabial_closes_at_least_one_frame():
    phonemes = [("a", 0.0), ("m", 0.51), ("a", 0.55), ("p", 0.9), ("_", 0.96)]
    closed = closed_frames(phonemes, 32, 16, 1.2)
    assert closed.nonzero().flatten().tolist() == [8, 14]


def test_mouth_box_holds_the_dark_mouth():
    for seed in range(30):
        face = random_face(np.random.default_rng(seed))
        top, left, bottom, right = box = mouth_box(face)
        assert 0 <= top < bottom <= 128 and 0 <= left < right <= 128
        et, el, eb, er = eye_box(face, 128)
        assert eb <= top or bottom <= et or er <= left or right <= el     # eyes and mouth never overlap
        cx, cy, rx, ry = face.head
        assert 0.3 <= 2 * face.mouth[2] / (2 * rx) <= 0.45 and 0.6 <= 2 * ry / 128 <= 0.85
        levels = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
        frames = render(face, levels, torch.zeros(5))
        changed = (frames[-1] - frames[0]).abs().amax(-1) > 0
        inside = torch.zeros(128, 128, dtype=torch.bool)
        inside[top:bottom, left:right] = True
        assert changed.any() and not (changed & ~inside).any()
        dark = (luma(frames[:, top:bottom, left:right]) < DARK).sum((1, 2))
        assert torch.all(dark[1:] >= dark[:-1]) and dark[-1] - dark[0] >= 60, (seed, dark)
        skin = luma(torch.tensor(face.skin))
        assert skin > 0.3, box


def test_face_mask_and_anti_aliasing():
    for seed in range(10):
        face = random_face(np.random.default_rng(seed))
        mask = face_mask(face)
        assert mask.shape == (128, 128) and 0 <= mask.min() and mask.max() <= 1
        top, left, bottom, right = mouth_box(face)
        assert mask[(top + bottom) // 2, (left + right) // 2] == 1
        assert 0.2 < float(mask.mean()) < 0.7 and mask[0, 0] == 0
        assert ((mask > 0.05) & (mask < 0.95)).sum() > 40        # soft edges


def test_blinks_close_the_eyes_every_few_seconds():
    track = blinks(np.random.default_rng(0), 16 * 20)
    assert 0 <= track.min() and track.max() <= 1
    peaks = torch.nonzero(track == 1).flatten()
    assert 4 <= len(peaks) <= 11 and torch.all(peaks.diff() >= 2 * 16 - 1)
    assert (track > 0).sum() == 3 * len(peaks) and torch.all(track[peaks - 1] == 0.5)
    face = random_face(np.random.default_rng(1))
    frames = render(face, torch.zeros(2), torch.tensor([0.0, 1.0]))
    top, left, bottom, right = eye_box(face, 128)
    eyes = frames[:, top:bottom, left:right]
    assert (eyes[0] > 0.95).all(-1).sum() > 20 and (eyes[1] > 0.95).all(-1).sum() == 0


def test_caption_names_the_attributes():
    styles = set()
    for seed in range(40):
        face = random_face(np.random.default_rng(seed))
        text = caption(face)
        styles.add(face.hair_style)
        assert set(text) <= set(" abcdefghijklmnopqrstuvwxyz,")
        for name in (face.skin_name + " skin", face.iris_name + " eyes", face.lip_name + " lips",
                     face.shirt_name + " shirt", face.background_name + " background"):
            assert name in text
        assert ("bald" in text) == (face.hair_style == "bald")
        assert face.hair_style == "bald" or f"{face.hair_style} {face.hair_name} hair" in text
    assert styles == set(HAIR_STYLES)


def test_sentences_cover_the_vocabulary():
    rng = np.random.default_rng(0)
    texts = [sentence(rng) for _ in range(1000)]
    assert set("".join(texts)) == set(VOCAB)
    assert len(set(texts)) > 900
    for text in texts:
        assert text[-1] in ".?!" and text == text.strip() and "  " not in text and 1 <= len(text.split()) <= 12
    for lo, hi in ((1, 3), (5, 7), (9, 12)):
        assert all(lo <= len(sentence(rng, hi, lo).split()) <= hi for _ in range(50))


def test_speech_timing():
    text = "can you see my blue hat, sam?"
    voice = speech.Voice("en-gb-x-rp+f3", 170, 50, 50)
    first = speech.synthesize(text, voice)
    assert torch.equal(first.wave, speech.synthesize(text, voice).wave)
    assert first.wave.dtype == torch.float32 and 1.0 < first.seconds < 3.0
    assert abs(first.wave.abs().max() - speech.PEAK) < 0.02
    spans = [text[s:s + n] for s, n, _ in first.words]
    assert spans == ["can", "you", "see", "my", "blue", "hat", "sam"]
    times = [at for _, at in first.phonemes]
    assert times == sorted(times) and 0 <= times[0] and times[-1] <= first.seconds
    names = [name for name, _ in first.phonemes]
    assert {"m", "b"} <= set(names) and not any("'" in n or "," in n for n in names)
    b_start = times[names.index("b")]
    blue_start = first.words[4][2]
    assert abs(b_start - blue_start) < 0.05
    other = speech.synthesize(text, speech.Voice("en-us+m3", 170, 50, 50))
    assert other.wave.shape != first.wave.shape or not torch.equal(other.wave, first.wave)


def test_random_voices_are_english_and_varied():
    rng = np.random.default_rng(0)
    voices = [speech.random_voice(rng) for _ in range(60)]
    assert all(v.name.startswith("en") and "+" in v.name for v in voices)
    assert len({v.name for v in voices}) > 30
    assert {v.name.split("+")[1][0] for v in voices} >= {"m", "f"}


def test_missing_library_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "espeakng_loader", None)
    monkeypatch.setattr(speech, "_engine", None)
    with pytest.raises(RuntimeError, match="pip install espeakng-loader"):
        speech.synthesize("hello.", speech.Voice())

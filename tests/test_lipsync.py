"""Lip-sync metric: envelopes, openness from pixels, offset convention, null and bootstrap behaviour."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from uniavgen_core.synthetic.clips import make_clip
from uniavgen_core.training.lipsync import (audio_envelope, derangement, high_pass, mouth_openness, paired_difference,
                                            score_clip, shuffled_null, summarise, sync_score)

FPS = 16


def smooth_signal(rng, n, width=3):
    """Random signal with some temporal correlation, like a speech envelope in dB."""
    x = rng.standard_normal(n + width - 1)
    return 10 * np.convolve(x, np.ones(width) / width, mode="valid")


def burst(freq, sr, frames=32, on=(10, 20), amp=0.5):
    """Sine burst over frames on[0]..on[1] with 10 ms ramps."""
    t = np.arange(int(frames * sr / FPS)) / sr
    gate = ((t >= on[0] / FPS) & (t < on[1] / FPS)).astype(float)
    ramp = np.hanning(2 * int(0.01 * sr))
    gate = np.convolve(gate, ramp / ramp.sum(), mode="same")
    return amp * gate * np.sin(2 * np.pi * freq * t)


def face_frames(heights, size=64, box=(36, 16, 56, 48)):
    """Skin-coloured frames with a lip line and a dark elliptical mouth interior of the given heights (px)."""
    top, left, bottom, right = box
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    cy, cx, rx = (top + bottom) / 2, (left + right) / 2, (right - left) / 2 - 1
    frames = np.empty((len(heights), size, size, 3))
    frames[:] = (0.85, 0.65, 0.55)
    for i, h in enumerate(heights):
        lips = (np.abs(yy - cy) <= 1) & (np.abs(xx - cx) <= rx)
        frames[i][lips] = (0.55, 0.25, 0.25)
        if h > 0:
            inside = ((yy - cy) / (h / 2)) ** 2 + ((xx - cx) / rx) ** 2 <= 1
            frames[i][inside] = (0.12, 0.04, 0.05)
    return frames


# ---------------------------------------------------------------------------------------------- envelope


@pytest.mark.parametrize("sr", [16000, 24000, 44100])
def test_envelope_rises_for_a_low_band_burst(sr):
    env = audio_envelope(burst(300, sr), sr, 32, FPS)
    assert env.shape == (32,) and env.dtype == np.float64
    silence, loud = env[[0, 1, 2, 25, 30]], env[11:19]
    assert np.ptp(silence) < 1e-9                                     # floored: silence is flat
    assert loud.min() > silence.max() + 30
    assert abs(loud.mean() - 10 * np.log10(0.5 ** 2 / 2)) < 0.5      # band mean square of a 0.5 sine


@pytest.mark.parametrize("sr", [16000, 24000])
def test_envelope_ignores_a_high_burst(sr):
    env = audio_envelope(burst(4000, sr), sr, 32, FPS)
    assert np.ptp(env) < 1.0
    mixed = audio_envelope(burst(300, sr) + burst(4000, sr, on=(24, 30)), sr, 32, FPS)
    assert np.ptp(mixed[22:32]) < 1.0 and mixed[15] - mixed[27] > 30


def test_envelope_same_across_sample_rates_and_inputs():
    a = audio_envelope(burst(300, 24000), 24000, 32, FPS)
    b = audio_envelope(torch.from_numpy(burst(300, 16000)).float()[None].repeat(2, 1), 16000, 32, FPS)
    assert np.abs(a - b).max() < 0.5
    assert np.all(audio_envelope(np.zeros(1000), 24000, 8, FPS) == -100.0)   # short, silent audio
    with pytest.raises(ValueError):
        audio_envelope(np.zeros(100), 150, 4, FPS)                   # Nyquist below the band


# ---------------------------------------------------------------------------------------------- openness


@pytest.mark.parametrize("method", ["darkness", "dark_fraction"])
def test_openness_monotone_in_mouth_height(method):
    heights = np.arange(0, 19, 2)
    box = (36, 16, 56, 48)
    frames = face_frames(heights, box=box)
    open_ = mouth_openness(frames, box, method)
    assert open_.shape == (len(heights),)
    assert np.all(np.diff(open_) >= 0) and np.all(np.diff(open_[1:]) > 0)
    if method == "darkness":
        assert open_[1] > open_[0]                                    # even an opening inside the lip line
    u8 = mouth_openness(torch.from_numpy((frames * 255).round().astype(np.uint8)), box, method)
    assert np.allclose(u8, open_, atol=0.01)                          # uint8 tensors read the same


def test_openness_rejects_empty_box_and_unknown_method():
    frames = face_frames([4])
    with pytest.raises(ValueError):
        mouth_openness(frames, (70, 0, 80, 10))
    with pytest.raises(ValueError):
        mouth_openness(frames, (36, 16, 56, 48), "lips")


# ---------------------------------------------------------------------------------------------- scoring


def test_affine_mouth_is_perfectly_synced():
    env = smooth_signal(np.random.default_rng(1), 48)
    s = sync_score(0.02 * env + 0.3, env)
    assert s.r0 > 0.999 and s.offset == 0 and not s.frozen
    assert list(s.offsets) == list(range(-4, 5)) and s.confidence > 0.5


def test_delayed_mouth_has_positive_offset():
    """Offset k means the mouth lags the audio by k frames."""
    base = smooth_signal(np.random.default_rng(2), 50)
    env, mouth = base[2:], 0.02 * base[:48] + 0.3                     # mouth[t] = envelope[t - 2]
    s = sync_score(mouth, env)
    assert s.offset == 2 and s.r[s.offsets == 2][0] > 0.999
    lead = sync_score(0.02 * base[2:] + 0.3, base[:48])               # mouth[t] = envelope[t + 2]
    assert lead.offset == -2 and lead.r[lead.offsets == -2][0] > 0.999


def test_frozen_mouth_or_silent_audio_never_scores():
    env = smooth_signal(np.random.default_rng(3), 48)
    for mouth, audio in ((np.full(48, 0.4), env), (np.full(48, 0.4) + 1e-5 * env, env), (env, np.full(48, -100.0))):
        s = sync_score(mouth, audio)
        assert s.frozen and s.confidence == 0 and s.r0 == 0 and np.all(s.r == 0)
    summary = summarise([sync_score(np.full(48, 0.4), env)] * 3)
    assert summary.n_frozen == 3 and summary.mean_confidence == 0


def test_random_pairs_score_near_zero():
    rng = np.random.default_rng(4)
    scores = [sync_score(rng.standard_normal(48), rng.standard_normal(48)) for _ in range(64)]
    summary = summarise(scores)
    assert abs(summary.median_r0) < 0.1
    assert summary.r0_ci[0] < 0 < summary.r0_ci[1]
    assert summary.n == 64 and summary.n_frozen == 0
    assert summary.mean_confidence < 0.4                              # peak-minus-median of noise stays small
    # two independent random conditions on the same clips do not differ
    others = [sync_score(rng.standard_normal(48), rng.standard_normal(48)) for _ in range(64)]
    diff = paired_difference(scores, others, n_boot=1000, seed=0)
    assert diff.ci[0] < 0 < diff.ci[1] and diff.n == 64


def test_shuffled_null_is_clearly_below_real_pairs():
    rng = np.random.default_rng(5)
    envs = [smooth_signal(rng, int(rng.integers(40, 56))) for _ in range(24)]
    mouths = [0.02 * e + 0.3 + 0.03 * rng.standard_normal(len(e)) for e in envs]
    real = summarise([sync_score(m, e) for m, e in zip(mouths, envs)])
    null_scores = shuffled_null(mouths, envs, seed=0)
    null = summarise(null_scores)
    assert real.median_r0 > 0.8 and real.frac_offset0 > 0.9
    assert null.median_r0 < 0.3 and null.r0_ci[1] < real.r0_ci[0]
    assert null.confidence_ci[1] < real.confidence_ci[0]
    real_scores = [sync_score(m, e) for m, e in zip(mouths, envs)]
    diff = paired_difference(real_scores, null_scores, n_boot=1000, seed=0, field="r0")
    assert diff.ci[0] > 0.5


def test_high_pass_removes_slow_shape_and_keeps_fast_movement():
    n = np.arange(48)
    slow = 3.0 + 0.01 * n                                             # offset and a gentle ramp
    fast = np.sin(2 * np.pi * n / 4)                                  # 4 Hz at 16 fps, a syllable rate
    out = high_pass(slow + fast, 9)
    assert np.abs(out[8:-8] - fast[8:-8]).max() < 0.13
    assert abs(out.mean()) < 0.05
    assert np.array_equal(high_pass(slow, 1), slow) and np.array_equal(high_pass(slow, 0), slow)


def test_clips_sharing_a_talking_shape_are_not_counted_as_synced():
    """Every clip: silence, a sentence, silence. Mismatched pairs share that shape; only the high-passed metric
    puts them near 0, while real pairs stay high."""
    clips = [make_clip(seed, frames=49, size=96) for seed in range(900_000, 900_016)]
    pairs = [(mouth_openness(c.frames, c.mouth_box), audio_envelope(c.wave, 24000, c.frames.shape[0])) for c in clips]
    mouths, envs = [m for m, _ in pairs], [e for _, e in pairs]
    real = summarise([sync_score(m, e) for m, e in pairs], n_boot=500)
    null = summarise(shuffled_null(mouths, envs), n_boot=500)
    assert real.median_r0 > 0.6 and real.frac_offset0 > 0.8
    assert abs(null.median_r0) < 0.15
    assert null.confidence_ci[1] < real.confidence_ci[0]
    plain_null = summarise(shuffled_null(mouths, envs, detrend_frames=0), n_boot=500)
    assert plain_null.median_r0 > 0.25                                # the shared shape the high-pass removes


def test_derangement_has_no_fixed_points_and_is_seeded():
    for n in (2, 3, 17):
        p = derangement(n, seed=n)
        assert sorted(p) == list(range(n)) and np.all(p != np.arange(n))
    assert np.array_equal(derangement(10, 1), derangement(10, 1))


def test_bootstrap_contains_estimate_and_is_deterministic():
    rng = np.random.default_rng(6)
    env = [smooth_signal(rng, 48) for _ in range(20)]
    scores = [sync_score(0.02 * e + 0.05 * rng.standard_normal(48), e) for e in env]
    a, b = summarise(scores, n_boot=500, seed=3), summarise(scores, n_boot=500, seed=3)
    assert a == b
    assert a.r0_ci[0] <= a.median_r0 <= a.r0_ci[1]
    assert a.confidence_ci[0] <= a.mean_confidence <= a.confidence_ci[1]
    d1 = paired_difference(scores, scores[::-1], n_boot=500, seed=7)
    d2 = paired_difference(scores, scores[::-1], n_boot=500, seed=7)
    assert d1 == d2 and d1.ci[0] <= d1.mean <= d1.ci[1]


def test_end_to_end_synthetic_talking_face():
    """Mouth height driven by the loudness of a voiced tone: synced at offset 0, shifted video at +2."""
    sr, frames = 24000, 48
    rng = np.random.default_rng(7)
    loud = np.clip(np.convolve(rng.random(frames + 2), np.ones(3) / 3, mode="valid"), 0, 1)   # 0..1 per frame
    t = np.arange(frames * sr // FPS) / sr
    gain = np.repeat(loud, sr // FPS)
    wave = 0.3 * gain * (np.sin(2 * np.pi * 180 * t) + 0.5 * np.sin(2 * np.pi * 540 * t))
    box = (36, 16, 56, 48)
    video = face_frames(np.round(loud * 18), box=box)
    s = score_clip(video, box, wave, sr, FPS)
    assert s.offset == 0 and s.r0 > 0.8
    late = np.concatenate([video[:2], video[:-2]])                    # video two frames behind the sound
    assert score_clip(late, box, wave, sr, FPS).offset == 2

"""Vocoder output levels: the limiter never lets a sample past its ceiling and leaves in-range audio alone,
the weight-free vocoder turns loud mels down to the training speech's level, BigVGAN keeps in-range output."""
import math

import pytest
import torch

from uniavgen_core.audio import levels
from uniavgen_core.audio.levels import CEILING, SPEECH_LEVEL_DB, active_level_db, level_speech, limit_peaks, measure
from uniavgen_core.audio.mel import log_mel
from uniavgen_core.cli import levels as levels_cli
from uniavgen_core.mini.codecs.griffin_lim import GriffinLimVocoder
from test_codecs import speech_like
from uniavgen_core.mp4 import write_mp4

RATE = 24000
TOP = float(torch.tensor(CEILING))      # the ceiling as a float32 sample holds it


def within_ceiling(wave):
    return float(wave.abs().max()) <= TOP


def babble(seconds=2.0, amplitude=1.0, seed=0):
    """Noise shaped by a 4 Hz syllable envelope, with 30 % pauses."""
    t = torch.arange(round(seconds * RATE)) / RATE
    env = torch.sin(2 * math.pi * 4 * t).clamp(min=0) * (t % 1 < 0.7)
    return amplitude * env * torch.randn(t.shape, generator=torch.Generator().manual_seed(seed))


def test_limiter_keeps_the_ceiling_and_touches_only_the_peaks():
    quiet = babble(amplitude=0.1)
    assert limit_peaks(quiet) is quiet                      # within the ceiling: returned as it is
    loud = quiet.clone()
    loud[1500:1550] *= 40                                   # a burst at a syllable's top, 10 dB over full scale
    out = limit_peaks(loud)
    assert within_ceiling(out) and float(loud.abs().max()) > 3
    far = torch.ones_like(loud, dtype=torch.bool)
    far[1500 - 2 * 240: 1550 + 2 * 240] = False
    assert torch.equal(out[far], loud[far])                 # further than the gain's ramp: untouched
    assert bool((out * loud >= 0).all()) and bool((out.abs() <= loud.abs()).all())     # only ever turned down
    at = torch.nonzero(loud.abs() > 1e-4)[:, 0]
    slope = (out[at] / loud[at]).diff() / at.diff()
    assert float(slope.abs().max()) <= 1 / 481 + 1e-6      # the gain ramps over 481 samples, never jumps
    flat = (out.abs() >= 0.99 * CEILING).sum()
    assert int(flat) < 10                                   # a clamp would flatten dozens of samples


def test_active_level_ignores_pauses_and_silence():
    wave = babble(amplitude=0.1)
    padded = torch.cat([torch.zeros(RATE), wave, torch.zeros(RATE)])
    assert abs(float(active_level_db(padded) - active_level_db(wave))) < 0.1
    assert float(active_level_db(torch.zeros(RATE))) == -math.inf
    both = active_level_db(torch.stack([wave, 2 * wave]))
    assert abs(float(both[1] - both[0]) - 20 * math.log10(2)) < 1e-3


def test_level_speech_turns_loud_audio_down_and_never_up():
    loud = babble(amplitude=8.0)
    loud[5000:5100] *= 20                                   # and a burst far over the rest
    out = level_speech(loud)
    assert within_ceiling(out)
    assert abs(float(active_level_db(out)) - SPEECH_LEVEL_DB) < 0.5
    quiet = babble(amplitude=0.02)
    assert torch.equal(level_speech(quiet), quiet)
    silent = torch.zeros(RATE)
    assert torch.equal(level_speech(silent), silent)


def test_griffin_lim_levels_a_loud_mel_to_training_speech():
    """A mel 30 dB louder than speech (what the small model's AVG clip asks for) comes back below full scale at the
    training speech's level; before, a fifth of its samples were clamped."""
    speech = babble(seconds=3.0, amplitude=0.3, seed=1)
    loud_mel = log_mel(speech) + math.log(10 ** (30 / 20))
    wave = GriffinLimVocoder().decode(loud_mel)["waveform"][0, 0]
    stats = measure(wave)
    assert stats.peak <= TOP and stats.clipped == 0
    assert abs(stats.active_db - SPEECH_LEVEL_DB) < 1.0, stats
    as_asked = GriffinLimVocoder(speech_level_db=None).decode(loud_mel)["waveform"][0, 0]
    assert within_ceiling(as_asked) and measure(as_asked).active_db > SPEECH_LEVEL_DB + 5


def test_griffin_lim_keeps_the_level_of_speech_like_the_training_speech():
    speech = speech_like(1.0) * 0.15
    wave = GriffinLimVocoder().decode(log_mel(speech))["waveform"][0, 0]
    assert float(active_level_db(speech)) < SPEECH_LEVEL_DB
    assert abs(float(active_level_db(wave) - active_level_db(speech))) < 1.0


def test_mp4_audio_is_read_back_as_written(tmp_path):
    wave = babble(seconds=1.0, amplitude=0.2, seed=3)
    write_mp4(tmp_path / "clip.mp4", torch.zeros(16, 32, 32, 3), wave)
    back, rate = levels.read_audio(tmp_path / "clip.mp4")
    assert rate == RATE and back.shape[0] == 1 and abs(back.shape[1] - wave.shape[0]) < 2048
    assert abs(measure(back).rms_db - measure(wave).rms_db) < 0.5
    assert levels_cli.main([str(tmp_path / "clip.mp4")]) == 0


def test_mp4_sound_starts_with_the_pictures(tmp_path):
    """A click written half a second in is heard half a second in: the encoder's priming samples are marked for
    players to skip, not played before the sound."""
    wave = torch.zeros(RATE)
    wave[RATE // 2: RATE // 2 + 48] = 0.9
    write_mp4(tmp_path / "click.mp4", torch.zeros(16, 32, 32, 3), wave)
    back, _ = levels.read_audio(tmp_path / "click.mp4")
    heard = int((back[0].abs() > 0.3).nonzero()[0])
    assert abs(heard - RATE // 2) <= 8, f"the click is heard {heard - RATE // 2} samples late"


def test_bigvgan_output_within_range_is_untouched_and_loud_output_is_limited(tmp_path):
    pytest.importorskip("transformers", reason="transformers is a declared dependency; install it")
    from helpers import save_tiny_vocoder
    from uniavgen_core.audio.vocoder import Vocoder
    mel = torch.randn(1, 80, 40, generator=torch.Generator().manual_seed(0)) * 2 - 5
    quiet = Vocoder.from_folder(save_tiny_vocoder(tmp_path / "quiet"))
    raw = quiet.model(mel).reshape(1, -1)
    assert 0 < float(raw.abs().max()) <= 1
    assert torch.equal(quiet.decode(mel)["waveform"][:, 0], raw)
    loud = Vocoder.from_folder(save_tiny_vocoder(tmp_path / "loud", loud=True))
    clamped = loud.model(mel * 3).reshape(1, -1)              # transformers clamps its forward's wave
    out = loud.decode(mel * 3)["waveform"][:, 0]
    assert measure(clamped).clipped > 0.01 and within_ceiling(out) and measure(out).clipped < 0.001

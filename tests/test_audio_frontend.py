"""Mel front end, AUDIO-dict conditioning and duration helpers."""
import pytest
import torch

from helpers import tone
from uniavgen_core import units
from uniavgen_core.audio.inputs import (PEAK, AudioInputError, driving_audio, reference_voice, to_mono_24k)
from uniavgen_core.audio.mel import denormalise, log_mel, normalise
from uniavgen_core.units import HOP


def test_log_mel_frames_batching_and_float32_for_bf16_input():
    wave = torch.randn(3, 24000 + 123) * 0.1
    batch = log_mel(wave)
    assert batch.shape == (3, 80, (24000 + 123) // HOP) and batch.dtype == torch.float32
    assert torch.allclose(batch[1], log_mel(wave[1]), atol=1e-5)
    low = log_mel(wave.to(torch.bfloat16))
    assert low.dtype == torch.float32
    for n in (100, 240, 392):
        with pytest.raises(ValueError, match="needs at least 393 samples"):
            log_mel(torch.zeros(n))
    assert log_mel(torch.randn(393)).shape == (80, 1)


def test_normalisation_round_trip():
    mel = log_mel(torch.randn(4800) * 0.2)
    model_space = normalise(mel)
    assert model_space.shape == (20, 80)
    assert torch.allclose(denormalise(model_space), mel, atol=1e-5)
    assert abs(float(normalise(torch.full((80, 1), -5.1753)).abs().max())) < 1e-6


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 44100, 48000])
def test_any_sample_rate_becomes_24k(rate):
    wave, messages = to_mono_24k(tone(1.0, rate))
    assert abs(wave.shape[-1] - 24000) <= 1
    assert (rate == 24000) == (not any("resampled" in m for m in messages))
    assert float(wave.abs().max()) == pytest.approx(0.4, abs=0.02)


@pytest.mark.parametrize("channels", [1, 2, 6])
def test_channels_are_averaged_to_mono(channels):
    audio = tone(0.5, channels=channels)
    audio["waveform"][:, 0] *= 0.0                     # one silent channel lowers the mean
    wave, messages = to_mono_24k(audio)
    expected = 0.4 * (channels - 1) / channels
    assert wave.dim() == 1 and float(wave.abs().max()) == pytest.approx(expected, abs=1e-3)
    assert (channels > 1) == any("mono" in m for m in messages)


def test_reference_voice_is_peak_rescaled_with_a_silent_tail():
    ref = reference_voice(tone(1.0, 44100, channels=2))
    assert ref.wave.shape[-1] == 24000 + 7200
    assert float(ref.wave.abs().max()) == pytest.approx(PEAK, abs=1e-6)
    assert torch.equal(ref.wave[-7200:], torch.zeros(7200))


def test_driving_audio_is_trimmed_or_padded_with_a_message():
    long = driving_audio(tone(6.2), mel_frames=506)
    assert long.wave.shape[-1] == 506 * HOP and any("trimmed" in m for m in long.messages)
    short = driving_audio(tone(2.0), mel_frames=506)
    assert short.wave.shape[-1] == 506 * HOP and any("padded with 3.06 s" in m for m in short.messages)
    assert torch.equal(short.wave[48000:], torch.zeros(506 * HOP - 48000))
    exact = driving_audio(tone(5.06), mel_frames=506)
    assert not any("trimmed" in m or "padded" in m for m in exact.messages)


def test_silent_audio_is_reported_not_divided_by_zero():
    silent = {"waveform": torch.zeros(1, 1, 24000), "sample_rate": 24000}
    with pytest.raises(AudioInputError, match="reference voice is silent"):
        reference_voice(silent)
    drive = driving_audio(silent, mel_frames=100)
    assert torch.equal(drive.wave, torch.zeros(100 * HOP)) and any("silent" in m for m in drive.messages)


@pytest.mark.parametrize("bad, expect", [
    (float("nan"), "NaN or infinite"),
    (float("inf"), "NaN or infinite"),
])
def test_invalid_samples_are_rejected(bad, expect):
    audio = tone(0.5)
    audio["waveform"][0, 0, 100] = bad
    with pytest.raises(AudioInputError, match=expect):
        to_mono_24k(audio, "driving audio")


def test_malformed_and_tiny_audio():
    with pytest.raises(AudioInputError, match="connect a LoadAudio node"):
        to_mono_24k(torch.zeros(10))
    with pytest.raises(AudioInputError, match="sample_rate must be"):
        to_mono_24k({"waveform": torch.zeros(1, 1, 10), "sample_rate": 0})
    with pytest.raises(AudioInputError, match="is empty"):
        to_mono_24k({"waveform": torch.zeros(1, 1, 0), "sample_rate": 24000})
    with pytest.raises(AudioInputError, match="at least a second"):
        reference_voice({"waveform": torch.ones(1, 1, 50), "sample_rate": 24000})
    click = driving_audio({"waveform": torch.tensor([[[1.0]]]), "sample_rate": 48000}, mel_frames=10)
    assert click.wave.shape[-1] == 10 * HOP


def test_durations_of_the_release_and_others():
    d = units.Duration.from_video_frames(81)
    assert (d.latent_frames, d.mel_frames, d.seconds, d.samples) == (21, 506, 5.0625, 121440)
    assert units.Duration.from_seconds(5.0).video_frames == 81
    assert units.Duration.from_seconds(0.01).video_frames == 5
    assert units.Duration.from_seconds(10).latent_frames == 41
    assert units.video_frames(21) == 81 and units.mel_frames(121) == 756
    with pytest.raises(ValueError, match="4k\\+1"):
        units.latent_frames(80)

"""Hostile inputs at the front ends: odd sample rates, layouts and levels are handled within bounded time and
memory, or refused with a message naming the input."""
import copy
import math
import time

import pytest
import torch

from uniavgen_core.audio.inputs import (MAX_RATE, MIN_RATE, AudioInputError, driving_audio, reference_voice,
                                       resample, to_mono_24k)
from uniavgen_core.units import SAMPLE_RATE


def sine(freq, rate, seconds=1.0, channels=1):
    t = torch.arange(int(rate * seconds)) / rate
    return {"waveform": (0.5 * torch.sin(2 * math.pi * freq * t)).repeat(1, channels, 1), "sample_rate": rate}


@pytest.mark.parametrize("rate", [12001, 44101, 96001, 22051, 7919, 768_000 - 1])
def test_awkward_rates_resample_quickly_and_keep_the_pitch(rate):
    """Rates sharing few factors with 24 kHz once built a polyphase kernel of gigabytes."""
    start = time.perf_counter()
    wave, messages = to_mono_24k(sine(440.0, rate), "driving audio")
    assert time.perf_counter() - start < 5
    assert abs(wave.shape[-1] - SAMPLE_RATE) <= 1 and torch.isfinite(wave).all()
    spectrum = torch.fft.rfft(wave * torch.hann_window(wave.shape[-1]))
    peak_hz = int(spectrum.abs().argmax()) * SAMPLE_RATE / wave.shape[-1]
    assert abs(peak_hz - 440.0) < 2 and "resampled" in messages[-1]


def test_fft_and_polyphase_resampling_agree():
    t = torch.arange(48000) / 48000
    wave = torch.sin(2 * math.pi * 300 * t) + 0.3 * torch.sin(2 * math.pi * 2100 * t)
    a = resample(wave, 48000)
    import torchaudio.functional as AF
    b = AF.resample(wave, 48000, SAMPLE_RATE)
    inner = slice(2000, -2000)                      # away from the edges, where the FFT wraps around
    assert float((a[inner] - b[inner]).abs().max()) < 2e-2


@pytest.mark.parametrize("rate", [0, -8000, MIN_RATE - 1, MAX_RATE + 1, float("nan"), float("inf"), 24000.5, True,
                                  "24000", None])
def test_impossible_sample_rates_are_named(rate):
    with pytest.raises(AudioInputError, match="sample_rate must be a whole number of Hz"):
        to_mono_24k({"waveform": torch.zeros(1, 1, 2400), "sample_rate": rate}, "driving audio")


def test_channels_last_audio_is_read_as_channels():
    audio = sine(300.0, 24000, channels=2)
    last = {"waveform": audio["waveform"].transpose(1, 2).contiguous(), "sample_rate": 24000}
    wave, messages = to_mono_24k(last, "driving audio")
    assert wave.shape[-1] == 24000 and any("[samples, channels]" in m for m in messages)
    assert torch.allclose(wave, to_mono_24k(audio, "driving audio")[0])


@pytest.mark.parametrize("peak", [1e-40, 1e-20, 1e-9, 0.0])
def test_nearly_silent_audio_is_silence_not_infinity(peak):
    audio = sine(300.0, 24000)
    audio["waveform"] = audio["waveform"] * (2 * peak)
    prepared = driving_audio(audio, mel_frames=40)
    assert torch.isfinite(prepared.wave).all() and any("silent" in m for m in prepared.messages)
    with pytest.raises(AudioInputError, match="silent"):
        reference_voice(audio)


def test_too_long_or_too_many_channels_is_refused_before_any_work():
    huge = {"waveform": torch.zeros(1, 1, 1).expand(1, 1, 1000 * 8000), "sample_rate": 8000}
    with pytest.raises(AudioInputError, match="at most 600 s"):
        to_mono_24k(huge, "driving audio")
    wide = {"waveform": torch.zeros(1, 200, 24000), "sample_rate": 24000}
    with pytest.raises(AudioInputError, match="64 channels"):
        to_mono_24k(wide, "driving audio")


# ------------------------------------------------------------------------------------------------ core API

from helpers import random_request  # noqa: E402
from uniavgen_core.sampling import SamplingParams, Task, sample  # noqa: E402

TWO = SamplingParams(steps=2)


@pytest.mark.parametrize("field", ["shift", "video_cfg", "audio_cfg", "macfg_fraction"])
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf"), "3", None])
def test_sampling_settings_must_be_finite_numbers(field, value):
    with pytest.raises(ValueError, match=field):
        SamplingParams(**{field: value})


@pytest.mark.parametrize("seed", [-1, 2 ** 64, 2 ** 70, 1.5])
def test_seeds_outside_64_bits_are_named(tiny_model, seed):
    request = random_request(Task.AVG, 1)
    request.seed = seed
    with pytest.raises(ValueError, match="seed must be a whole number"):
        sample(tiny_model, [request], TWO)


def test_wrong_caption_width_and_foreign_vocabulary_are_named(tiny_model):
    with pytest.raises(ValueError, match="caption features are 63 wide; this model takes 64"):
        sample(tiny_model, [random_request(Task.AVG, 2, text_dim=63)], TWO)
    request = random_request(Task.AVG, 3)
    request.condition.speech_ids[0] = tiny_model.config.speech_vocab_size + 5
    with pytest.raises(ValueError, match="outside this model's vocabulary"):
        sample(tiny_model, [request], TWO)


@pytest.mark.parametrize("name", ["caption", "ref_latent", "cond_mel"])
def test_non_finite_conditioning_is_named(tiny_model, name):
    request = random_request(Task.A2V, 4, cond_len=20)
    tensor = getattr(request.condition, name)
    setattr(request.condition, name, tensor.clone().index_fill_(0, torch.tensor([0]), float("nan")))
    with pytest.raises(ValueError, match=f"{name} contains NaN"):
        sample(tiny_model, [request], TWO)


@pytest.mark.parametrize("name", ["caption", "ref_latent", "cond_latent", "cond_mel"])
@pytest.mark.parametrize("scale", [2e4, 1e30])
def test_finite_but_absurd_conditioning_is_named_before_sampling(tiny_model, name, scale):
    """Inputs scaled far past a normalised input's few units would overflow inside the model: the input
    is named before any step, instead of a NaN at some step blamed on the precision."""
    request = random_request(Task.V2A, 5) if name == "cond_latent" else random_request(Task.A2V, 5, cond_len=20)
    tensor = getattr(request.condition, name)
    tensor.div_(tensor.abs().max()).mul_(scale)
    with pytest.raises(ValueError, match=f"{name} holds values up to"):
        sample(tiny_model, [request], TWO)


def test_an_overflow_in_the_weights_is_blamed_on_the_weights_not_the_precision(tiny_model):
    """An fp32 model whose weights overflow (an over-strong LoRA): the run stops at that step, and the
    message does not tell the user to load in fp32 what already is fp32."""
    model = copy.deepcopy(tiny_model)
    with torch.no_grad():
        model.blocks[0].ffn[0].weight.mul_(1e37)
    with pytest.raises(FloatingPointError, match="step 1 of 2 produced NaN") as caught:
        sample(model, [random_request(Task.AVG, 5)], TWO)
    assert "float32" in str(caught.value) and "LoRA" in str(caught.value) and "load the model" not in str(caught.value)


@pytest.mark.parametrize("dtype, cfg, said", [
    (torch.float16, 3.0, ["bf16 or fp32"]), (torch.bfloat16, 3.0, ["bfloat16", "LoRA"]),
    (torch.float32, 60.0, ["guidance", "60", "float32"]), (torch.float16, 25.0, ["guidance", "bf16 or fp32"])])
def test_overflow_advice_follows_precision_and_guidance(dtype, cfg, said):
    from uniavgen_core.sampling.loop import overflow_cause
    text = overflow_cause(SamplingParams(video_cfg=cfg), dtype)
    assert all(s in text for s in said), text
    assert ("guidance" in text) == (cfg > 10)


@pytest.mark.parametrize("name, value", [("shift", 1e-30), ("shift", 0.001), ("shift", 1e4), ("video_cfg", 1e30),
                                         ("audio_cfg", -500.0)])
def test_a_shift_or_guidance_that_would_overflow_is_refused_by_name(name, value):
    with pytest.raises(ValueError, match=f"{name} .* is"):
        SamplingParams(**{name: value})


@pytest.mark.parametrize("surrogate", ["\ud800", "\udbff", "\udc00", "\udfff"])
@pytest.mark.parametrize("lang", ["auto", "zh", "en"])
def test_lone_surrogates_become_unknown_characters(vocab_path, surrogate, lang):
    """Broken UTF-16 pasted into a transcript is listed as unknown, not a crash in the Chinese word splitter."""
    from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer
    tokens = SpeechTokenizer.from_file(vocab_path).encode(f"你好{surrogate}世界", lang, ref_text=f"a{surrogate}")
    assert f"\\u{ord(surrogate):04x}" in tokens.unknown


def test_a_transcript_longer_than_the_clip_can_speak_is_reported():
    from uniavgen_core import units
    from uniavgen_core.frontend.jobs import speaking_rate
    five = units.Duration.from_video_frames(81)
    release = "Over the past week it has been raining nonstop, but the sun is finally breaking through today!"
    assert speaking_rate(release, five) == []
    assert "282 characters for 5.06 s (56 per second" in speaking_rate(release * 3 + " " * 10, five)[0]
    assert speaking_rate("今天天气很好，我们去公园散步吧。", five) == []
    assert "characters for 5.06 s" in speaking_rate("今天天气很好" * 10, five)[0]

"""ComfyUI-style AUDIO ({"waveform": [B, C, T], "sample_rate": int}) to the model's conditioning
waveforms: 24 kHz mono, peak-rescaled as released (docs/MODEL.md §7.1)."""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from ..units import HOP, SAMPLE_RATE

PEAK = 0.999146              # the release's max_volume for both reference and driving audio
REFERENCE_TAIL_SECONDS = 0.3  # silence appended to a reference voice
MIN_RATE, MAX_RATE = 1000, 768_000    # Hz accepted
MAX_SECONDS = 600                     # longest input read; clips are seconds long
SILENT_PEAK = 1e-6                    # -120 dBFS: below this an input carries no usable sound
# torchaudio's polyphase resampler builds a kernel of about (rate/g) x (24000/g) taps (g their greatest
# common divisor); above this many, the resampling goes through the FFT instead (memory linear in length).
MAX_POLYPHASE = 200_000


class AudioInputError(ValueError):
    pass


@dataclass
class PreparedAudio:
    wave: torch.Tensor                                   # [N] float32, 24 kHz, mono
    messages: list[str] = field(default_factory=list)    # what was done to it, for the user


def to_mono_24k(audio, what: str = "audio", item: int = 0) -> tuple[torch.Tensor, list[str]]:
    """One item of an AUDIO dict as a float32 24 kHz mono waveform [N] (channels averaged)."""
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise AudioInputError(f"{what}: expected an AUDIO dict with 'waveform' and 'sample_rate' "
                              f"(connect a LoadAudio node), got {type(audio).__name__}")
    wave, rate = audio["waveform"], audio["sample_rate"]
    if not isinstance(wave, torch.Tensor) or wave.dim() not in (1, 2, 3):
        raise AudioInputError(f"{what}: waveform must be a tensor [batch, channels, samples]")
    wave = wave.reshape((1,) * (3 - wave.dim()) + tuple(wave.shape))
    if not 0 <= item < wave.shape[0]:
        raise AudioInputError(f"{what}: batch has {wave.shape[0]} item(s), item {item} was asked for")
    if (not isinstance(rate, (int, float)) or isinstance(rate, bool) or not math.isfinite(rate)
            or int(rate) != rate or not MIN_RATE <= rate <= MAX_RATE):
        raise AudioInputError(f"{what}: sample_rate must be a whole number of Hz from {MIN_RATE} to {MAX_RATE}, "
                              f"got {rate!r}")
    rate = int(rate)
    wave = wave[item]
    messages = []
    if wave.shape[0] > 16 and wave.shape[1] <= 8:        # [samples, channels]: channels last
        wave = wave.transpose(0, 1)
        messages.append(f"{what}: the waveform was [samples, channels]; read it as {wave.shape[0]} channel(s)")
    if wave.shape[-1] == 0 or wave.shape[0] == 0:
        raise AudioInputError(f"{what} is empty: it has no samples")
    if wave.shape[-1] > MAX_SECONDS * rate or wave.shape[0] > 64:
        raise AudioInputError(f"{what} is {wave.shape[-1] / rate:.0f} s with {wave.shape[0]} channels; give at most "
                              f"{MAX_SECONDS} s and 64 channels (trim it first: a clip needs seconds)")
    if not (wave.is_floating_point() or wave.dtype in (torch.int16, torch.int32, torch.uint8)):
        raise AudioInputError(f"{what}: samples of type {wave.dtype} are not audio")
    wave = wave.float()
    if not torch.isfinite(wave).all():
        bad = int((~torch.isfinite(wave)).sum())
        raise AudioInputError(f"{what} contains {bad} NaN or infinite sample(s); the file is damaged or an "
                              f"upstream node produced invalid audio")
    mono = wave.mean(dim=0)
    if wave.shape[0] > 1:
        messages.append(f"{what}: mixed {wave.shape[0]} channels down to mono")
    if rate != SAMPLE_RATE:
        mono = resample(mono, rate)
        messages.append(f"{what}: resampled from {rate} Hz to {SAMPLE_RATE} Hz")
    return mono, messages


def resample(wave: torch.Tensor, rate: int) -> torch.Tensor:
    """[N] at `rate` Hz to 24 kHz. Polyphase (torchaudio) where its kernel stays small, which covers the
    common rates; otherwise band-limited through the FFT, whose memory is linear in the length."""
    g = math.gcd(rate, SAMPLE_RATE)
    if (rate // g) * (SAMPLE_RATE // g) <= MAX_POLYPHASE:
        import torchaudio.functional as AF
        return AF.resample(wave, rate, SAMPLE_RATE)
    n = wave.shape[-1]
    m = max(1, round(n * SAMPLE_RATE / rate))
    spectrum = torch.fft.rfft(wave.double())
    keep = min(spectrum.shape[-1], m // 2 + 1)
    out = torch.zeros(m // 2 + 1, dtype=spectrum.dtype)
    out[:keep] = spectrum[:keep]
    return (torch.fft.irfft(out, n=m) * (m / n)).float()


def rescale_peak(wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Scale to the release's peak 0.999146; (unchanged wave, False) when it is silent (peak below
    SILENT_PEAK, where the gain would amplify nothing but rounding noise, or overflow)."""
    peak = wave.abs().max()
    if peak < SILENT_PEAK:
        return wave, False
    return wave * (PEAK / peak), True


def reference_voice(audio, item: int = 0) -> PreparedAudio:
    """A reference voice (RAVG): peak-rescaled, followed by 0.3 s of silence."""
    wave, messages = to_mono_24k(audio, "reference voice", item)
    if wave.shape[-1] < HOP:
        raise AudioInputError(f"reference voice is {wave.shape[-1] / SAMPLE_RATE * 1000:.1f} ms long; "
                              f"give at least a second of clear speech")
    wave, audible = rescale_peak(wave)
    if not audible:
        raise AudioInputError("reference voice is silent (no sample above -120 dBFS): it carries no voice to copy; "
                              "connect a recording of the speaker")
    tail = torch.zeros(round(REFERENCE_TAIL_SECONDS * SAMPLE_RATE))
    return PreparedAudio(torch.cat([wave, tail]), messages)


def driving_audio(audio, mel_frames: int, item: int = 0) -> PreparedAudio:
    """Driving audio (A2V): levelled, then fitted to the generated duration."""
    prepared = level_driving_audio(audio, item)
    wave, fitted = fit_to_frames(prepared.wave, mel_frames)
    return PreparedAudio(wave, prepared.messages + fitted)


def level_driving_audio(audio, item: int = 0) -> PreparedAudio:
    """Driving audio as 24 kHz mono at the release's peak (silence is reported, not scaled)."""
    wave, messages = to_mono_24k(audio, "driving audio", item)
    wave, audible = rescale_peak(wave)
    if not audible:
        messages.append("driving audio is silent (no sample above -120 dBFS): the video will get no speech cues")
    return PreparedAudio(wave, messages)


def fit_to_frames(wave: torch.Tensor, mel_frames: int) -> tuple[torch.Tensor, list[str]]:
    """Trim, or pad with silence, to `mel_frames` frames, so the whole target is conditioned (an
    uncovered tail would be noise the model takes as clean, docs/MODEL.md §8.4); says which."""
    target, have = mel_frames * HOP, wave.shape[-1]
    if have > target:
        return wave[:target], [f"driving audio is {have / SAMPLE_RATE:.2f} s; trimmed to the video's "
                               f"{target / SAMPLE_RATE:.2f} s"]
    if have < target:
        return torch.cat([wave, wave.new_zeros(target - have)]), [
            f"driving audio is {have / SAMPLE_RATE:.2f} s; padded with {(target - have) / SAMPLE_RATE:.2f} s "
            f"of silence to the video's {target / SAMPLE_RATE:.2f} s"]
    return wave, []

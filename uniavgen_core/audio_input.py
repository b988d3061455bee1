"""ComfyUI-style AUDIO ({"waveform": [B, C, T], "sample_rate": int}) to the model's conditioning
waveforms: 24 kHz mono, peak-rescaled as released (spec §7.1)."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .mel import HOP, SAMPLE_RATE

PEAK = 0.999146              # the release's max_volume for both reference and driving audio
REFERENCE_TAIL_SECONDS = 0.3  # silence appended to a reference voice


class AudioInputError(ValueError):
    pass


@dataclass
class PreparedAudio:
    wave: torch.Tensor                                   # [N] float32, 24 kHz, mono
    messages: list[str] = field(default_factory=list)    # what was done to it, for the user

    @property
    def seconds(self) -> float:
        return self.wave.shape[-1] / SAMPLE_RATE


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
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0 or int(rate) != rate:
        raise AudioInputError(f"{what}: sample_rate must be a positive whole number of Hz, got {rate!r}")
    rate = int(rate)
    wave = wave[item].float()
    if wave.shape[-1] == 0 or wave.shape[0] == 0:
        raise AudioInputError(f"{what} is empty: it has no samples")
    if not torch.isfinite(wave).all():
        bad = int((~torch.isfinite(wave)).sum())
        raise AudioInputError(f"{what} contains {bad} NaN or infinite sample(s); the file is damaged or an "
                              f"upstream node produced invalid audio")
    mono = wave.mean(dim=0)
    messages = []
    if wave.shape[0] > 1:
        messages.append(f"{what}: mixed {wave.shape[0]} channels down to mono")
    if rate != SAMPLE_RATE:
        import torchaudio.functional as AF
        mono = AF.resample(mono, rate, SAMPLE_RATE)
        messages.append(f"{what}: resampled from {rate} Hz to {SAMPLE_RATE} Hz")
    return mono, messages


def rescale_peak(wave: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """Scale to the release's peak 0.999146; (unchanged wave, False) when it is silent."""
    peak = wave.abs().max()
    if peak == 0:
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
        raise AudioInputError("reference voice is silent (every sample is 0): it carries no voice to copy; "
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
        messages.append("driving audio is silent (every sample is 0): the video will get no speech cues")
    return PreparedAudio(wave, messages)


def fit_to_frames(wave: torch.Tensor, mel_frames: int) -> tuple[torch.Tensor, list[str]]:
    """Trim, or pad with silence, to `mel_frames` frames, so the whole target is conditioned (an
    uncovered tail would be noise the model takes as clean, spec §9 item 4); says which."""
    target, have = mel_frames * HOP, wave.shape[-1]
    if have > target:
        return wave[:target], [f"driving audio is {have / SAMPLE_RATE:.2f} s; trimmed to the video's "
                               f"{target / SAMPLE_RATE:.2f} s"]
    if have < target:
        return torch.cat([wave, wave.new_zeros(target - have)]), [
            f"driving audio is {have / SAMPLE_RATE:.2f} s; padded with {(target - have) / SAMPLE_RATE:.2f} s "
            f"of silence to the video's {target / SAMPLE_RATE:.2f} s"]
    return wave, []

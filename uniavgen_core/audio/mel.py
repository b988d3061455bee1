"""The official log-mel front end (docs/MODEL.md §7.3) and the model's mel normalisation."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..units import HOP, N_MELS, SAMPLE_RATE

N_FFT = WIN = 1024
F_MAX = 8000.0
MEL_MEAN, MEL_STD = -5.1753, 2.1544
MAX_SAMPLE = 1e3             # far above full scale; beyond it the power spectrum can overflow float32


@functools.lru_cache(maxsize=8)
def mel_basis(device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """The mel filter bank [80, 513] (float32) and the analysis window."""
    import torchaudio.functional as AF
    # Slaney mel scale and Slaney area normalisation: the librosa filter the release uses.
    fb = AF.melscale_fbanks(N_FFT // 2 + 1, 0.0, F_MAX, N_MELS, SAMPLE_RATE, norm="slaney", mel_scale="slaney")
    return fb.T.contiguous().to(device), torch.hann_window(WIN, device=device)


def log_mel(wave: torch.Tensor) -> torch.Tensor:
    """wave [N] or [B, N] at 24 kHz -> log-mel [80, T] or [B, 80, T], T = N // 240, float32.

    Reflect-pad (n_fft - hop)/2 on both sides, STFT without centring, magnitude
    sqrt(re^2 + im^2 + 1e-9), Slaney mel filter, natural log clamped at 1e-5."""
    if wave.dim() not in (1, 2):
        raise ValueError(f"the mel front end takes a waveform [samples] or [batch, samples], got {tuple(wave.shape)}")
    if wave.is_floating_point() and not bool(torch.isfinite(wave).all()):
        raise ValueError("the waveform contains NaN or infinite samples")
    if wave.numel() and float(wave.abs().max()) > MAX_SAMPLE:
        raise ValueError(f"the waveform reaches {float(wave.abs().max()):.3g}; samples are expected within [-1, 1] "
                         f"(at most {MAX_SAMPLE:g}): level the audio first (audio.inputs does)")
    single = wave.dim() == 1
    y = wave.float().reshape(1, -1) if single else wave.float()
    pad = (N_FFT - HOP) // 2
    if y.shape[-1] <= pad:      # reflect padding needs more samples than it pads
        raise ValueError(f"audio of {y.shape[-1]} samples is too short for the mel front end: it needs at least "
                         f"{pad + 1} samples ({(pad + 1) / SAMPLE_RATE * 1000:.1f} ms at 24 kHz)")
    basis, window = mel_basis(y.device)
    y = F.pad(y[:, None], (pad, pad), mode="reflect")[:, 0]
    spec = torch.stft(y, N_FFT, hop_length=HOP, win_length=WIN, window=window, center=False,
                      return_complex=True)
    mag = torch.sqrt(torch.view_as_real(spec).pow(2).sum(-1) + 1e-9)
    mel = torch.log(torch.clamp(basis @ mag, min=1e-5))
    return mel[0] if single else mel


def normalise(logmel: torch.Tensor) -> torch.Tensor:
    """[..., 80, T] log-mel -> [..., T, 80] model-space mel."""
    return ((logmel - MEL_MEAN) / MEL_STD).transpose(-1, -2)


def denormalise(mel: torch.Tensor) -> torch.Tensor:
    """[..., T, 80] model-space mel -> [..., 80, T] log-mel (what the vocoder takes)."""
    return (mel.float() * MEL_STD + MEL_MEAN).transpose(-1, -2)

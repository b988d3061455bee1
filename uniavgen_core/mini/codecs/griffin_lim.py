"""A weight-free vocoder: log-mel of the front end in `audio/mel.py` -> 24 kHz waveform.

The front end's Slaney mel filter bank is inverted with its pseudo-inverse (clamped at zero and
refined by non-negative least-squares steps; nothing above 8 kHz comes back), the phase is
recovered with torchaudio's fast Griffin-Lim from a zero initial phase. It stands in for BigVGAN
where no weights are available, with the usual Griffin-Lim artefacts.

The wave is levelled, not clamped: a clip louder than the training speech is turned down to its
level and the peaks that are left above -1 dBFS are limited smoothly (audio/levels.py). The small
model's mels can ask for far more than its training speech: the demo's AVG mel decodes to +6.5 dBFS
active level with peaks of 35 (a fifth of its samples were clamped to full scale before)."""
from __future__ import annotations

import functools

import torch
import torchaudio.functional as AF

from ...audio.levels import SPEECH_LEVEL_DB, level_speech
from ...audio.mel import N_FFT, WIN, mel_basis
from ...units import HOP, N_MELS, SAMPLE_RATE

N_STFT = N_FFT // 2 + 1
N_ITER = 64
MOMENTUM = 0.99
NNLS_STEPS = 32
EDGE_FRAMES = 2
# Frame t of audio/mel.py covers samples [240 t - 392, 240 t + 632): its centre is 240 t + 120, while a
# centred STFT frame t is centred on 240 t.
_CENTRE = N_FFT // 2 - (N_FFT - HOP) // 2           # 120


@functools.lru_cache(maxsize=4)
def _filters(device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The front end's mel filter [80, 513], its pseudo-inverse [513, 80] (taken in float64), the window."""
    fb = mel_basis(torch.device("cpu"))[0]
    return fb.to(device), torch.linalg.pinv(fb.double()).float().to(device), mel_basis(device)[1]


def mel_to_magnitude(log_mel: torch.Tensor, nnls_steps: int = NNLS_STEPS) -> torch.Tensor:
    """log-mel [..., 80, T] -> non-negative linear magnitude [..., 513, T] whose mel matches it.

    Pseudo-inverse, clamped at zero, then multiplicative non-negative least-squares updates
    (each keeps the estimate >= 0 and does not increase ||fb m - mel||)."""
    fb, fb_pinv, _ = _filters(log_mel.device)
    target = log_mel.float().exp()
    mag = (fb_pinv @ target).clamp(min=0) + 1e-6
    if nnls_steps:
        num = fb.T @ target
        gram = fb.T @ fb
        for _ in range(nnls_steps):
            mag = mag * num / (gram @ mag + 1e-12)
    return mag


class GriffinLimVocoder:
    """log-mel [B, 80, T] -> AUDIO dict, the interface of `audio.vocoder.Vocoder.decode` (no weights).

    Deterministic (zero initial phase), runs on the device of its input; `n_iter` Griffin-Lim
    iterations with momentum. `speech_level_db`: the active level (dBFS) a louder clip is turned down
    to; None keeps the level the mel asks for (its peaks are limited all the same)."""

    def __init__(self, n_iter: int = N_ITER, momentum: float = MOMENTUM, nnls_steps: int = NNLS_STEPS,
                 speech_level_db: float | None = SPEECH_LEVEL_DB):
        if n_iter < 1:
            raise ValueError(f"n_iter must be at least 1, got {n_iter}")
        self.n_iter, self.momentum, self.nnls_steps = n_iter, momentum, nnls_steps
        self.speech_level_db = speech_level_db

    @torch.no_grad()
    def decode(self, log_mel: torch.Tensor) -> dict:
        """log-mel [B, 80, T] or [80, T] (de-normalised, see mel.denormalise) -> {"waveform":
        [B, 1, T*240] float32 on the CPU, levelled to peaks within -1 dBFS, "sample_rate": 24000}."""
        if log_mel.dim() == 2:
            log_mel = log_mel[None]
        if log_mel.dim() != 3 or log_mel.shape[1] != N_MELS or log_mel.shape[2] < 1:
            raise ValueError(f"vocoder input must be a log-mel [batch, {N_MELS}, frames], got {tuple(log_mel.shape)}")
        frames = log_mel.shape[-1]
        mag = mel_to_magnitude(log_mel, self.nnls_steps)
        # Replicated frames on each side stand in for the reflect padding of the front end and
        # let the centred STFT of Griffin-Lim cover the 120-sample offset of its frames (and
        # reach the 513 samples that its own reflect padding needs).
        pad = EDGE_FRAMES
        mag = torch.cat([mag[..., :1].expand(-1, -1, pad), mag, mag[..., -1:].expand(-1, -1, pad)], dim=-1)
        window = _filters(log_mel.device)[2]
        wave = AF.griffinlim(mag, window, N_FFT, HOP, WIN, power=1.0, n_iter=self.n_iter, momentum=self.momentum,
                             length=HOP * (frames + 2 * pad - 1), rand_init=False)
        # frame t + pad of the padded spectrogram is centred on 240 (t + pad), frame t of audio/mel.py on 240 t + 120
        start = HOP * pad - _CENTRE
        wave = level_speech(wave[:, start: start + HOP * frames].float(), self.speech_level_db).cpu()
        return {"waveform": wave[:, None], "sample_rate": SAMPLE_RATE}

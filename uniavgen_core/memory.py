"""A rough estimate of activation memory for one sampling forward, for ComfyUI's memory manager
(it frees other models until this much is available)."""
from __future__ import annotations

from .config import UniAVGenConfig


def activation_bytes(cfg: UniAVGenConfig, latent_frames: int, h: int, w: int, mel_frames: int, batch: int,
                     dtype_bytes: int = 2) -> int:
    n = (h // cfg.patch_size[1]) * (w // cfg.patch_size[2])
    video_tokens = (latent_frames + 1) * n
    audio_tokens = mel_frames * 2                                  # room for a reference voice
    # residual stream + q/k/v/attention output + FFN hidden, a few live at once
    video = video_tokens * (8 * cfg.dim + 2 * cfg.ffn_dim)
    audio = audio_tokens * (8 * cfg.audio_dim + 2 * cfg.audio_ffn_dim)
    # V2A keys/values per audio token over one frame's tokens, plus float32 rotary temporaries
    v2a = mel_frames * n * cfg.audio_dim * 6
    time = (latent_frames + 1) * 6 * cfg.dim * 4 // dtype_bytes
    return int(1.25 * batch * dtype_bytes * (video + audio + v2a + time))

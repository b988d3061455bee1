"""Activation memory of one sampling forward, for ComfyUI's memory manager (it frees other
models, or streams this one's weights, until this much is available)."""
from __future__ import annotations

from .config import UniAVGenConfig

SLACK = 256 * 2 ** 20          # rotary tables, embeddings, caption and kernel workspaces


def activation_bytes(cfg: UniAVGenConfig, latent_frames: int, h: int, w: int, mel_frames: int, batch: int,
                     dtype_bytes: int = 2, ref_mel_frames: int = 0) -> int:
    """Peak bytes of activations for a forward of `batch` samples (2 for batched CFG).

    The peak is a block's FFN (docs/MODEL.md §3.5): the block's input and its residual, the modulated
    input and the hidden layer (GELU runs in place) are alive together, i.e. 3 widths plus the
    FFN width per token. Both branches are counted, with a 20% margin. The interactions need
    less (V2A is factorised per frame). `benchmarks/memory_estimate.py` measures the real peak
    on the meta device, and tests/test_bench.py keeps this bound within 1.5x above it.
    """
    n = (h // cfg.patch_size[1]) * (w // cfg.patch_size[2])
    video = (latent_frames + 1) * n * (3 * cfg.dim + cfg.ffn_dim)
    audio = (ref_mel_frames + mel_frames) * (3 * cfg.audio_dim + cfg.audio_ffn_dim)
    return int(1.2 * batch * dtype_bytes * (video + audio)) + SLACK

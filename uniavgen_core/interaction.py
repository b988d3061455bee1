"""Asymmetric cross-modal interaction with face-aware modulation (spec §4, §5).

Notation: B batch, T latent frames without the reference frame, n tokens per latent frame,
S target audio tokens, F = 4(T-1)+1 pixel frames, r = S/F audio tokens per pixel frame.
"""
from __future__ import annotations

import functools
import math

import torch

from .attention import attention
from .layers import Attention, ModulatedHead
from .rope import apply_rope
from .timing import video_frames as pixel_frames


@functools.lru_cache(maxsize=64)
def a2v_windows(n_audio: int, latent_frames: int, window: int) -> tuple[tuple[int, ...], ...]:
    """Audio token indices seen by each latent frame: T windows of one common length W (spec §4.2).

    Latent frame i >= 1 covers pixel frames 4i-3..4i, widened by half a window of pixel frames on
    each side; frame 0 is the single audio position 0 widened the same way. Windows are evened out
    to the longest one of frames >= 1 and indices are clamped, i.e. edge tokens repeat."""
    r = n_audio / pixel_frames(latent_frames)
    half = (window + 1 - window % 2) // 2        # an even window is made odd first
    lo, hi = math.floor(half * r), math.ceil(half * r)
    bounds = [(-lo, 1 + hi)] + [(math.floor((4 * i - 3) * r) - lo, math.ceil((4 * i + 1) * r) + hi)
                                for i in range(1, latent_frames)]
    width = max(e - s for s, e in bounds[1:])
    windows = []
    for start, end in bounds:
        pad = width - (end - start)
        if start < 0:
            start -= pad
        elif end >= n_audio:
            end += pad
        else:
            start, end = start - pad // 2, end + pad - pad // 2
        windows.append(tuple(min(max(j, 0), n_audio - 1) for j in range(start, end)))
    return tuple(windows)


def v2a_interpolation(n_audio: int, latent_frames: int, dtype: torch.dtype, device):
    """For each audio token j: latent frames (down, up) and weights (w_down, w_up), [S] each.

    p_j = j / r is computed in the activation dtype, as released (spec §4.3, §9 item 3): in bf16
    positions are quantised. At the tail both indices clamp to the last pixel frame and the
    weights sum to 2, also as released."""
    f = pixel_frames(latent_frames)
    p = torch.arange(n_audio, device=device).to(dtype) / (n_audio / f)
    down = p.floor().clamp(0, f - 1)
    up = (down + 1).clamp(0, f - 1)
    w_up, w_down = 1 - (up - p), 1 - (p - down)
    # pixel frame k holds latent frame 0 for k = 0 and ceil(k/4) otherwise
    return (down.long() + 3) // 4, (up.long() + 3) // 4, w_down, w_up


class AudioToVideo(Attention):
    """Video tokens of each latent frame attend to a window of audio; the face mask gates the
    attention output before `o` (spec §4.2, §5)."""

    def __init__(self, video_dim, audio_dim, num_heads, qk_norm, eps, ops):
        super().__init__(video_dim, audio_dim, video_dim, num_heads, qk_norm, eps, ops)
        self.mask_head = ModulatedHead(video_dim, 1, eps, ops)

    def face_mask(self, video, e):
        """video [B, T*n, C]; e [B, T, C] float32 -> mask [B, T*n, 1] in the activation dtype."""
        return torch.sigmoid(self.mask_head(video, e)).to(video.dtype)

    def forward(self, video, audio, mask, windows, q_rope, k_rope):
        """video [B, T*n, Cv]; audio [B, S, Ca]; mask [B, T*n, 1]; windows [T, W] long."""
        b, length, _ = video.shape
        t = windows.shape[0]
        q = apply_rope(self.project_q(video).unflatten(1, (t, -1)).flatten(0, 1), q_rope)   # [B*T, n, H, D]
        # k, v are row-wise, so project the S tokens once and gather the windows afterwards.
        k, v = self.project_kv(audio)
        k = apply_rope(k[:, windows].flatten(0, 1), k_rope)                                 # [B*T, W, H, D]
        v = v[:, windows].flatten(0, 1)
        out = attention(q, k, v).view(b, length, -1)
        return self.o(out * mask)


class VideoToAudio(Attention):
    """Each audio token attends to the mask-weighted tokens of its interpolated video frame
    (spec §4.3). Equivalent to the release, far cheaper: since W(w_u a + w_d b) + beta =
    w_u (W a + beta) + w_d (W b + beta) + (1 - w_u - w_d) beta, the T*n video tokens are projected
    once and the projected rows are interpolated (spec §9 item 28)."""

    def __init__(self, audio_dim, video_dim, num_heads, qk_norm, eps, ops):
        super().__init__(audio_dim, video_dim, audio_dim, num_heads, qk_norm, eps, ops)

    def _interpolate(self, proj, bias, interp):
        down, up, w_down, w_up = interp
        out = w_up[:, None, None] * proj[:, up] + w_down[:, None, None] * proj[:, down]
        if bias is not None:
            out = out + (1 - w_up - w_down)[:, None, None] * bias.to(out)
        return out

    def forward(self, audio, video, mask, interp, k_rope):
        """audio [B, S, Ca]; video [B, T*n, Cv]; mask [B, T*n, 1]; interp from v2a_interpolation."""
        b, s, _ = audio.shape
        video = video * mask
        n = k_rope[0].shape[0]
        k = self._interpolate(self.k(video).unflatten(1, (-1, n)), self.k.bias, interp)    # [B, S, n, C]
        v = self._interpolate(self.v(video).unflatten(1, (-1, n)), self.v.bias, interp)
        q = self.project_q(audio).flatten(0, 1)[:, None]                                   # [B*S, 1, H, D]
        k = apply_rope(self.heads(self.norm_k(k)).flatten(0, 1), k_rope)                    # [B*S, n, H, D]
        v = self.heads(v).flatten(0, 1)
        # The query's rotation is at position 0, i.e. the identity.
        return self.o(attention(q, k, v).view(b, s, -1))

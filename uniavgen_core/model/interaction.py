"""Asymmetric cross-modal interaction with face-aware modulation (docs/MODEL.md §4, §5).

Notation: B batch, T latent frames without the reference frame, n tokens per latent frame,
S target audio tokens, F = 4(T-1)+1 pixel frames, r = S/F audio tokens per pixel frame.
"""
from __future__ import annotations

import functools
import math

import torch

from ..units import TEMPORAL_STRIDE as STRIDE
from ..units import video_frames as pixel_frames
from .attention import attention
from .layers import Attention, ModulatedHead
from .rope import apply_rope


@functools.lru_cache(maxsize=64)
def a2v_windows(n_audio: int, latent_frames: int, window: int) -> tuple[tuple[int, ...], ...]:
    """Audio token indices seen by each latent frame: T windows of one common length W (docs/MODEL.md §4.1).

    Latent frame i >= 1 covers pixel frames 4i-3..4i, widened by half a window of pixel frames on
    each side; frame 0 is the single audio position 0 widened the same way. Windows are evened out
    to the longest one of frames >= 1 and indices are clamped, i.e. edge tokens repeat."""
    r = n_audio / pixel_frames(latent_frames)
    half = (window + 1 - window % 2) // 2        # an even window is made odd first
    lo, hi = math.floor(half * r), math.ceil(half * r)
    bounds = [(-lo, 1 + hi)] + [(math.floor((STRIDE * i - 3) * r) - lo, math.ceil((STRIDE * i + 1) * r) + hi)
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


def v2a_interpolation(n_audio: int, latent_frames: int, dtype: torch.dtype, device="cpu"):
    """For each audio token j: latent frames (down, up) and weights (w_down, w_up), [S] each.

    p_j = j / r is computed in the activation dtype, as released (docs/MODEL.md §4.2, §8.3): in bf16
    positions are quantised. At the tail both indices clamp to the last pixel frame and the
    weights sum to 2, also as released."""
    f = pixel_frames(latent_frames)
    p = torch.arange(n_audio, device=device).to(dtype) / (n_audio / f)
    down = p.floor().clamp(0, f - 1)
    up = (down + 1).clamp(0, f - 1)
    w_up, w_down = 1 - (up - p), 1 - (p - down)
    # pixel frame k holds latent frame 0 for k = 0 and ceil(k / stride) otherwise
    return (down.long() + STRIDE - 1) // STRIDE, (up.long() + STRIDE - 1) // STRIDE, w_down, w_up


def _runs(frame_of: torch.Tensor, frames: int):
    """Tokens grouped by latent frame: index [T, R] (padded with token 0) and each token's slot."""
    members = [torch.nonzero(frame_of == f).flatten() for f in range(frames)]
    width = max(1, max(len(m) for m in members))
    index = torch.zeros(frames, width, dtype=torch.long)
    slot = torch.zeros(len(frame_of), dtype=torch.long)
    for f, m in enumerate(members):
        index[f, : len(m)] = m
        slot[m] = torch.arange(len(m))
    return index, slot


class V2APlan:
    """Per-shape constants of the V2A interpolation: token -> frames and weights, and the
    tokens grouped by each of their two frames. Built once on the host (the bf16 arithmetic
    is identical there) and cached on the device."""

    def __init__(self, n_audio: int, latent_frames: int, dtype: torch.dtype, device):
        down, up, w_down, w_up = v2a_interpolation(n_audio, latent_frames, dtype)
        self.down, self.up = down.to(device), up.to(device)
        # weights as the release computes them (activation dtype), then carried in float32
        self.w_down, self.w_up = w_down.float().to(device), w_up.float().to(device)
        self.w_bias = (1 - w_up - w_down).float().to(device)       # 0 inside, -1 at the tail
        self.same = (down == up).to(device)
        self.runs = {name: tuple(t.to(device) for t in _runs(frames, latent_frames))
                     for name, frames in (("down", down), ("up", up))}


@functools.lru_cache(maxsize=32)
def v2a_plan(n_audio: int, latent_frames: int, dtype: torch.dtype, device: torch.device) -> V2APlan:
    return V2APlan(n_audio, latent_frames, dtype, device)


class AudioToVideo(Attention):
    """Video tokens of each latent frame attend to a window of audio; the face mask gates the
    attention output before `o` (docs/MODEL.md §4.1, §5)."""

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
    """Each audio token j attends to the mask-weighted tokens of its interpolated video frame
    (docs/MODEL.md §4.2), computed without materialising a key set per audio token.

    With A_f = k(M * V_f) the projected video of latent frame f (bias b included), the release's
    key is K_j = w_u A_u + w_d A_d + c_j b, c_j = 1 - w_u - w_d (u, d: the token's two frames;
    c_j = -1 at the tail, where the weights sum to 2). RMS-norm scales each key row by one scalar,
    rotary embedding is linear, and so is attention in the values. Hence the logits are
    (w_u q.A~_u + w_d q.A~_d + c_j q.b~) / rms_j with A~ = rope(g * A), and rms_j follows from
    per-frame norms and dot products. Tokens are grouped by frame, so every product is a small
    batched matmul over one frame's n tokens (docs/MODEL.md §4.2)."""

    def __init__(self, audio_dim, video_dim, num_heads, qk_norm, eps, ops):
        super().__init__(audio_dim, video_dim, audio_dim, num_heads, qk_norm, eps, ops)

    def forward(self, audio, video, mask, plan: V2APlan, k_rope):
        """audio [B, S, Ca]; video [B, T*n, Cv]; mask [B, T*n, 1]."""
        b, s, width = audio.shape
        n = k_rope[0].shape[0]
        video = video * mask
        keys = self.k(video).unflatten(1, (-1, n))                                    # [B, T, n, C]
        values = self.heads(self.v(video).unflatten(1, (-1, n)))                      # [B, T, n, H, D]
        q = self.project_q(audio)                                                     # [B, S, H, D]
        gain = getattr(self.norm_k, "weight", None)
        scaled = keys if gain is None else keys * gain.to(keys)
        k_rot = apply_rope(self.heads(scaled).flatten(0, 1), k_rope).unflatten(0, (b, -1))  # [B, T, n, H, D]
        bias_k = self.k.bias.to(keys) if self.k.bias is not None else keys.new_zeros(width)
        b_rot = apply_rope(self.heads((bias_k if gain is None else bias_k * gain.to(keys))[None]), k_rope)  # [n, H, D]

        w_u, w_d, w_b = (w[None, :, None, None] for w in (plan.w_up, plan.w_down, plan.w_bias))   # [1, S, 1, 1]

        def by_frames(make, name):
            """make(group index) on the tokens grouped by their `name` frame ([B, T, R, ...]),
            then back to token order: [B, S, H, ...]."""
            index, slot = plan.runs[name]
            return make(index)[:, getattr(plan, name), slot]

        # logits: q_j . rope(g * K_j) = w_u q.A~_u + w_d q.A~_d + c_j q.b~
        dots_of = lambda index: torch.einsum("btrhd,btmhd->btrhm", q[:, index], k_rot)
        dots = (w_u * by_frames(dots_of, "up").float() + w_d * by_frames(dots_of, "down").float()
                + w_b * torch.einsum("bshd,mhd->bshm", q, b_rot).float())                    # [B, S, H, n]
        if gain is not None:
            dots = dots * self._inverse_rms(keys, bias_k, plan)[:, :, None, :]
        attn = torch.softmax(dots * q.shape[-1] ** -0.5, dim=-1).to(q.dtype)

        # values: sum_m a_jm (w_u V_u + w_d V_d + c_j b_v) = w_u a.V_u + w_d a.V_d + c_j b_v
        values_of = lambda index: torch.einsum("btrhm,btmhd->btrhd", attn[:, index], values)
        bias_v = self.heads(self.v.bias.to(values)) if self.v.bias is not None else 0
        out = (w_u.to(values) * by_frames(values_of, "up") + w_d.to(values) * by_frames(values_of, "down")
               + w_b.to(values) * bias_v)
        return self.o(out.flatten(2))

    def _inverse_rms(self, keys, bias_k, plan: V2APlan):
        """1 / sqrt(mean(K_j^2) + eps) for every token j and key position: [B, S, n], float32.
        |K_j|^2 expands into per-frame norms, frame f . frame f+1 and frame . bias products."""
        kf, bf = keys.float(), bias_k.float()
        norm, with_bias = kf.pow(2).sum(-1), kf @ bf                                   # [B, T, n]
        cross = torch.cat([(kf[:, 1:] * kf[:, :-1]).sum(-1), norm[:, -1:]], dim=1)     # frame f with f+1
        between = torch.where(plan.same[None, :, None], norm[:, plan.down], cross[:, plan.down])
        w_u, w_d, w_b = (w[None, :, None] for w in (plan.w_up, plan.w_down, plan.w_bias))
        square = (w_u ** 2 * norm[:, plan.up] + w_d ** 2 * norm[:, plan.down] + w_b ** 2 * bf.pow(2).sum()
                  + 2 * w_u * w_d * between + 2 * w_b * (w_u * with_bias[:, plan.up] + w_d * with_bias[:, plan.down]))
        return torch.rsqrt(square / keys.shape[-1] + self.norm_k.eps)

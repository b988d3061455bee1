"""Building blocks shared by both branches: norms, attention, the DiT block, modulated heads."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .attention import attention
from .ops import cast_like
from .rope import apply_rope


class RMSNorm(nn.Module):
    """RMS norm over the full width. As released (docs/MODEL.md §3.5, §8.5), x is not upcast: the
    output is x * scale * weight in the input dtype. The mean square is one float32 reduction
    (the release squares in the input dtype first), so in bf16 the scale can differ in its last
    bit, and the norm reads x once instead of writing and reading a squared copy."""

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        norm = torch.linalg.vector_norm(x, dim=-1, keepdim=True, dtype=torch.promote_types(x.dtype, torch.float32))
        if torch.is_grad_enabled():             # training: autograd needs the intermediates intact
            scale = torch.rsqrt(norm.square() / x.shape[-1] + self.eps).to(x.dtype)
            return x * scale * cast_like(self.weight, x)
        scale = norm.square_().div_(x.shape[-1]).add_(self.eps).rsqrt_().to(x.dtype)
        return (x * scale).mul_(cast_like(self.weight, x))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: x [B, G*n, C] with one (shift, scale) per group of n tokens, given as [B, G, 1, C]
    (G = latent frames for video, 1 for audio). One fused multiply-add: in bf16 the release
    rounds the product first, a difference at the last bit."""
    b, length, c = x.shape
    return torch.addcmul(shift, x.view(b, shift.shape[1], -1, c), 1 + scale).view(b, length, c)


def add_gated(x: torch.Tensor, y: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """x + y * g, with y [B, G*n, C] gated per group by g [B, G, 1, C] (one fused pass)."""
    b, length, c = x.shape
    groups = g.shape[1]
    return torch.addcmul(x.view(b, groups, -1, c), y.view(b, groups, -1, c), g).view(b, length, c)


class Attention(nn.Module):
    """q from a `q_dim` stream, k/v from a `kv_dim` stream, `dim` inner width, output back to
    `q_dim`; q and k RMS-normalised over the full inner width before the head split."""

    def __init__(self, q_dim, kv_dim, dim, num_heads, qk_norm, eps, ops):
        super().__init__()
        self.num_heads = num_heads
        self.q = ops.Linear(q_dim, dim)
        self.k = ops.Linear(kv_dim, dim)
        self.v = ops.Linear(kv_dim, dim)
        self.o = ops.Linear(dim, q_dim)
        self.norm_q = RMSNorm(dim, eps) if qk_norm else nn.Identity()
        self.norm_k = RMSNorm(dim, eps) if qk_norm else nn.Identity()

    def heads(self, x):
        return x.unflatten(-1, (self.num_heads, -1))

    def project_q(self, x):
        return self.heads(self.norm_q(self.q(x)))

    def project_kv(self, context):
        return self.heads(self.norm_k(self.k(context))), self.heads(self.v(context))

    def qkv(self, x, context, q_rope=None, k_rope=None):
        """Rotated queries and keys and the values, [B, L, H, D] each."""
        q = self.project_q(x)
        k, v = self.project_kv(context)
        if q_rope is not None:
            q = apply_rope(q, q_rope)
        if k_rope is not None:
            k = apply_rope(k, k_rope)
        return q, k, v

    def forward(self, x, context, q_rope=None, k_rope=None, key_mask=None):
        return self.o(attention(*self.qkv(x, context, q_rope, k_rope), key_mask))


class TanhGELU(nn.Module):
    """GELU, tanh approximation, computed in place at inference: the FFN's hidden layer is the
    largest activation of the model (2 x 1.19 GB at the official shape), so one buffer instead
    of two. Out of place when gradients are recorded."""

    def forward(self, x):
        if torch.is_grad_enabled():
            return F.gelu(x, approximate="tanh")
        return torch.ops.aten.gelu_(x, approximate="tanh")


class DiTBlock(nn.Module):
    """Wan attention block (docs/MODEL.md §3.5), used by the video and the audio branch."""

    def __init__(self, dim, ffn_dim, num_heads, qk_norm, cross_attn_norm, eps, ops):
        super().__init__()
        self.norm1 = ops.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.self_attn = Attention(dim, dim, dim, num_heads, qk_norm, eps, ops)
        self.norm3 = ops.LayerNorm(dim, eps=eps, elementwise_affine=True) if cross_attn_norm else nn.Identity()
        self.cross_attn = Attention(dim, dim, dim, num_heads, qk_norm, eps, ops)
        self.norm2 = ops.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.ffn = nn.Sequential(ops.Linear(dim, ffn_dim), TanhGELU(), ops.Linear(ffn_dim, dim))
        self.modulation = nn.Parameter(torch.zeros(1, 6, dim))

    def forward(self, x, e0, self_rope, self_mask, context, cross_rope, cross_mask):
        """x [B, L, C]; e0 [B, G, 6, C] float32 time projection per token group.
        self_rope: table for q and k; cross_rope: (q table, k table) or None."""
        # The float32 sum is cast to the activation dtype, as released (docs/MODEL.md §8.5).
        mod = (self.modulation.float()[:, None] + e0).to(x.dtype).unsqueeze(3)   # [B, G, 6, 1, C]
        s1, c1, g1, s2, c2, g2 = mod.unbind(2)
        u = modulate(self.norm1(x), s1, c1)
        x = add_gated(x, self.self_attn(u, u, self_rope, self_rope, self_mask), g1)
        del u                                   # no intermediate outlives its use: peak memory
        q_rope, k_rope = cross_rope if cross_rope is not None else (None, None)
        x = x + self.cross_attn(self.norm3(x), context, q_rope, k_rope, cross_mask)
        hidden = self.ffn[0](modulate(self.norm2(x), s2, c2))     # the modulated input is freed here
        y = self.ffn[2](self.ffn[1](hidden))
        del hidden
        return add_gated(x, y, g2)


class ModulatedHead(nn.Module):
    """LayerNorm -> shift/scale from `modulation` + a time embedding -> Linear, all in float32
    (the release runs it under float32 autocast; docs/MODEL.md §3.8, §5)."""

    def __init__(self, dim, out_dim, eps, ops):
        super().__init__()
        self.norm = ops.LayerNorm(dim, eps=eps, elementwise_affine=False)
        self.head = ops.Linear(dim, out_dim)
        self.modulation = nn.Parameter(torch.zeros(1, 2, dim))

    def forward(self, x, e):
        """x [B, G*n, C]; e [B, G, C] float32 -> [B, G*n, out] float32."""
        shift, scale = (self.modulation.float()[:, None] + e[:, :, None]).unsqueeze(3).unbind(2)
        # The norm's output is rounded to the activation dtype first, as released.
        return self.head(modulate(self.norm(x).float(), shift, scale))

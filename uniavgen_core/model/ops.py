"""The default layer namespace: torch.nn layers that cast their weights to the input.

Every layer of the model is built from an injectable namespace providing `Linear`, `Conv1d`,
`Conv3d`, `LayerNorm` and `Embedding` with torch.nn's constructor arguments and state-dict
keys. This default one casts weight and bias to the input's dtype and device when they differ
(a no-op when they match), so bf16/fp16/fp8-stored weights can run at a chosen compute dtype
and the float32 parts of the model (docs/MODEL.md §3.4-3.8) can use bf16 weights. Inside ComfyUI,
`comfy.ops.manual_cast` plugs in the same way and adds offloading and weight patches.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import fp8


def cast_like(t: torch.Tensor | None, ref: torch.Tensor) -> torch.Tensor | None:
    """`t` in `ref`'s floating dtype and device (None stays None)."""
    if t is None or (t.dtype == ref.dtype and t.device == ref.device):
        return t
    return t.to(device=ref.device, dtype=ref.dtype)


class Linear(nn.Linear):
    """A Linear whose weight may be stored in scaled fp8 (a `scale_weight` buffer, registered by
    the loader for such files): dequantised on the fly."""

    def forward(self, x):
        scale = getattr(self, fp8.SCALE, None)
        if scale is None:
            weight = cast_like(self.weight, x)
        else:
            weight = fp8.dequantise(self.weight, scale, x.dtype, x.device)
        return F.linear(x, weight, cast_like(self.bias, x))


class Conv1d(nn.Conv1d):
    def forward(self, x):
        return self._conv_forward(x, cast_like(self.weight, x), cast_like(self.bias, x))


class Conv3d(nn.Conv3d):
    def forward(self, x):
        return self._conv_forward(x, cast_like(self.weight, x), cast_like(self.bias, x))


class LayerNorm(nn.LayerNorm):
    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, cast_like(self.weight, x), cast_like(self.bias, x), self.eps)


class Embedding(nn.Embedding):
    """Rows come out in the stored dtype; the caller casts them to its compute dtype."""


class CastOps:
    Linear = Linear
    Conv1d = Conv1d
    Conv3d = Conv3d
    LayerNorm = LayerNorm
    Embedding = Embedding


def default_ops():
    return CastOps

"""The scaled-fp8 storage format, in one place: which weights are stored in fp8, how they are
quantised and dequantised, and the name of their scale.

A quantised Linear keeps its weight as float8 e4m3fn `q` and a float32 scalar next to it under
`<layer>.scale_weight`, with weight ~= q * scale (per-tensor absolute-max scaling: the largest
magnitude maps to e4m3fn's largest finite value, 448). This is the convention of ComfyUI's
scaled-fp8 files, so ComfyUI's own fp8 layers read these files as they are.
"""
from __future__ import annotations

import re

import torch

from .config import STACKS

FP8 = torch.float8_e4m3fn
FP8_MAX = torch.finfo(FP8).max
SCALE = "scale_weight"
SCALE_SUFFIX = "." + SCALE
# The big matrices of the transformer stacks and interactions; norms, modulations, embeddings,
# time MLPs and heads stay in bf16.
QUANTISED = re.compile(rf"^({'|'.join(STACKS)})\.\d+\.(self_attn\.|cross_attn\.)?"
                       r"(q|k|v|o|ffn\.0|ffn\.2)\.weight$")


def is_quantised(key: str) -> bool:
    """Whether the converter stores this state-dict key in fp8."""
    return QUANTISED.match(key) is not None


def scale_key(weight_key: str) -> str:
    """`x.weight` -> `x.scale_weight`."""
    return weight_key[: -len("weight")] + SCALE


def layer_of(key: str) -> str:
    """The module name of a `.weight` or `.scale_weight` key."""
    return key.rsplit(".", 1)[0]


def quantise(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(q, scale) with weight ~= q.float() * scale; scale is a float32 scalar."""
    scale = weight.float().abs().max().clamp(min=1e-12) / FP8_MAX
    return (weight.float() / scale).clamp(-FP8_MAX, FP8_MAX).to(FP8), scale.reshape(())


def dequantise(q: torch.Tensor, scale: torch.Tensor, dtype: torch.dtype = torch.float32,
               device: torch.device | None = None) -> torch.Tensor:
    """q * scale in `dtype` (on `device`). Every fp8 value is exact in bf16, fp16 and fp32, and
    the float32 scale multiplies at full precision before the one rounding to `dtype`."""
    device = q.device if device is None else device
    return q.to(device=device, dtype=dtype) * scale.to(device=device, dtype=torch.float32)


def attach_scales(model: torch.nn.Module, layers) -> None:
    """Give each named Linear a meta `scale_weight` buffer to load into, unless its layer class
    (e.g. ComfyUI's scaled-fp8 Linear) already has one."""
    for name in layers:
        module = model.get_submodule(name)
        if getattr(module, SCALE, None) is None:
            module.register_buffer(SCALE, torch.empty((), device="meta"))

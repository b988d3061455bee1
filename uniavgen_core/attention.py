"""The one attention entry point of the model, with selectable backends.

`sdpa` (torch scaled_dot_product_attention) always works. `flash_attn` and `sage`
(SageAttention) are used when installed and the call suits them (CUDA, fp16/bf16, no key
mask); other calls with a boolean mask go to SDPA, and calls with a float logit bias (the few
caption keys, see model._caption_bias) to a small float32-softmax path. `resolve_backend` says
why a backend is unavailable.
"""
from __future__ import annotations

import contextlib
import importlib
import logging

import torch
import torch.nn.functional as F

log = logging.getLogger("UniAVGen")
_backend = "sdpa"            # the backend of the forward in progress (a global: torch.compile traces it)


def _sdpa(q, k, v, key_mask=None):
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)


def _flash(q, k, v):
    try:                                                    # FlashAttention 3 (Hopper) first, then 2
        out = importlib.import_module("flash_attn_interface").flash_attn_func(q, k, v)
    except ImportError:
        out = importlib.import_module("flash_attn").flash_attn_func(q, k, v)
    return out[0] if isinstance(out, tuple) else out       # FA3 builds differ in returning (out, lse)


def _sage(q, k, v):
    return importlib.import_module("sageattention").sageattn(q, k, v, tensor_layout="NHD", is_causal=False)


# name -> (kernel for [B, L, H, D] q/k/v without a mask, modules one of which must import)
BACKENDS = {
    "sdpa": (None, ()),
    "flash_attn": (_flash, ("flash_attn_interface", "flash_attn")),
    "sage": (_sage, ("sageattention",)),
}


def unavailable_reason(name: str) -> str | None:
    """None if `name` can run here, else why not."""
    if name not in BACKENDS:
        return f"unknown attention backend {name!r} (choose from {', '.join(BACKENDS)})"
    kernel, modules = BACKENDS[name]
    if kernel is None:
        return None
    if not torch.cuda.is_available():
        return f"{name} needs a CUDA GPU"
    for module in modules:
        try:
            importlib.import_module(module)
            return None
        except ImportError:
            continue
    return f"{name} is not installed (pip install {modules[-1].replace('_', '-')})"


def resolve_backend(name: str) -> str:
    """`name` if it can run here, else 'sdpa' with the reason logged. 'auto' picks the best installed."""
    if name == "auto":
        return next((b for b in ("flash_attn", "sage") if unavailable_reason(b) is None), "sdpa")
    reason = unavailable_reason(name)
    if reason is not None:
        log.warning("attention backend: %s; using sdpa", reason)
        return "sdpa"
    return name


@contextlib.contextmanager
def use_backend(name: str):
    global _backend
    previous, _backend = _backend, name
    try:
        yield
    finally:
        _backend = previous


def _biased(q, k, v, key_bias):
    """Attention with a float32 bias added to the logits, softmax in float32 (few keys only:
    the logits are materialised)."""
    logits = torch.einsum("blhd,bkhd->bhlk", q, k).float() * q.shape[-1] ** -0.5 + key_bias[:, None, None, :]
    return torch.einsum("bhlk,bkhd->blhd", logits.softmax(dim=-1).to(v.dtype), v)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention with scale 1/sqrt(head_dim).

    q: [B, Lq, H, D]; k, v: [B, Lk, H, D]; key_mask: [B, Lk] bool, True = attend (None = all),
    or float32, added to the logits (-inf = masked).
    Returns [B, Lq, H*D].
    """
    if key_mask is not None and key_mask.is_floating_point():
        return _biased(q, k, v, key_mask).flatten(2)
    kernel = BACKENDS[_backend][0]
    if kernel is not None and key_mask is None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16):
        return kernel(q, k, v).flatten(2)
    return _sdpa(q, k, v, key_mask).flatten(2)


def to_device(values, device) -> torch.Tensor:
    """A small tensor of host-side metadata on `device` without a host sync: a plain
    `torch.tensor(values, device="cuda")` is a blocking copy that waits for the stream."""
    t = torch.as_tensor(values)
    if torch.device(device).type == "cuda":
        return t.pin_memory().to(device, non_blocking=True)
    return t.to(device)


def length_mask(lengths: list[int], max_len: int, device) -> torch.Tensor | None:
    """[B, max_len] bool mask of positions < each length; None when nothing is masked."""
    if all(n == max_len for n in lengths):
        return None
    return torch.arange(max_len, device=device)[None, :] < to_device(list(lengths), device)[:, None]

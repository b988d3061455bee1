"""The one attention entry point of the model, and the registry of attention backends.

A backend is a kernel for [B, L, H, D] q/k/v plus the calls it can take: devices, dtypes,
whether it takes a boolean key mask, and the modules it needs. `attention()` checks a call
against the selected backend's constraints in one place and gives calls it cannot take to
`sdpa` (torch scaled_dot_product_attention, which takes everything); calls with a float logit
bias (the few caption keys, see dit.caption_bias) go to a small float32-softmax path. A new
backend is a kernel and a `register(AttentionBackend(...))`; the loader's choices and `auto`
follow the registry.
"""
from __future__ import annotations

import contextlib
import importlib
import logging
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

log = logging.getLogger("UniAVGen")
_backend = "sdpa"            # the backend of the forward in progress (a global: torch.compile traces it)
HALF = (torch.float16, torch.bfloat16)


@dataclass(frozen=True)
class AttentionBackend:
    name: str
    kernel: Callable             # (q, k, v, key_mask) -> [B, Lq, H, D]; key_mask is None unless key_mask=True
    modules: tuple = ()          # modules one of which must import (empty: always there)
    devices: tuple | None = None     # device types it runs on (None: any)
    dtypes: tuple | None = None      # q/k/v dtypes it takes (None: any)
    key_mask: bool = False       # takes a boolean key mask
    priority: int = 0            # `auto` picks the available backend with the highest

    def accepts(self, q: torch.Tensor, key_mask: torch.Tensor | None) -> bool:
        """Whether this call suits the kernel."""
        return ((key_mask is None or self.key_mask) and (self.devices is None or q.device.type in self.devices)
                and (self.dtypes is None or q.dtype in self.dtypes))

    def unavailable_reason(self) -> str | None:
        """None if the backend can run on this machine, else why not."""
        if self.devices is not None and not any(_device_present(d) for d in self.devices):
            return f"{self.name} needs a {' or '.join(d.upper() for d in self.devices)} device"
        if not self.modules:
            return None
        for module in self.modules:
            try:
                importlib.import_module(module)
                return None
            except ImportError:
                continue
        return f"{self.name} is not installed (pip install {self.modules[-1].replace('_', '-')})"


BACKENDS: dict[str, AttentionBackend] = {}


def register(backend: AttentionBackend) -> AttentionBackend:
    BACKENDS[backend.name] = backend
    return backend


def _device_present(kind: str) -> bool:
    if kind == "cuda":
        return torch.cuda.is_available()
    if kind == "mps":
        return torch.backends.mps.is_available()
    return kind == "cpu"


def _sdpa(q, k, v, key_mask=None):
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2)


def _flash(q, k, v, key_mask=None):
    try:                                                    # FlashAttention 3 (Hopper) first, then 2
        out = importlib.import_module("flash_attn_interface").flash_attn_func(q, k, v)
    except ImportError:
        out = importlib.import_module("flash_attn").flash_attn_func(q, k, v)
    return out[0] if isinstance(out, tuple) else out       # FA3 builds differ in returning (out, lse)


def _sage(q, k, v, key_mask=None):
    return importlib.import_module("sageattention").sageattn(q, k, v, tensor_layout="NHD", is_causal=False)


register(AttentionBackend("sdpa", _sdpa, key_mask=True))
register(AttentionBackend("flash_attn", _flash, ("flash_attn_interface", "flash_attn"), ("cuda",), HALF, priority=2))
register(AttentionBackend("sage", _sage, ("sageattention",), ("cuda",), HALF, priority=1))


def unavailable_reason(name: str) -> str | None:
    """None if `name` can run here, else why not."""
    if name not in BACKENDS:
        return f"unknown attention backend {name!r} (choose from {', '.join(BACKENDS)})"
    return BACKENDS[name].unavailable_reason()


def choices() -> list[str]:
    """What a user may ask for: 'auto' and every registered backend."""
    return ["auto", *BACKENDS]


def auto_order() -> list[str]:
    """The backends `auto` tries, best first."""
    return [b.name for b in sorted(BACKENDS.values(), key=lambda b: -b.priority)]


def resolve_backend(name: str) -> str:
    """`name` if it can run here, else 'sdpa' with the reason logged. 'auto' picks the first
    available backend of `auto_order()`."""
    if name == "auto":
        return next(b for b in auto_order() if unavailable_reason(b) is None)
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
    backend = BACKENDS[_backend]
    if not backend.accepts(q, key_mask):
        backend = BACKENDS["sdpa"]
    return backend.kernel(q, k, v, key_mask).flatten(2)


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

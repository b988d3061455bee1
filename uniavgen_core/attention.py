"""The one attention entry point of the model. Other backends plug in here later."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax attention with scale 1/sqrt(head_dim).

    q: [B, Lq, H, D]; k, v: [B, Lk, H, D]; key_mask: [B, Lk] bool, True = attend (None = all).
    Returns [B, Lq, H*D].
    """
    mask = None if key_mask is None else key_mask[:, None, None, :]
    out = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), attn_mask=mask)
    return out.transpose(1, 2).flatten(2)


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

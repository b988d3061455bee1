"""Speech-text (transcript) embedding: F5-TTS style ConvNeXtV2 stack (docs/MODEL.md §1.3, §3.3)."""
from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import nn

from .sinusoid import speech_positions
from .ops import cast_like


class GRN(nn.Module):
    """Global response normalisation over the time axis, restricted to each sample's own
    length so that padding a shorter transcript inside a batch changes nothing."""

    def __init__(self, dim):
        super().__init__()
        self.gamma = nn.Parameter(torch.zeros(1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, dim))

    def forward(self, x, valid):
        g = torch.linalg.vector_norm(x if valid is None else x * valid, dim=1, keepdim=True)
        n = g / (g.mean(dim=-1, keepdim=True) + 1e-6)
        return cast_like(self.gamma, x) * (x * n) + cast_like(self.beta, x) + x


class ConvNeXtV2Block(nn.Module):
    def __init__(self, dim, hidden, ops):
        super().__init__()
        self.dwconv = ops.Conv1d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = ops.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = ops.Linear(dim, hidden)
        self.grn = GRN(hidden)
        self.pwconv2 = ops.Linear(hidden, dim)

    def forward(self, x, valid):
        y = self.dwconv(x.transpose(1, 2)).transpose(1, 2)
        y = F.gelu(self.pwconv1(self.norm(y)))
        return x + self.pwconv2(self.grn(y, valid))


class SpeechTextEmbedding(nn.Module):
    def __init__(self, vocab_size, dim, conv_layers, conv_mult, ops):
        super().__init__()
        self.text_embed = ops.Embedding(vocab_size + 1, dim)   # row 0 is the filler
        self.text_blocks = nn.ModuleList(ConvNeXtV2Block(dim, dim * conv_mult, ops) for _ in range(conv_layers))

    def forward(self, ids: torch.Tensor, valid: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """ids [B, L] vocab ids padded with -1; valid [B, L, 1] (positions inside each sample's
        own length) or None when all samples use the full length. Returns [B, L, dim]."""
        ids = ids + 1                                   # filler -1 -> 0, vocab id k -> k + 1
        keep = (ids != 0).unsqueeze(-1)
        x = self.text_embed(ids).to(dtype)
        x = x + speech_positions(x.shape[-1], ids.shape[1], ids.device).to(dtype)
        x = x * keep
        for block in self.text_blocks:
            x = block(x, valid) * keep                  # filler re-zeroed after every block
        return x

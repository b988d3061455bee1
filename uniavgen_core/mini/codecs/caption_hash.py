"""A weight-free caption encoder standing in for umT5 features: one hashed vector per word.

Each lowercase word maps to a fixed pseudo-random vector of unit RMS drawn from a BLAKE2b stream
of the word (Box-Muller on the hash bytes, no RNG library involved), so the features are the
same in every process, on every machine and with every torch or numpy version. A small
sinusoidal position term makes word order matter a little."""
from __future__ import annotations

import functools
import hashlib
import math
import re

import torch

_WORD = re.compile(r"\w+")
_PERSON = b"uniavgen-caption"


@functools.lru_cache(maxsize=65536)
def _word_vector(word: str, dim: int) -> torch.Tensor:
    """[dim] float64 standard normals from the hash of `word`, scaled to unit RMS."""
    need = 8 * (dim + dim % 2)            # two 32-bit uniforms per pair of normals
    stream = bytearray()
    counter = 0
    while len(stream) < need:
        h = hashlib.blake2b(word.encode("utf-8"), digest_size=64, person=_PERSON,
                            salt=counter.to_bytes(8, "little") + dim.to_bytes(8, "little"))
        stream += h.digest()
        counter += 1
    b = torch.frombuffer(stream[:need], dtype=torch.uint8).to(torch.int64).reshape(-1, 4)
    ints = b[:, 0] | b[:, 1] << 8 | b[:, 2] << 16 | b[:, 3] << 24        # little-endian on any machine
    u = (ints.double() + 0.5) / 2.0 ** 32                                # in (0, 1)
    u1, u2 = u[0::2], u[1::2]
    r = torch.sqrt(-2.0 * torch.log(u1))
    normals = torch.stack([r * torch.cos(2 * math.pi * u2), r * torch.sin(2 * math.pi * u2)], dim=1).reshape(-1)[:dim]
    return normals / normals.pow(2).mean().sqrt()


def _positions(rows: int, dim: int) -> torch.Tensor:
    """[rows, dim] sinusoidal position codes of unit RMS."""
    pos = torch.arange(rows, dtype=torch.float64)[:, None]
    freq = torch.exp(-math.log(10_000.0) * torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    code = torch.zeros(rows, dim + dim % 2, dtype=torch.float64)
    code[:, 0::2] = torch.sin(pos * freq)
    code[:, 1::2] = torch.cos(pos * freq)
    return code[:, :dim] * math.sqrt(2.0)


class HashedCaptionEncoder:
    """text -> caption features [rows, dim] float32, one row per lowercase word (at most max_rows).

    Row i = hashed vector of word i (unit RMS) + position_scale * position code i (unit RMS)."""

    def __init__(self, dim: int, max_rows: int = 512, position_scale: float = 0.1):
        if dim < 1 or max_rows < 0:
            raise ValueError(f"caption encoder needs dim >= 1 and max_rows >= 0, got {dim} and {max_rows}")
        self.dim, self.max_rows, self.position_scale = dim, max_rows, position_scale

    @staticmethod
    def words(text: str) -> list[str]:
        return _WORD.findall(text.lower())

    def encode(self, text: str) -> torch.Tensor:
        words = self.words(text)[: self.max_rows]
        if not words:
            return torch.zeros(0, self.dim)
        rows = torch.stack([_word_vector(w, self.dim) for w in words])
        rows = rows + self.position_scale * _positions(len(words), self.dim)
        return rows.float()

    __call__ = encode

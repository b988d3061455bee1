"""A PNG contact sheet of synthetic clips (the command line: python -m uniavgen_core.cli.preview)."""
from __future__ import annotations

import struct
import zlib
from pathlib import Path

import torch


def write_png(path: str | Path, image: torch.Tensor) -> None:
    """Write [H, W, 3] float in [0, 1] as an 8-bit RGB PNG."""
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    height, width, _ = pixels.shape
    rows = b"".join(b"\0" + pixels[i].tobytes() for i in range(height))    # filter type 0 on every row

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    Path(path).write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(rows, 6)) + chunk(b"IEND", b""))


def contact_sheet(seed: int = 0, clips: int = 6, columns: int = 8, frames: int = 49, size: int = 128) -> torch.Tensor:
    """[clips * size, columns * size, 3]: evenly spaced frames of clips seed, seed + 1, ..., one clip per row."""
    from .clips import make_clip
    rows = []
    for i in range(clips):
        video = make_clip(seed + i, frames, size).frames
        picks = torch.linspace(0, frames - 1, columns).round().long()
        rows.append(torch.cat(list(video[picks]), dim=1))
    return torch.cat(rows, dim=0)

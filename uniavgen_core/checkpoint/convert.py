"""Turn the official folder (or any loadable checkpoint) into ONE self-contained .safetensors:
bf16, or fp8 e4m3fn with a per-tensor scale for the large transformer matrices, with the model
configuration and the speech vocabulary in the file's metadata (the command line is
`python -m uniavgen_core.cli.convert`).

The file is written tensor by tensor (never the whole model in memory) and never over an
existing file.
"""
from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
from pathlib import Path

import torch

from ..model.fp8 import FP8, is_quantised, quantise, scale_key
from .loading import TensorReader, embedded_vocab, inspect_checkpoint

FORMATS = ("bf16", "fp8")
_DTYPE_NAMES = {torch.bfloat16: "BF16", FP8: "F8_E4M3", torch.float32: "F32"}


class ConversionError(ValueError):
    """A conversion that cannot be done, with what to do about it."""


def _plan(shapes: dict, fmt: str) -> list[tuple[str, torch.dtype, tuple]]:
    """(key, dtype, shape) in file order; a quantised weight is followed by its scale."""
    out = []
    for key in sorted(shapes):
        if fmt == "fp8" and is_quantised(key):
            out += [(key, FP8, shapes[key]), (scale_key(key), torch.float32, ())]
        else:
            out.append((key, torch.bfloat16, shapes[key]))
    return out


def _vocabulary(src: Path, vocab: str | os.PathLike | None) -> str | None:
    """The vocabulary to embed: the given file (which must exist), else the one embedded in the source,
    else vocab.txt next to the source (None when there is none)."""
    if vocab is not None:
        vocab = Path(vocab)
        if not vocab.is_file():
            raise ConversionError(f"the vocabulary {vocab} does not exist; give the release's vocab.txt or leave "
                                  f"--vocab out")
    else:
        embedded = embedded_vocab(src)
        if embedded is not None:
            return embedded
        vocab = (src if src.is_dir() else src.parent) / "vocab.txt"
        if not vocab.is_file():
            return None
    try:
        return vocab.read_text(encoding="utf-8").replace("\r\n", "\n")
    except (OSError, UnicodeDecodeError) as err:
        raise ConversionError(f"cannot read the vocabulary {vocab}: {err}") from None


def _publish(tmp: Path, dst: Path) -> None:
    """Give the finished file its name without ever replacing a file that is there: a hard link fails if
    the name was taken meanwhile; where links are not supported, the name is claimed exclusively first."""
    try:
        os.link(tmp, dst)
    except FileExistsError:
        raise FileExistsError(f"{dst} was created by something else during the conversion; it was left alone. "
                              f"Convert again to another name.") from None
    except OSError:                                     # no hard links on this file system
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        os.replace(tmp, dst)


def convert(src: str | os.PathLike, dst: str | os.PathLike, fmt: str = "bf16", vocab: str | os.PathLike | None = None):
    """Write the checkpoint at `src` as one .safetensors at `dst`, checking it on the way: the keys and shapes
    against the model, every tensor finite and floating point (see loading.inspect_checkpoint). fp8 sources
    are dequantised first, so fp8 -> fp8 and fp8 -> bf16 work. Writes to a uniquely named temporary file
    in the destination folder and publishes it without replacing anything."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    dst = Path(dst)
    if dst.suffix != ".safetensors":
        raise ValueError(f"{dst.name}: the output must be a .safetensors file")
    if dst.is_symlink() and not dst.exists():
        raise FileExistsError(f"{dst} is a dangling symbolic link (to {os.readlink(dst)}); the pack will not write "
                              f"through it: remove the link or choose another name")
    if dst.exists() or dst.is_symlink():
        raise FileExistsError(f"{dst} already exists; choose another name (nothing is overwritten)")
    if not dst.parent.is_dir():
        raise ConversionError(f"{dst.parent} is not a folder" if dst.parent.exists() else
                              f"the folder {dst.parent} does not exist")
    ckpt = inspect_checkpoint(src)
    metadata = {"uniavgen_config": json.dumps(ckpt.config.to_dict()), "uniavgen_format": fmt}
    vocab_text = _vocabulary(Path(src), vocab)
    if vocab_text is not None:
        metadata["uniavgen_vocab"] = vocab_text
    plan = _plan(ckpt.weights, fmt)
    header, offset = {"__metadata__": metadata}, 0
    for key, dtype, shape in plan:
        size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        header[key] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    free = shutil.disk_usage(dst.parent).free
    if free < offset + len(raw) + 8:
        raise ConversionError(f"{dst.parent} has {free / 2 ** 30:.1f} GiB free, the file needs "
                              f"{(offset + len(raw)) / 2 ** 30:.1f} GiB; free some space or write elsewhere")
    fd, name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.stem}.", suffix=".converting")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as out, TensorReader(ckpt, dequantise_to=torch.float32) as reader:
            out.write(struct.pack("<Q", len(raw)) + raw)
            scale = None
            for key, dtype, _ in plan:
                if dtype == torch.float32:                  # the scale of the weight just written
                    tensor = scale
                else:
                    tensor, scale = quantise(reader.get(key)) if dtype == FP8 else (reader.get(key).to(dtype), None)
                out.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        _publish(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst

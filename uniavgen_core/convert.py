"""Turn the official folder (or any loadable checkpoint) into ONE self-contained .safetensors:
bf16, or fp8 e4m3fn with a per-tensor scale for the large transformer matrices, with the model
configuration and the speech vocabulary in the file's metadata.

    python -m uniavgen_core.convert SRC OUT.safetensors [--format bf16|fp8] [--vocab vocab.txt]

The file is written tensor by tensor (never the whole model in memory) and never over an
existing file.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import struct
import sys
from pathlib import Path

import torch
from safetensors import safe_open

from .config import UniAVGenConfig
from .fp8 import FP8, is_quantised, quantise, scale_key
from .loading import CheckpointError, _strip_prefix, checkpoint_files, embedded_vocab, read_shapes

FORMATS = ("bf16", "fp8")
_DTYPE_NAMES = {torch.bfloat16: "BF16", FP8: "F8_E4M3", torch.float32: "F32"}


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
    """The vocabulary to embed: the given file, else the one embedded in the source, else
    vocab.txt next to the source (None when there is none)."""
    if vocab is None:
        embedded = embedded_vocab(src)
        if embedded is not None:
            return embedded
        vocab = (src if src.is_dir() else src.parent) / "vocab.txt"
    vocab = Path(vocab)
    return vocab.read_text(encoding="utf-8").replace("\r\n", "\n") if vocab.is_file() else None


def convert(src: str | os.PathLike, dst: str | os.PathLike, fmt: str = "bf16", vocab: str | os.PathLike | None = None):
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    dst = Path(dst)
    if dst.exists():
        raise FileExistsError(f"{dst} already exists; choose another name (nothing is overwritten)")
    if dst.suffix != ".safetensors":
        raise ValueError(f"{dst.name}: the output must be a .safetensors file")
    files, config_json = checkpoint_files(src)
    raw_shapes = read_shapes(files)
    prefix = _strip_prefix(list(raw_shapes))
    shapes = {k[len(prefix):]: v for k, v in raw_shapes.items()}
    config = UniAVGenConfig.from_shapes(shapes, hints=config_json)
    metadata = {"uniavgen_config": json.dumps(config.to_dict()), "uniavgen_format": fmt}
    vocab_text = _vocabulary(Path(src), vocab)
    if vocab_text is not None:
        metadata["uniavgen_vocab"] = vocab_text
    plan = _plan(shapes, fmt)
    header, offset = {"__metadata__": metadata}, 0
    for key, dtype, shape in plan:
        size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
        header[key] = {"dtype": _DTYPE_NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    tmp = dst.with_name(dst.name + ".partial")
    try:
        with contextlib.ExitStack() as stack, open(tmp, "wb") as out:
            handles = {}                                    # stripped key -> (open file, key in it)
            for f in files:
                handle = stack.enter_context(safe_open(f, framework="pt"))
                handles.update({k[len(prefix):]: (handle, k) for k in handle.keys()})
            out.write(struct.pack("<Q", len(raw)) + raw)
            scale = None
            for key, dtype, _ in plan:
                if dtype == torch.float32:                  # the scale of the weight just written
                    tensor = scale
                else:
                    handle, name = handles[key]
                    tensor = handle.get_tensor(name)
                    tensor, scale = quantise(tensor) if dtype == FP8 else (tensor.to(dtype), None)
                out.write(tensor.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dst


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="official folder or .safetensors")
    parser.add_argument("dst", help="output .safetensors (must not exist)")
    parser.add_argument("--format", choices=FORMATS, default="bf16")
    parser.add_argument("--vocab", help="vocab.txt to embed (default: the source's embedded one, else vocab.txt "
                                        "next to the source)")
    args = parser.parse_args(argv)
    try:
        out = convert(args.src, args.dst, args.format, args.vocab)
    except (CheckpointError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 2 ** 30:.2f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

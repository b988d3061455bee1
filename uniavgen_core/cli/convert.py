"""Convert a UniAVGen checkpoint to one self-contained .safetensors (bf16 or scaled fp8).

    python -m uniavgen_core.cli.convert SRC OUT.safetensors [--format bf16|fp8] [--vocab vocab.txt]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..checkpoint.convert import FORMATS, convert
from ..checkpoint.loading import CheckpointError
from .common import input_path, output_file


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.convert", description=__doc__.splitlines()[0])
    parser.add_argument("src", help="official folder or .safetensors")
    parser.add_argument("dst", help="output .safetensors (must not exist)")
    parser.add_argument("--format", choices=FORMATS, default="bf16")
    parser.add_argument("--vocab", help="vocab.txt to embed (default: the source's embedded one, else vocab.txt "
                                        "next to the source)")
    args = parser.parse_args(argv)
    try:
        _check(args.src, args.dst, args.vocab)
        out = convert(args.src, args.dst, args.format, args.vocab)
    except (CheckpointError, FileExistsError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:
        doing = "read" if err.filename and Path(err.filename).parent != Path(args.dst).parent else "write"
        where = args.dst if doing == "write" else err.filename
        print(f"error: cannot {doing} {where}: {err.strerror or err}; "
              + ("choose a folder you can write to with enough free space" if doing == "write" else
                 "check that the file is there and readable"), file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 2 ** 30:.2f} GiB)")
    return 0


def _check(src: str, dst: str, vocab: str | None) -> None:
    """The source there and readable, the vocabulary file too, and the destination not a folder nor a dangling
    link, in a folder that can be written: checked before the conversion reads any tensor (convert() refuses
    a destination that exists)."""
    input_path(src, "the source", folder=None)
    if vocab is not None:
        input_path(vocab, "the vocabulary (--vocab)")
    output_file(dst, "the output", make_folder=False)


if __name__ == "__main__":
    sys.exit(main())

"""Convert a UniAVGen checkpoint to one self-contained .safetensors (bf16 or scaled fp8).

    python -m uniavgen_core.convert SRC OUT.safetensors [--format bf16|fp8] [--vocab vocab.txt]
"""
from __future__ import annotations

import argparse
import sys

from .checkpoint.convert import FORMATS, convert
from .checkpoint.loading import CheckpointError


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
    except OSError as err:
        print(f"error: cannot write {args.dst}: {err.strerror or err}; choose a folder you can write to with "
              f"enough free space", file=sys.stderr)
        return 2
    print(f"wrote {out} ({out.stat().st_size / 2 ** 30:.2f} GiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

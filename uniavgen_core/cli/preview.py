"""A PNG contact sheet of synthetic clips: `python -m uniavgen_core.cli.preview OUT.png [--seed S]`."""
from __future__ import annotations

import argparse
import sys

from ..synthetic.preview import contact_sheet, write_png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("out", help="PNG file to write")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first clip")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--columns", type=int, default=8)
    args = parser.parse_args(argv)
    write_png(args.out, contact_sheet(args.seed, args.clips, args.columns))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

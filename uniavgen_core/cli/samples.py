"""The example inputs the shipped workflows load, made by the synthetic generator (no third-party
faces or voices): a face picture, a reference voice, driving speech and a talking clip.

    python -m uniavgen_core.cli.samples [OUT_DIR]      # default: example_inputs/

The pack copies them into ComfyUI's input folder when they are missing there (nodes/examples.py).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..synthetic.samples import make
from .common import PACK


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.samples", description=__doc__.splitlines()[0])
    parser.add_argument("out", nargs="?", type=Path, default=PACK / "example_inputs")
    args = parser.parse_args(argv)
    for path in make(args.out):
        print(f"{path} ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

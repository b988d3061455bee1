"""The training curve of a checkpoint as a PNG.

    python -m uniavgen_core.cli.report CHECKPOINT OUT.png
"""
from __future__ import annotations

import argparse
import sys

from ..training.report import history, plot


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.report", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("out")
    args = parser.parse_args(argv)
    print(plot(history(args.checkpoint), args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())

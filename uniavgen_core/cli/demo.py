"""The demo: the shipped small model generates three clips a person can watch, on the CPU.

    python -m uniavgen_core.cli.demo [--out build/demo] [--text "..."] [--steps N]

avg.mp4, a2v.mp4, v2a.mp4 and contact_sheet.png in --out (uniavgen_core/demo.py says what each shows).
Needs the demo extras (av, matplotlib, espeakng-loader); `make demo` installs them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import DEFAULT_TEXT, run
from ..sampling.params import MAX_STEPS
from .common import USER_ERRORS, explain, output_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="build/demo")
    parser.add_argument("--text", default=DEFAULT_TEXT, help="the transcript for the AVG and A2V clips")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    args = parser.parse_args(argv)
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        parser.error(f"--steps must be 1 to {MAX_STEPS}, got {args.steps}")
    try:
        # the output folder, made and proven writable before any generation
        output_folder(args.out, "--out", " (the demo writes avg.mp4, a2v.mp4, v2a.mp4 and contact_sheet.png into it)")
        result = run(Path(args.out), args.text, args.steps)
    except USER_ERRORS as err:          # DemoError and the other ValueErrors, a file that cannot be written
        print(f"make demo: {explain(err)}", file=sys.stderr)
        return 2
    for m in result["messages"]:
        print(f"note: {m}", file=sys.stderr)
    print(f"wrote {', '.join(result['files'])} in {result['total_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

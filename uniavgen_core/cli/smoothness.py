"""How smooth a small model's guided velocity is in the timestep, and what a second-order solver gains.

    python -m uniavgen_core.cli.smoothness MODEL CODEC [--clips 8] [--steps 12] [--reference-steps 64]
                                           [--no-solvers] [--out results.json]

On held-out validation clips, for every task: the relative change of the guided velocity for a unit step
of t at t = 200, 500 and 800, and the distances of Euler and two-step Adams-Bashforth at --steps steps to
the converged solution (uniavgen_core/training/smoothness.py says how). Prints the tables with bootstrap
95 % intervals; --out writes them as JSON.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..mini.pipeline import MiniPipeline
from ..sampling.params import MAX_STEPS
from ..training.evaluate import held_out
from ..training.smoothness import markdown, measure
from .common import UsageError, guarded, input_path, output_file

MAX_CLIPS = 256


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.smoothness",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("codec")
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--steps", type=int, default=12, help="steps of the solvers compared")
    parser.add_argument("--reference-steps", type=int, default=64,
                        help="Euler steps M of the converged solution 2 E(2M) - E(M)")
    parser.add_argument("--no-solvers", action="store_true", help="measure the roughness only")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


def run(args) -> int:
    input_path(args.model, "the model")
    input_path(args.codec, "the video codec")
    if not 2 <= args.clips <= MAX_CLIPS:
        raise UsageError(f"--clips {args.clips}: must be from 2 to {MAX_CLIPS}")
    if not 2 <= args.steps <= MAX_STEPS or not args.steps < args.reference_steps <= MAX_STEPS // 2:
        raise UsageError(f"--steps {args.steps} and --reference-steps {args.reference_steps}: need 2 <= steps < "
                         f"reference steps <= {MAX_STEPS // 2}")
    if args.out:
        output_file(args.out, "--out")
    results = measure(MiniPipeline(args.model, args.codec), held_out(args.clips, "validation"),
                      solvers=not args.no_solvers, steps=args.steps, reference_steps=args.reference_steps,
                      log=lambda m: print(m, file=sys.stderr))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    print(markdown(results, args.steps))
    return 0


if __name__ == "__main__":
    sys.exit(main())

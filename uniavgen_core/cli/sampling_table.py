"""Quality against model evaluations of the sampling settings on a small model: solvers, steps, schedules,
the step cache and the named presets.

    python -m uniavgen_core.cli.sampling_table MODEL CODEC [--clips 16] [--reference-steps 128]
                                               [--only NAME ...] [--out results.json] [--plot plot.png]

On held-out validation clips, for AVG, A2V and V2A: every setting's distance to the converged solution per
generated modality, its lip sync, its model evaluations per clip and its wall time
(uniavgen_core/training/sampling_table.py says how). Prints the tables with bootstrap 95 % intervals.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..mini.pipeline import MiniPipeline
from ..sampling.params import MAX_STEPS
from ..training.evaluate import held_out
from ..training.sampling_table import candidates, markdown, measure, plot
from .common import UsageError, guarded, input_path, output_file

MAX_CLIPS = 256


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.sampling_table",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("codec")
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--reference-steps", type=int, default=128,
                        help="Euler steps M of the converged solution 2 E(2M) - E(M)")
    parser.add_argument("--only", nargs="+", default=None, help="measure only these settings (names as listed)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    parser.add_argument("--plot", default=None, help="draw distance against evaluations into this PNG")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


def run(args) -> int:
    input_path(args.model, "the model")
    input_path(args.codec, "the video codec")
    if not 2 <= args.clips <= MAX_CLIPS:
        raise UsageError(f"--clips {args.clips}: must be from 2 to {MAX_CLIPS}")
    if not 2 <= args.reference_steps <= MAX_STEPS // 2:
        raise UsageError(f"--reference-steps {args.reference_steps}: must be from 2 to {MAX_STEPS // 2}")
    settings = candidates()
    if args.only:
        unknown = sorted(set(args.only) - set(settings))
        if unknown:
            raise UsageError(f"--only: unknown settings {unknown}; the settings are: {', '.join(settings)}")
        settings = {name: settings[name] for name in args.only}
    for path, what in ((args.out, "--out"), (args.plot, "--plot")):
        if path:
            output_file(path, what)
    results = measure(MiniPipeline(args.model, args.codec), held_out(args.clips, "validation"), settings,
                      reference_steps=args.reference_steps, log=lambda m: print(m, file=sys.stderr))
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, args.plot)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())

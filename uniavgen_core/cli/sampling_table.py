"""Quality against model evaluations of the sampling settings on a small model: solvers, steps, schedules,
the step cache and the named presets.

    python -m uniavgen_core.cli.sampling_table MODEL CODEC [--clips 16] [--reference-steps 128]
                                               [--only NAME ...] [--out results.json] [--plot plot.png]

On held-out validation clips, for AVG, A2V and V2A: every setting's distance to the converged solution per
generated modality, its lip sync, its model evaluations per clip and its wall time
(uniavgen_core/training/sampling_table.py says how). Prints the tables with bootstrap 95 % intervals.
"""
from __future__ import annotations

import sys

from ..mini.pipeline import MiniPipeline
from ..sampling.params import MAX_STEPS
from ..training.evaluate import held_out
from ..training.sampling_table import candidates, markdown, measure, plot
from .common import UsageError, report, check_small_model_args, guarded, output_file, small_model_parser

def main(argv=None) -> int:
    parser = small_model_parser("sampling_table", __doc__, clips=16, reference_steps=128)
    parser.add_argument("--only", nargs="+", default=None, help="measure only these settings (names as listed)")
    parser.add_argument("--plot", default=None, help="draw distance against evaluations into this PNG")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


def run(args) -> int:
    check_small_model_args(args)
    if not 2 <= args.reference_steps <= MAX_STEPS // 2:
        raise UsageError(f"--reference-steps {args.reference_steps}: must be from 2 to {MAX_STEPS // 2}")
    settings = candidates()
    if args.only:
        unknown = sorted(set(args.only) - set(settings))
        if unknown:
            raise UsageError(f"--only: unknown settings {unknown}; the settings are: {', '.join(settings)}")
        settings = {name: settings[name] for name in args.only}
    if args.plot:
        output_file(args.plot, "--plot")
    results = measure(MiniPipeline(args.model, args.codec), held_out(args.clips, "validation"), settings,
                      reference_steps=args.reference_steps, log=lambda m: print(m, file=sys.stderr))
    if args.plot:
        plot(results, args.plot)
    return report(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())

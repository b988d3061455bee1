"""How smooth a small model's guided velocity is in the timestep, and what a second-order solver gains.

    python -m uniavgen_core.cli.smoothness MODEL CODEC [--clips 8] [--steps 12] [--reference-steps 64]
                                           [--no-solvers] [--cfg VIDEO AUDIO] [--schedule NAME] [--shift S]
                                           [--macfg-fraction F] [--out results.json]

On held-out validation clips, for every task: the relative change of the guided velocity for a unit step
of t at t = 200, 500 and 800, and the distances of Euler and two-step Adams-Bashforth at --steps steps to
the converged solution (uniavgen_core/training/smoothness.py says how), both on the grid --schedule at --shift
(default: the model's sampling). Prints the tables with bootstrap
95 % intervals; --out writes them as JSON.
"""
from __future__ import annotations

import dataclasses
import sys

from ..mini.pipeline import MINI_SAMPLING, MiniPipeline
from ..sampling.params import MAX_STEPS
from ..sampling.schedule import SCHEDULES
from ..training.evaluate import held_out
from ..training.smoothness import markdown, measure
from .common import add_cfg_argument, report, with_cfg, UsageError, check_small_model_args, guarded, small_model_parser

def main(argv=None) -> int:
    parser = small_model_parser("smoothness", __doc__, clips=8, reference_steps=64)
    parser.add_argument("--steps", type=int, default=12, help="steps of the solvers compared")
    parser.add_argument("--no-solvers", action="store_true", help="measure the roughness only")
    add_cfg_argument(parser)
    parser.add_argument("--schedule", choices=sorted(SCHEDULES), default=MINI_SAMPLING.schedule,
                        help="the grid of the solvers compared (the converged solution does not depend on it)")
    parser.add_argument("--shift", type=float, default=MINI_SAMPLING.shift,
                        help="the grid's shift; it also moves MA-CFG's switch, so the converged solution and the "
                             "roughness change with it")
    parser.add_argument("--macfg-fraction", type=float, default=MINI_SAMPLING.macfg_fraction,
                        help="the share of the steps whose unconditional pass has the interactions off (MA-CFG); "
                             "0 or 1: one guided velocity throughout, no switch")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


def run(args) -> int:
    check_small_model_args(args)
    if not 2 <= args.steps <= MAX_STEPS or not args.steps < args.reference_steps <= MAX_STEPS // 2:
        raise UsageError(f"--steps {args.steps} and --reference-steps {args.reference_steps}: need 2 <= steps < "
                         f"reference steps <= {MAX_STEPS // 2}")
    params = with_cfg(MINI_SAMPLING, args.cfg)
    if not 0 <= args.macfg_fraction <= 1:
        raise UsageError(f"--macfg-fraction {args.macfg_fraction:g}: give a share from 0 to 1")
    try:
        params = dataclasses.replace(params, schedule=args.schedule, shift=args.shift,
                                     macfg_fraction=args.macfg_fraction)
    except ValueError as err:
        raise UsageError(f"--shift {args.shift:g}: {err}") from None
    results = measure(MiniPipeline(args.model, args.codec), held_out(args.clips, "validation"), params,
                      solvers=not args.no_solvers, steps=args.steps, reference_steps=args.reference_steps,
                      log=lambda m: print(m, file=sys.stderr))
    grid = "" if args.no_solvers else f"; grid: {params.schedule}"
    header = (f"guidance: video {params.video_cfg:g}, audio {params.audio_cfg:g}{grid}, shift {params.shift:g}, "
              f"MA-CFG fraction {params.macfg_fraction:g}\n\n")
    return report(results, args.out, lambda r: header + markdown(r, args.steps))


if __name__ == "__main__":
    sys.exit(main())

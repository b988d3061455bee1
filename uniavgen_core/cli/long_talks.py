"""Long talks on a small model, measured at their joins: continuation (at each overlap), the last-picture chain
and one long generation, on held-out faces and voices.

    python -m uniavgen_core.cli.long_talks MODEL CODEC [--clips 8] [--seconds 24] [--overlaps 4,1,2,6]
                                           [--out results.json]

uniavgen_core/training/long_talks.py says how each is made and training/seams.py what is measured. Prints the
tables with bootstrap 95 % intervals; --out writes every clip's figures as JSON.
"""
from __future__ import annotations

import sys

from .. import units
from ..mini.pipeline import MiniPipeline
from ..training.evaluate import held_out
from ..training.long_talks import markdown, measure
from .common import report, UsageError, check_small_model_args, guarded, small_model_parser


def main(argv=None) -> int:
    parser = small_model_parser("long_talks", __doc__, clips=8, reference_steps=64)
    parser.add_argument("--seconds", type=float, default=24.0, help="each talk's length")
    parser.add_argument("--overlaps", default="4,1,2,6",
                        help="the continuation's overlaps in latent frames, comma-separated (the first is the one "
                             "the chain and the single generation are held against)")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


def run(args) -> int:
    check_small_model_args(args)
    if not 7 <= args.seconds <= units.MAX_SECONDS:
        raise UsageError(f"--seconds {args.seconds:g}: from 7 (more than two segments) to {units.MAX_SECONDS} (the "
                         f"longest single generation it is compared with)")
    try:
        overlaps = [int(k) for k in args.overlaps.split(",")]
    except ValueError:
        raise UsageError(f"--overlaps {args.overlaps!r}: whole numbers of latent frames, e.g. 4,1,2,6") from None
    pipe = MiniPipeline(args.model, args.codec)
    segment = units.latent_frames(pipe.trained_frames)
    if not all(1 <= k < segment for k in overlaps):
        raise UsageError(f"--overlaps {args.overlaps}: each from 1 to {segment - 1} for this model's {segment}-frame "
                         f"segments")
    results = measure(pipe, held_out(args.clips, "validation"), args.seconds, overlaps,
                      log=lambda m: print(m, file=sys.stderr))
    return report(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())

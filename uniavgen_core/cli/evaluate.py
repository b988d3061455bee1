"""Lip-sync evaluation of a small model on held-out synthetic clips.

    python -m uniavgen_core.cli.evaluate MODEL CODEC [--clips 32] [--out results.json]

Generates AVG, A2V and V2A clips from held-out synthetic clips and scores their lip sync against the
data's ceiling and a shuffled-pair null, with ablations (uniavgen_core/training/evaluate.py says how).
Prints the tables; --out writes every number as JSON.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys

import torch

from ..mini.pipeline import MINI_SAMPLING
from ..sampling import SamplingParams
from ..sampling.params import MAX_STEPS
from ..training import budget, lipsync
from ..training.data import DataConfig
from ..training.evaluate import evaluate, markdown
from .common import UsageError, add_cfg_argument, guarded, input_path, output_file, report, with_cfg


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.evaluate",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("codec")
    parser.add_argument("--clips", type=int, default=32)
    parser.add_argument("--no-ablations", action="store_true")
    parser.add_argument("--split", choices=["test", "validation"], default="test",
                        help="held-out clips: test (reported numbers) or validation (for tuning settings)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    add_cfg_argument(parser)
    parser.add_argument("--detrend-frames", type=int, default=lipsync.DETREND_FRAMES,
                        help="high-pass window of the sync metric in frames (0: plain correlation)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


MAX_CLIPS = 10_000            # held-out clips: far more than the intervals need
CLIP_COPIES = 4               # the rendered pictures, through the codec, generated, and the signals' work


def check_args(args) -> SamplingParams:
    """Every argument checked before the model is loaded or a clip rendered; the sampling parameters."""
    input_path(args.model, "the model")
    input_path(args.codec, "the video codec")
    frames = DataConfig().frames
    if not 2 <= args.clips <= MAX_CLIPS:
        raise UsageError(f"--clips {args.clips}: must be from 2 to {MAX_CLIPS} (the shuffled null pairs clips)")
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        raise UsageError(f"--steps {args.steps}: must be from 1 to {MAX_STEPS}")
    params = with_cfg(MINI_SAMPLING, args.cfg)
    if not 0 <= args.detrend_frames <= frames:
        raise UsageError(f"--detrend-frames {args.detrend_frames}: must be from 0 (plain correlation) to {frames} "
                         f"(the clips' length)")
    if args.out:
        output_file(args.out, "--out")
    need = args.clips * CLIP_COPIES * frames * DataConfig().size ** 2 * 3 * 4
    free = budget.available_memory(torch.device("cpu"))
    if free is not None and need > budget.HEADROOM * free:
        raise UsageError(f"--clips {args.clips} needs about {budget.gib(need)} of memory, {budget.gib(free)} is "
                         f"available: lower --clips")
    if args.steps is not None:
        params = dataclasses.replace(params, steps=args.steps)
    return params


def run(args) -> int:
    params = check_args(args)
    results = evaluate(args.model, args.codec, args.clips, params, ablations=not args.no_ablations,
                       split=args.split, detrend_frames=args.detrend_frames, log=lambda m: print(m, file=sys.stderr))
    return report(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())

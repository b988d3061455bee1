"""Quality against model evaluations of the sampling settings on a small model: solvers, steps, schedules,
the step cache and the named presets.

    python -m uniavgen_core.cli.sampling_table MODEL CODEC [--clips 16] [--reference-steps 128]
                                               [--only NAME ...] [--out results.json [--resume]] [--plot plot.png]

On held-out validation clips, for AVG, A2V and V2A: every setting's distance to the converged solution per
generated modality, its lip sync, its model evaluations per clip and its wall time
(uniavgen_core/training/sampling_table.py says how). Prints the tables with bootstrap 95 % intervals.
With --out the results are written after every setting; --resume continues an interrupted run from them.
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from ..mini.pipeline import MiniPipeline
from ..sampling.params import MAX_STEPS
from ..training.evaluate import held_out
from ..training.sampling_table import candidates, markdown, measure, measured_with, plot, run_key
from .common import (UsageError, check_small_model_args, guarded, output_file, report, small_model_parser,
                     write_atomically)

def main(argv=None) -> int:
    parser = small_model_parser("sampling_table", __doc__, clips=16, reference_steps=128)
    parser.add_argument("--only", nargs="+", default=None, help="measure only these settings (names as listed)")
    parser.add_argument("--plot", default=None, help="draw distance against evaluations into this PNG")
    parser.add_argument("--resume", action="store_true",
                        help="keep the settings already measured in --out (same files, clips and reference)")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


def file_digest(path: str) -> str:
    """The first 16 hex digits of the file's SHA-256: which model and codec a result was measured on."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def earlier_results(path: Path) -> dict | None:
    """The results an interrupted run left at `path` (None when there are none yet)."""
    if not path.exists():
        return None
    try:
        results = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UsageError(f"--resume: {path} is not the JSON this tool writes ({e}); give another --out") from None
    if not isinstance(results, dict) or not all(isinstance(v, dict) for v in results.values()):
        raise UsageError(f"--resume: {path} is not the JSON this tool writes; give another --out")
    return results


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
    previous = None
    if args.resume:
        if not args.out:
            raise UsageError("--resume continues the run whose results are in --out: give --out FILE")
        previous = earlier_results(Path(args.out))
    tag = " ".join(file_digest(f) for f in (args.model, args.codec))
    how = run_key(args.reference_steps, args.clips, tag)
    for setup, entry in (previous or {}).items():
        if not measured_with(entry, how):
            raise UsageError(f"--resume: {args.out} holds {setup} measured with other files, clips or reference "
                             f"steps ({ {k: entry.get(k) for k in how} }, now {how}); give another --out")
    save = (lambda results: write_atomically(Path(args.out), json.dumps(results, indent=1))) if args.out else None
    results = measure(MiniPipeline(args.model, args.codec), held_out(args.clips, "validation"), settings,
                      reference_steps=args.reference_steps, log=lambda m: print(m, file=sys.stderr), tag=tag,
                      previous=previous, save=save)
    if args.plot:
        plot(results, args.plot)
    return report(results, args.out, markdown)


if __name__ == "__main__":
    sys.exit(main())

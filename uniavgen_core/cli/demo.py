"""The demo on the shipped small model, on the CPU.

    python -m uniavgen_core.demo [--out build/demo] [--text "..."] [--steps N]
        three clips (avg.mp4, a2v.mp4, v2a.mp4) and contact_sheet.png (uniavgen_core/demo/__init__.py)
    python -m uniavgen_core.demo --task a2v --audio FILE [--out DIR] [--overlap S]
        any recording (any rate, up to 10 minutes) drives the face: long_a2v.mp4 and its contact sheet
    python -m uniavgen_core.demo --task avg --text "..." [--seconds N] [--out DIR]
        a transcript of any length spoken and shown: long_avg.mp4 and its contact sheet
    python -m uniavgen_core.demo --task long [--out build/demo]
        both long talks from the demo's own recording and transcript (make demo-long; demo/long.py)

Needs the demo extras (av, matplotlib, espeakng-loader); `make demo` installs them.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..demo import DEFAULT_TEXT, run
from ..frontend.long import LONG_MAX_SECONDS
from ..sampling.params import MAX_STEPS
from .common import USER_ERRORS, explain, output_folder

TASKS = ("clips", "a2v", "avg", "long")
WRITES = {"clips": "avg.mp4, a2v.mp4, v2a.mp4 and contact_sheet.png",
          "a2v": "long_a2v.mp4 and long_a2v_contact_sheet.png", "avg": "long_avg.mp4 and long_avg_contact_sheet.png",
          "long": "long_a2v.mp4, long_avg.mp4 and long_contact_sheet.png"}


def check(parser: argparse.ArgumentParser, args) -> None:
    """Arguments that do not go together, refused before the model is read."""
    if args.steps is not None and not 1 <= args.steps <= MAX_STEPS:
        parser.error(f"--steps must be 1 to {MAX_STEPS}, got {args.steps}")
    if (args.audio is not None) != (args.task == "a2v"):
        parser.error("--audio FILE goes with --task a2v, which needs it (the recording that drives the face)")
    if args.seconds is not None and args.task != "avg":
        parser.error("--seconds goes with --task avg (A2V lasts as long as its recording)")
    if args.seconds is not None and not 0 < args.seconds <= LONG_MAX_SECONDS:
        parser.error(f"--seconds must be more than 0 and at most {LONG_MAX_SECONDS}, got {args.seconds:g}")
    if not 0.25 <= args.overlap <= 2.0:
        parser.error(f"--overlap must be 0.25 to 2 seconds of the previous segment, got {args.overlap:g}")
    if args.audio is not None and Path(args.audio).resolve().parent == Path(args.out).resolve() \
            and Path(args.audio).name.startswith("long_a2v"):
        parser.error(f"--audio {args.audio} would be overwritten by the output: move it or choose another --out")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.demo", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n".join(__doc__.splitlines()[2:]))
    parser.add_argument("--task", choices=TASKS, default="clips",
                        help="clips: the three short clips (default); a2v, avg: a long talk; long: both long demos")
    parser.add_argument("--out", default="build/demo")
    parser.add_argument("--text", default=None, help="the transcript (clips: for the AVG and A2V clips; avg: the talk)")
    parser.add_argument("--audio", default=None, help="a2v: the recording that drives the face (wav, mp3, flac, ...)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="avg: the talk's length (default: as long as the transcript takes to say)")
    parser.add_argument("--overlap", type=float, default=1.0,
                        help="long talks: seconds each segment takes from the one before (default 1)")
    parser.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    args = parser.parse_args(argv)
    check(parser, args)
    if args.task == "avg" and args.text is None:
        parser.error('--task avg needs --text "..." (what the face says)')
    try:
        # the output folder, made and proven writable before any generation
        output_folder(args.out, "--out", f" (the demo writes {WRITES[args.task]} into it)")
        if args.task == "clips":
            result = run(Path(args.out), DEFAULT_TEXT if args.text is None else args.text, args.steps)
        else:
            from ..demo.long import run_long
            result = run_long(Path(args.out), args.task, audio=args.audio, text=args.text, seconds=args.seconds,
                              overlap=args.overlap, steps=args.steps)
    except USER_ERRORS as err:          # DemoError and the other ValueErrors, a file that cannot be written
        print(f"{parser.prog}: {explain(err)}", file=sys.stderr)
        return 2
    for m in result["messages"]:
        print(f"note: {m}", file=sys.stderr)
    print(f"wrote {', '.join(result['files'])} in {result['total_seconds']:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())

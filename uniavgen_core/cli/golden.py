"""Golden-vector runner (its contract: docs/DEVELOPMENT.md, "Golden vectors").

    python -m uniavgen_core.cli.golden GOLDEN_DIR --out OUT_DIR [--vocab VOCAB] [--ranks N --parallel MODE]
    python -m uniavgen_core.cli.golden --official-keys

Reads only the inputs of each case (never the expected outputs) and writes what this
implementation computes, under the same names. Comparing is the tests' job.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open

from ..checkpoint.loading import official_key_shapes
from ..golden import MKL_COMPATIBLE, default_vocab, run_frontend_cases, run_model_cases, run_tokenizer_cases
from ..parallel import MODES, ParallelConfig
from .common import PACK, UsageError, guarded, input_path, output_folder


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("golden_dir", nargs="?", type=Path, help="folder with golden.json etc.")
    parser.add_argument("--out", type=Path, help="folder to write results into")
    parser.add_argument("--vocab", type=Path, help="speech vocabulary (vocab.txt) for tokenizer cases")
    parser.add_argument("--ranks", type=int, default=1,
                        help="sample each model case on this many gloo CPU processes (with --parallel)")
    parser.add_argument("--parallel", choices=MODES,
                        help="how the ranks share a sampling run: cfg (one guidance pass each), ulysses (the video "
                             "tokens split over them) or cfg+ulysses")
    parser.add_argument("--frontend-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--official-keys", action="store_true",
                        help="print {key: shape} of the official configuration as JSON and exit")
    args = parser.parse_args(argv)
    if args.official_keys:
        json.dump(official_key_shapes(), sys.stdout)
        print()
        return 0
    if args.golden_dir is None or args.out is None:
        parser.error("GOLDEN_DIR and --out are required")
    return guarded(lambda: run(args))


CASE_KEYS = ("task", "lat_frames", "n_audio", "seed", "steps", "shift", "video_cfg", "audio_cfg", "macfg_prop",
             "slg_layer")
CASE_FILES = ("golden.json", "frontend.safetensors", "tokenizer.json")


def _cases(path: Path, kind: type):
    """The "cases" of a case file, which must be a JSON object holding them as a `kind`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"{path} cannot be read as JSON: {err}") from None
    cases = raw.get("cases") if isinstance(raw, dict) else None
    if not isinstance(cases, kind):
        raise UsageError(f"{path} holds no \"cases\" {'table' if kind is dict else 'list'}; it is not a case file")
    return cases


def check_inputs(golden_dir: Path, out: Path, vocab: Path | None) -> None:
    """The golden folder, its case files and the output folder checked before any case runs: each case file
    readable and of the expected form, the output folder made and writable."""
    input_path(golden_dir, "GOLDEN_DIR", folder=True)
    if vocab is not None:
        input_path(vocab, "--vocab")
    if not any((golden_dir / name).is_file() for name in CASE_FILES):
        raise UsageError(f"{golden_dir} holds none of {', '.join(CASE_FILES)}: give a golden-vector folder")
    if (golden_dir / "golden.json").is_file():
        bad = [name for name, case in _cases(golden_dir / "golden.json", dict).items()
               if not isinstance(case, dict) or any(k not in case for k in CASE_KEYS)]
        if bad:
            raise UsageError(f"{golden_dir / 'golden.json'}: case(s) {', '.join(bad[:5])} lack some of "
                             f"{', '.join(CASE_KEYS)}")
        input_path(golden_dir / "golden.safetensors", "the case inputs")
    for name in ("golden.safetensors", "frontend.safetensors"):
        if (golden_dir / name).is_file():
            try:
                with safe_open(golden_dir / name, framework="pt") as handle:
                    handle.keys()
            except SafetensorError as err:
                raise UsageError(f"{golden_dir / name} is not a readable safetensors file ({err})") from None
    if (golden_dir / "tokenizer.json").is_file():
        if not all(isinstance(c, dict) and isinstance(c.get("text"), str)
                   for c in _cases(golden_dir / "tokenizer.json", list)):
            raise UsageError(f"{golden_dir / 'tokenizer.json'}: every case must be an object with a \"text\"")
    output_folder(out, "--out")


def frontend_cases(golden_dir: Path, out_dir: Path) -> None:
    """The mel cases, in a child process with MKL's compatible code path when this one lacks it."""
    if any(os.environ.get(k) != v for k, v in MKL_COMPATIBLE.items()):
        env = {**os.environ, **MKL_COMPATIBLE}
        cmd = [sys.executable, "-m", "uniavgen_core.cli.golden", str(golden_dir), "--out", str(out_dir),
               "--frontend-only"]
        subprocess.run(cmd, env=env, check=True, cwd=PACK)
        return
    run_frontend_cases(golden_dir, out_dir)


def parallel_config(ranks: int, mode: str | None) -> ParallelConfig | None:
    """None for one process, else the checked configuration of --ranks and --parallel."""
    if ranks == 1 and mode is None:
        return None
    if mode is None:
        raise UsageError(f"--ranks {ranks} needs --parallel {' | '.join(MODES)} to say how the ranks share a run")
    return ParallelConfig(ranks, mode)


def run(args) -> int:
    parallel_config(args.ranks, args.parallel)         # a wrong layout is refused before any case runs
    vocab = args.vocab or default_vocab(args.golden_dir)
    check_inputs(args.golden_dir, args.out, args.vocab)
    torch.set_grad_enabled(False)
    if args.frontend_only:
        run_frontend_cases(args.golden_dir, args.out)
        return 0
    if (args.golden_dir / "golden.json").is_file():
        run_model_cases(args.golden_dir, args.out, parallel_config(args.ranks, args.parallel))
    if (args.golden_dir / "frontend.safetensors").is_file():
        try:
            frontend_cases(args.golden_dir, args.out)
        except subprocess.CalledProcessError as err:       # the child has said why
            return err.returncode
    if (args.golden_dir / "tokenizer.json").is_file():
        if vocab is None:
            print("tokenizer cases skipped: they need the release's speech vocabulary; pass --vocab PATH/TO/vocab.txt",
                  file=sys.stderr)
        else:
            run_tokenizer_cases(args.golden_dir, args.out, vocab)
    return 0


if __name__ == "__main__":
    sys.exit(main())

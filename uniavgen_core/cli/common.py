"""What the command-line tools share: paths checked before any long work, and a user's mistake ended as
one line `error: ...` with exit status 2 instead of a traceback.

A user's mistake is a ValueError (the pack's messages: a bad setting, a file of the wrong kind), an
OSError (a path that cannot be read or written) or a safetensors error on a file the user gave. Other
exceptions are bugs and keep their traceback.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Callable

from safetensors import SafetensorError

PACK = Path(__file__).resolve().parents[2]          # the pack's folder (example_inputs/, models_builtin/)
USER_ERRORS = (ValueError, OSError, SafetensorError)


class UsageError(ValueError):
    """An argument or path the tool cannot work with, and what to do instead."""


def explain(err: BaseException) -> str:
    """One line for a user's mistake: an OSError as 'PATH: reason', anything else as its message."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return str(err) or type(err).__name__


def guarded(body: Callable[[], int]) -> int:
    """Run a tool's body; a user's mistake prints `error: message` to stderr and gives exit status 2."""
    try:
        return body()
    except USER_ERRORS as err:
        print(f"error: {explain(err)}", file=sys.stderr)
        return 2


def _refuse_dangling(path: Path, what: str) -> None:
    if path.is_symlink() and not path.exists():
        raise UsageError(f"{what} {path} is a dangling symbolic link (to {os.readlink(path)}); the pack will not "
                         f"write through it: remove the link or choose another name")


def output_folder(path: str | os.PathLike, what: str, hint: str = "", make: bool = True) -> Path:
    """A folder a tool will write into, made when missing (with `make`; else it must be there) and proven
    writable (a probe file is written and removed) before any long work. A file of that name, or a folder
    that cannot be made or written, is refused with `what` (e.g. "--out") named."""
    path = Path(path)
    _refuse_dangling(path, what)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{what} {path} is a file: give a folder{hint}")
    if not make and not path.exists():
        raise UsageError(f"{what} {path} does not exist: make it first or give another")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise UsageError(f"cannot write into {what} {path}: {err.strerror or err}; give a folder you can "
                         f"write to") from None
    return path


def output_file(path: str | os.PathLike, what: str, make_folder: bool = True) -> Path:
    """A file a tool will write: not a folder, not a dangling symbolic link, in a folder it can write into
    (made when missing, with `make_folder`)."""
    path = Path(path)
    _refuse_dangling(path, what)
    if path.is_dir():
        raise UsageError(f"{what} {path} is a folder: give a file name")
    output_folder(path.parent, f"the folder of {what}", make=make_folder)
    return path


def input_path(path: str | os.PathLike, what: str, folder: bool | None = False) -> Path:
    """A file (folder=False), a folder (True) or either (None) that a tool reads: there and readable."""
    path = Path(path)
    if not path.exists():
        raise UsageError(f"{what} {path} does not exist")
    if folder is False and not path.is_file():
        raise UsageError(f"{what} {path} is not a file")
    if folder is True and not path.is_dir():
        raise UsageError(f"{what} {path} is not a folder")
    if not os.access(path, os.R_OK | (os.X_OK if path.is_dir() else 0)):
        raise UsageError(f"{what} {path} cannot be read (permission denied)")
    return path


MAX_CLIPS = 256


def small_model_parser(prog: str, doc: str, clips: int, reference_steps: int) -> argparse.ArgumentParser:
    """The arguments of the tools that measure a small model on held-out clips: the model and codec files, the
    number of clips, the Euler steps of the converged solution and a JSON output."""
    parser = argparse.ArgumentParser(prog=f"python -m uniavgen_core.cli.{prog}", description=doc.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("codec")
    parser.add_argument("--clips", type=int, default=clips)
    parser.add_argument("--reference-steps", type=int, default=reference_steps,
                        help="Euler steps M of the converged solution 2 E(2M) - E(M)")
    parser.add_argument("--out", default=None, help="write the results as JSON here")
    return parser


def check_small_model_args(args) -> None:
    """The files readable, the clip count in range and the output writable, before any work."""
    input_path(args.model, "the model")
    input_path(args.codec, "the video codec")
    if not 2 <= args.clips <= MAX_CLIPS:
        raise UsageError(f"--clips {args.clips}: must be from 2 to {MAX_CLIPS}")
    if args.out:
        output_file(args.out, "--out")


def write_atomically(path: Path, text: str) -> None:
    """Write text to a temporary file beside `path`, then give it the name: an interruption never leaves a
    half-written file."""
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(text)
    os.replace(tmp, path)


def report(results: dict, out: str | None, tables) -> int:
    """A measurement's end: the results as JSON at `out` when given, its tables (tables(results)) printed."""
    if out:
        write_atomically(Path(out), json.dumps(results, indent=1))
    print(tables(results))
    return 0


MAX_CFG = 100.0


def add_cfg_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cfg", type=float, nargs=2, default=None, metavar=("VIDEO", "AUDIO"),
                        help="guidance scales (default: the model's)")


def with_cfg(params, cfg):
    """params with the --cfg guidance scales (video, audio) when given, checked."""
    if cfg is None:
        return params
    if not all(math.isfinite(c) and 0 <= c <= MAX_CFG for c in cfg):
        raise UsageError(f"--cfg {' '.join(map(str, cfg))}: the guidance scales must be numbers from 0 to "
                         f"{MAX_CFG:g}")
    return dataclasses.replace(params, video_cfg=cfg[0], audio_cfg=cfg[1])

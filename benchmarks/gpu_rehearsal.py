"""`make gpu-rehearsal`: the GPU-check call rehearsed on the CPU, in a stand-in of the GPU machine.

    python benchmarks/gpu_rehearsal.py [--python PATH/TO/python3.12] [--keep]

1. a fresh Python 3.12 virtual environment (build/gpu-rehearsal/venv) holding only packages the GPU
   machine has (benchmarks/gpu_machine.txt): those the check imports and whatever they pull in, at
   the versions pinned there (torch 2.11.0 from PyPI stands in for the machine's CUDA 13 build);
   anything installed that the machine does not list fails the rehearsal;
2. benchmarks/gpu_run.sh run exactly as on the GPU machine, with build/gpu-bundle (make gpu-bundle):
   the carried wheels installed into a private folder on PYTHONPATH, then benchmarks/gpu_check.py;
3. it passes when the check stops at "no CUDA GPU" (status 2) with no package missing and every CUDA
   test collected without an error, as many as the development environment collects (the script's output:
   build/gpu-rehearsal/gpu_run.log).

Run it whenever the imports of a test module, the benchmark or a `make` target change. The Python is
--python, else $PY312, else python3.12 on PATH, else one under ~/.pyenv/versions. --keep reuses the
environment of the last run instead of building a fresh one.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from gpu_bundle import MACHINE, canonical, read_list, reached_distributions  # noqa: E402
from gpu_check import collect  # noqa: E402

WORK = REPO / "build" / "gpu-rehearsal"
BUNDLE = REPO / "build" / "gpu-bundle"


class RehearsalFailed(Exception):
    pass


def find_python312(given: str | None) -> str:
    candidates = [given, os.environ.get("PY312"), shutil.which("python3.12"),
                  *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.12*/bin/python3.12")), reverse=True)]
    for candidate in filter(None, candidates):
        proc = subprocess.run([candidate, "-c", "import sys; print(sys.version_info[:2] == (3, 12))"],
                              capture_output=True, text=True)
        if proc.stdout.strip() == "True":
            return candidate
    raise RehearsalFailed("no Python 3.12 found: give --python PATH or PY312=PATH (the GPU machine runs 3.12)")


def stand_ins() -> list[str]:
    """The packages of the GPU machine that the check imports."""
    machine = read_list(MACHINE)
    return sorted(d for d in reached_distributions() if d in machine)


def installed(venv: Path) -> list[str]:
    """The distributions in a virtual environment, by canonical name."""
    listed = subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "list", "--format=json"],
                            capture_output=True, text=True, check=True).stdout
    return [canonical(p["name"]) for p in json.loads(listed)]


def build_environment(python: str, venv: Path) -> None:
    """A fresh venv with the stand-ins."""
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    wanted = stand_ins()
    pinned = WORK / "machine-versions.txt"          # what they pull in takes the machine's versions too
    pinned.write_text("".join(f"{d}=={v}\n" for d, v in read_list(MACHINE).items() if v))
    print(f"gpu-rehearsal: installing the stand-ins {' '.join(wanted)}", flush=True)
    proc = subprocess.run([*pip, "install", "-q", "-c", str(pinned), *wanted], capture_output=True, text=True)
    if proc.returncode != 0:
        raise RehearsalFailed(f"the stand-ins did not install:\n{proc.stderr[-2000:]}")


def rehearse(python: str, keep: bool) -> str:
    if not (BUNDLE / "MANIFEST.txt").is_file():
        raise RehearsalFailed("no bundle: run make gpu-bundle first")
    venv = WORK / "venv"
    if not (keep and (venv / "bin" / "python").exists()):
        build_environment(python, venv)
    listed = installed(venv)
    machine = read_list(MACHINE)
    foreign = sorted(set(listed) - set(machine))
    if foreign:
        raise RehearsalFailed(f"the stand-in environment holds packages the GPU machine does not list: {foreign}; "
                              f"the check must not need them, or their wheels must be carried")
    site, out = WORK / "site", WORK / "out"
    for folder in (site, out):
        shutil.rmtree(folder, ignore_errors=True)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "UNIAVGEN_GOLDEN", "UNIAVGEN_VOCAB", "PYTHONHOME")}
    env.update(PYTHON=str(venv / "bin" / "python"), SITE=str(site), OUT=str(out),
               BUNDLE=str(BUNDLE.relative_to(REPO)))
    proc = subprocess.run(["bash", "benchmarks/gpu_run.sh", "--no-results"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)
    output = proc.stdout + proc.stderr
    (WORK / "gpu_run.log").write_text(output)
    found = re.search(r"(\d+) CUDA tests collected, (\d+) collection errors", output)
    missing = re.search(r"missing: (.*)", output)
    expected, _, _ = collect({**os.environ, "PYTHONUNBUFFERED": "1"})
    problems = []
    if proc.returncode != 2 or "no CUDA GPU here" not in output:
        problems.append(f"expected the 'no CUDA GPU' stop (status 2), got status {proc.returncode}")
    if not found or found.group(2) != "0" or int(found.group(1)) != expected:
        problems.append(f"expected {expected} CUDA tests collected without errors, got "
                        f"{found.group(0) if found else 'no collection report'}")
    if not missing or missing.group(1).strip() != "none":
        problems.append(f"packages missing on the stand-in: {missing.group(1) if missing else '?'}")
    if problems:
        raise RehearsalFailed("; ".join(problems) + f"\n--- gpu_run.sh output ---\n{output[-4000:]}")
    return (f"gpu-rehearsal passed: Python 3.12 stand-in with {len(listed)} packages, all on the GPU machine's "
            f"list; carried {', '.join(p.name for p in sorted((BUNDLE / 'wheels').glob('*.whl')))}; "
            f"{found.group(1)} CUDA tests collected, 0 errors; stopped at 'no CUDA GPU' (status 2)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--python", help="a Python 3.12 interpreter")
    parser.add_argument("--keep", action="store_true", help="reuse the stand-in environment of the last run")
    args = parser.parse_args()
    try:
        summary = rehearse(find_python312(args.python), args.keep)
    except RehearsalFailed as err:
        print(f"gpu-rehearsal FAILED: {err}", file=sys.stderr)
        return 1
    WORK.mkdir(parents=True, exist_ok=True)
    (WORK / "report.txt").write_text(summary + "\n")
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())

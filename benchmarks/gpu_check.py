"""`make gpu-check`: the pack's checks and benchmark on a CUDA GPU, in one run of about 5 minutes.

    python benchmarks/gpu_check.py [--out DIR] [--budget SECONDS] [--no-results]

On the GPU machine it runs through benchmarks/gpu_run.sh, which puts the carried wheels on the path
(docs/DEVELOPMENT.md has the call). In order:

0. what it needs: the third-party packages the check can import, present or missing, and the CUDA
   tests collected (`pytest --collect-only`), so that a missing package shows before any GPU work;
   without a CUDA GPU it stops here with status 2;
1. the CUDA tests (`pytest -m cuda tests/test_cuda.py`, nothing else collected): golden parity in
   float32 on the GPU, bf16/fp8/block swap/compile within the mode bounds, each installed attention
   backend (a backend whose package is missing skips with the reason);
2. benchmarks/bench.py at the official shape (736x1312 reference, 21 latent frames, 506 mel frames,
   random weights): resident bf16, fp8, fp8 + swap30 and compile, against the compute floor measured
   in the same run, with the peak memory of each; a mode that would start too close to the end of the
   budget is reported as not run;
3. benchmarks/sampling_overhead.py: what each solver's algebra and the step cache cost per step at the
   official shape, beside the model steps of 2;
4. benchmarks/parallel_check.py: the public golden cases sampled by ranks on the GPUs (cfg, ulysses, and
   cfg+ulysses on 4) against one GPU; with one GPU, two cfg ranks sharing it over gloo, or why they cannot;
5. the report: written to DIR/gpu_check.md and DIR/gpu_check.log (DIR: $OUT if set, else
   build/gpu-check) and appended to benchmarks/RESULTS.md (with the date and the device).

The golden vectors travel in the tree (tests/data/golden); UNIAVGEN_GOLDEN points elsewhere.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
from import_graph import third_party_reach  # noqa: E402

MODES = "resident,fp8,fp8+swap30,compile"
CUDA_TESTS = ["-m", "cuda", "-p", "no:cacheprovider", "tests/test_cuda.py"]
TESTS_SHARE = 0.45          # of the budget left after collection; the benchmark gets the rest
ENTRIES = [REPO / "benchmarks" / "gpu_check.py", REPO / "benchmarks" / "bench.py",
           REPO / "benchmarks" / "sampling_overhead.py", REPO / "benchmarks" / "parallel_check.py",
           REPO / "tests" / "test_cuda.py",
           REPO / "tests" / "conftest.py"]
OVERHEAD_SECONDS = 30       # kept from the benchmark's share for the sampling overhead
PARALLEL_SECONDS = 60       # and for the parallel check
SEARCH = [REPO / "tests", REPO / "benchmarks", REPO / "tools", REPO]


def run(cmd: list[str], timeout: float, env: dict) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=max(timeout, 1))
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        text = lambda b: b.decode(errors="replace") if isinstance(b, bytes) else (b or "")  # noqa: E731
        code, output = 124, f"{text(err.stdout)}{text(err.stderr)}\nstopped after {timeout:.0f} s"
    return code, output, time.perf_counter() - start


def section(name: str, code: int, output: str, tail: int) -> str:
    """A step's table (from its first '### ' heading), or its last `tail` characters when it has none."""
    if "### " in output:
        return output[output.find("### "):]
    return f"{name} did not finish (status {code}):\n\n```\n{output[-tail:]}\n```\n"


def packages() -> tuple[list[str], list[str]]:
    """(present, missing) third-party packages among those the check's source can import."""
    names = sorted(third_party_reach(ENTRIES, SEARCH))
    present = [n for n in names if importlib.util.find_spec(n) is not None]
    return present, [n for n in names if n not in present]


def collect(env: dict) -> tuple[int, int, str]:
    """(tests collected, collection errors, pytest's output) for the CUDA tests."""
    code, out, _ = run([sys.executable, "-m", "pytest", "--collect-only", "-q", *CUDA_TESTS], 120, env)
    found = re.search(r"(\d+)(?:/\d+)? tests? collected", out) or re.search(r"^(\d+) tests?", out, re.M)
    errors = re.search(r"(\d+) errors?", out)
    return int(found.group(1)) if found else 0, int(errors.group(1)) if errors else int(code not in (0, 5)), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "build" / "gpu-check"))
    parser.add_argument("--budget", type=float, default=300, help="seconds for the whole check (default 300)")
    parser.add_argument("--no-results", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    start = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    present, missing = packages()
    print(f"gpu-check: packages present: {', '.join(present)}; missing: {', '.join(missing) or 'none'}", flush=True)
    collected, errors, out_c = collect(env)
    print(f"gpu-check: {collected} CUDA tests collected, {errors} collection errors", flush=True)
    if errors or not collected:
        print(out_c[-4000:], file=sys.stderr)
        print("gpu-check: the CUDA tests do not collect here; a missing package above needs its wheel carried "
              "(benchmarks/gpu_wheels.txt, make gpu-bundle)", file=sys.stderr)
        return 1
    import torch
    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}). "
              f"It runs on a machine with an NVIDIA GPU; the CPU test suite is `make test`.", file=sys.stderr)
        return 2
    device = torch.cuda.get_device_name()
    print(f"gpu-check on {device}, torch {torch.__version__}", flush=True)
    left = lambda: args.budget - (time.perf_counter() - start)  # noqa: E731

    code_t, out_t, secs_t = run([sys.executable, "-m", "pytest", "-q", "-rs", *CUDA_TESTS], TESTS_SHARE * left(), env)
    lines = out_t.strip().splitlines() or ["no output"]
    tests = next((line for line in reversed(lines) if " in " in line and ("passed" in line or "failed" in line)),
                 lines[-1])
    print(out_t[-4000:], flush=True)
    bench_s = left() - 5 - OVERHEAD_SECONDS - PARALLEL_SECONDS
    code_b, out_b, secs_b = run([sys.executable, "benchmarks/bench.py", "--device", "cuda", "--shape", "official",
                                 "--modes", MODES, "--steps", "3", "--deadline", f"{0.7 * bench_s:.0f}"], bench_s, env)
    print(out_b[-6000:], flush=True)
    table = section("bench", code_b, out_b, 1500)
    code_o, out_o, _ = run([sys.executable, "benchmarks/sampling_overhead.py", "--device", "cuda"],
                           max(left() - 5 - PARALLEL_SECONDS, 5), env)
    print(out_o[-3000:], flush=True)
    overhead = section("sampling overhead", code_o, out_o, 800)
    code_p, out_p, _ = run([sys.executable, "benchmarks/parallel_check.py", "--device", "cuda"], max(left() - 5, 5),
                           env)
    print(out_p[-3000:], flush=True)
    parallel = section("parallel check", code_p, out_p, 800)
    report = (f"\n## GPU check, {datetime.date.today()}: {device}, torch {torch.__version__}\n\n"
              f"`make gpu-check`: CUDA tests {tests.strip('= ')} ({secs_t:.0f} s, status {code_t}); "
              f"benchmark {secs_b:.0f} s (status {code_b}); missing packages: {', '.join(missing) or 'none'}."
              f"\n\n{table.strip()}\n\n{overhead.strip()}\n\n{parallel.strip()}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.md").write_text(report)
    (args.out / "gpu_check.log").write_text("\n\n".join([out_c, out_t, out_b, out_o, out_p]))
    if not args.no_results:
        with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(report)
    print(report)
    return 0 if code_t == code_b == code_o == code_p == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

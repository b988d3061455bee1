"""`make gpu-check`: the pack's checks and benchmark on a CUDA GPU, in one run of at most 8 minutes.

    python benchmarks/gpu_check.py [--out DIR] [--no-results]

1. the CUDA tests (`pytest -m cuda`): golden parity in float32 on the GPU, bf16/fp8/block swap/
   compile within the mode bounds, each installed attention backend;
2. benchmarks/bench.py at the official shape (736x1312 reference, 21 latent frames, 506 mel
   frames, random weights): resident bf16, fp8, fp8 + swap30 and compile, against the compute
   floor measured in the same run, with the peak memory of each;
3. the report: appended to benchmarks/RESULTS.md (with the date and the device) and written to
   DIR/gpu_check.md (DIR: $OUT if set, else build/gpu-check).

Needs the golden vectors: UNIAVGEN_GOLDEN, ../shared/golden, or build/gpu-check/shared/golden
(`make gpu-stage` copies them there so that they travel with the working tree). Without a CUDA
GPU it says so and exits with status 2.
"""
from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STAGED = REPO / "build" / "gpu-check" / "shared" / "golden"
MODES = "resident,fp8,fp8+swap30,compile"
BUDGET_S = {"tests": 240, "bench": 330}


def golden_root() -> Path | None:
    for root in (os.environ.get("UNIAVGEN_GOLDEN"), REPO.parent / "shared" / "golden", STAGED):
        if root and (Path(root) / "public" / "golden.json").is_file():
            return Path(root)
    return None


def run(cmd: list[str], timeout: int, env: dict) -> tuple[int, str, float]:
    start = time.perf_counter()
    try:
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        code, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as err:
        code, output = 124, f"{err.stdout or ''}{err.stderr or ''}\nstopped after {timeout} s"
    return code, output, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or REPO / "build" / "gpu-check"))
    parser.add_argument("--no-results", action="store_true", help="do not append to benchmarks/RESULTS.md")
    args = parser.parse_args()
    import torch
    if not torch.cuda.is_available():
        print(f"gpu-check: no CUDA GPU here (torch {torch.__version__}, CUDA build {torch.version.cuda or 'none'}). "
              f"It runs on a machine with an NVIDIA GPU; the CPU test suite is `make test`.", file=sys.stderr)
        return 2
    golden = golden_root()
    if golden is None:
        print("gpu-check: golden vectors not found (UNIAVGEN_GOLDEN, ../shared/golden or build/gpu-check/shared/"
              "golden); run `make gpu-stage` beside the shared folder first", file=sys.stderr)
        return 2
    env = {**os.environ, "UNIAVGEN_GOLDEN": str(golden), "PYTHONUNBUFFERED": "1"}
    device = torch.cuda.get_device_name()
    print(f"gpu-check on {device}, torch {torch.__version__}", flush=True)

    code_t, out_t, secs_t = run([sys.executable, "-m", "pytest", "-q", "-rs", "-m", "cuda", "-p", "no:cacheprovider",
                                 "tests/test_cuda.py"], BUDGET_S["tests"], env)
    lines = out_t.strip().splitlines() or ["no output"]
    tests = next((line for line in reversed(lines) if " in " in line and ("passed" in line or "failed" in line)),
                 lines[-1])
    print(out_t[-4000:], flush=True)
    code_b, out_b, secs_b = run([sys.executable, "benchmarks/bench.py", "--device", "cuda", "--shape", "official",
                                 "--modes", MODES, "--steps", "3"], BUDGET_S["bench"], env)
    print(out_b[-6000:], flush=True)
    table = out_b[out_b.find("### "):] if "### " in out_b else f"bench did not finish (status {code_b}):\n\n" \
                                                                 f"```\n{out_b[-1500:]}\n```\n"
    report = (f"\n## GPU check, {datetime.date.today()}: {device}, torch {torch.__version__}\n\n"
              f"`make gpu-check`: CUDA tests {tests.strip('= ')} ({secs_t:.0f} s, status {code_t}); "
              f"benchmark {secs_b:.0f} s.\n\n{table.strip()}\n")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "gpu_check.md").write_text(report)
    (args.out / "gpu_check.log").write_text(out_t + "\n\n" + out_b)
    if not args.no_results:
        with open(REPO / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(report)
    print(report)
    return 0 if code_t == 0 and code_b == 0 else 1


if __name__ == "__main__":
    sys.exit(main())

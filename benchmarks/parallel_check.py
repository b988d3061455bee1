"""The multi-rank path on this machine's GPUs (`make gpu-check` runs it): the public golden cases sampled by ranks
of a RankPool, per parallel mode, against one device, in float32, with the wall time of each.

    python benchmarks/parallel_check.py [--device cuda|cpu]

With two or more GPUs: cfg on 2, ulysses on up to 4, cfg+ulysses on 4 (when there are 4), each rank on a GPU
of its own (nccl). With one GPU: two cfg ranks share it over gloo (nccl refuses a GPU twice), their velocities
gathered through the CPU; where that fails, the table says why. --device cpu rehearses it on two CPU ranks.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "tests")]
from helpers import rel_l2  # noqa: E402
from uniavgen_core.checkpoint.loading import load_model  # noqa: E402
from uniavgen_core.golden import case_params, case_request, model_cases  # noqa: E402
from uniavgen_core.parallel import ParallelConfig, RankPool, load_on_rank, sample_on_rank  # noqa: E402
from uniavgen_core.sampling import sample  # noqa: E402

TOL = 1e-5


def layouts(device: str) -> list[tuple[str, list[str]]]:
    """(mode, devices) to run here."""
    if device == "cpu":
        return [("cfg", ["cpu", "cpu"]), ("ulysses", ["cpu", "cpu"])]
    gpus = [f"cuda:{i}" for i in range(torch.cuda.device_count())]
    if len(gpus) == 1:
        return [("cfg", gpus * 2)]
    found = [("cfg", gpus[:2]), ("ulysses", gpus[:4])]
    return found + ([("cfg+ulysses", gpus[:4])] if len(gpus) >= 4 else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    args = parser.parse_args()
    golden = Path(os.environ.get("UNIAVGEN_GOLDEN") or REPO / "tests" / "data" / "golden") / "public"
    cases = [(name, case_request(case, inputs), case_params(case), (inputs["noise_video"], inputs["noise_audio"]))
             for name, case, inputs in model_cases(golden)]
    torch.set_grad_enabled(False)
    model = load_model(golden, dtype=torch.float32, device=args.device)
    alone, start = {}, time.perf_counter()
    for name, request, params, noise in cases:
        alone[name] = sample(model, [request], params, noise=noise)
    one_device = time.perf_counter() - start
    rows, failed = [], False
    for mode, devices in layouts(args.device):
        config = ParallelConfig(len(devices), mode)
        pool = None
        try:
            pool = RankPool(devices, load_on_rank, str(golden), "fp32", "sdpa")
            worst, start = 0.0, time.perf_counter()
            for name, request, params, noise in cases:
                out = pool.run(sample_on_rank, [request], params, config, noise=noise)
                worst = max(worst, rel_l2(out.video, alone[name].video), rel_l2(out.audio, alone[name].audio))
            seconds = time.perf_counter() - start
            ok = worst <= TOL
            failed |= not ok
            rows.append(f"| {mode} | {', '.join(devices)} | {pool.backend} | {worst:.1e} ({'ok' if ok else 'FAILED'}) "
                        f"| {seconds:.2f} |")
        except Exception as err:            # noqa: BLE001  (the table says what this machine cannot do)
            shared = len(set(devices)) < len(devices) and args.device == "cuda"
            failed |= not shared
            reason = f"{type(err).__name__}: {str(err).splitlines()[0][:200] if str(err) else ''}"
            rows.append(f"| {mode} | {', '.join(devices)} | gloo | {'not possible here' if shared else 'FAILED'}: "
                        f"{reason} | - |")
        finally:
            if pool is not None:
                pool.close()
    print(f"### Parallel sampling on {len(cases)} public golden cases (float32, {args.device})\n\n"
          f"One device: {one_device:.2f} s for all cases. Relative L2 against it: at most {TOL:g} passes.\n\n"
          "| mode | devices | backend | worst relative L2 | seconds |\n|---|---|---|---|---|\n" + "\n".join(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

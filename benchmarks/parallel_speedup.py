"""Predicted speed-up of one sampling step on 2, 4 and 8 GPUs per parallel mode and link, at the release's shape.

    python benchmarks/parallel_speedup.py [--rate 600]

The step's FLOPs (conditional and unconditional pass batched) are counted by torch's FLOP counter on the meta
device, a GPU is taken to run them at --rate TFLOP/s, and the bytes the ranks send come from the traffic model
(uniavgen_core/parallel/traffic.py, checked in the tests against what ranks send), over each link's bandwidth
in one direction per GPU, with no overlap of transfers and compute (parallel/traffic.predicted_speedup). These
are predictions; `make gpu-check` measures the step on the GPUs it finds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench  # noqa: E402
from memory_estimate import meta_model  # noqa: E402
from uniavgen_core.parallel import ParallelConfig  # noqa: E402
from uniavgen_core.parallel.traffic import predicted_speedup  # noqa: E402

LINKS = {"NVLink (450 GB/s)": 450e9, "PCIe 5.0 x16 (50 GB/s)": 50e9, "PCIe 4.0 x16 (25 GB/s)": 25e9}
LAYOUTS = (("cfg", 2), ("ulysses", 2), ("ulysses", 4), ("ulysses", 8), ("cfg+ulysses", 4), ("cfg+ulysses", 8))


def step_flops(shape: dict) -> int:
    model = meta_model(shape["config"], fp8=False)
    with FlopCounterMode(display=False) as counter:
        model(*bench.step_inputs(model, shape, torch.device("meta")))
    return counter.get_total_flops()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=600.0, help="sustained bf16 TFLOP/s of one GPU")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    shape = bench.SHAPES["official"]
    flops = step_flops(shape)
    alone = flops / (args.rate * 1e12)
    print(f"one step: {flops / 1e12:.0f} TFLOP, {alone:.2f} s on one GPU at {args.rate:g} TFLOP/s\n")
    print("| mode | GPUs | " + " | ".join(LINKS) + " |")
    print("|---|---|" + "---|" * len(LINKS))
    for mode, ranks in LAYOUTS:
        cells = [predicted_speedup(shape["config"], ParallelConfig(ranks, mode), shape["frames"], shape["h"],
                                   shape["w"], shape["mel"], alone, link) for link in LINKS.values()]
        print(f"| {mode} | {ranks} | " + " | ".join(f"{c:.2f}x" for c in cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark script runs (a tiny shape; the real tables come from benchmarks/bench.py)."""
import sys

import torch

from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench  # noqa: E402


def test_benchmark_modes_run_and_report():
    torch.set_grad_enabled(False)
    device = torch.device("cpu")
    rows = [bench.run_mode(bench.SHAPES["tiny"], mode, device, steps=1) for mode in ("resident", "fp8+swap2")]
    assert all(r["flops"] > 0 and r["step"] > 0 and r["floor"] > 0 for r in rows)
    text = bench.table(rows, "tiny", device)
    assert "| fp8+swap2 | float32 |" in text and "step / floor" in text

"""What the solvers and the step cache cost per step beside the model, at the official shape.

    python benchmarks/sampling_overhead.py [--device cuda] [--repeats 20]

The state is one clip at the release's shape (video [1, 48, 21, 46, 82], audio [1, 506, 80], float32);
the model is replaced by fixed pass outputs, so what is timed is the solver's algebra per step (every
registered solver, a 12-step run; preset fast's solver also on a dubbing clip, whose audio takes UniPC's steps up
to MA-CFG's switch beside Adams') and the step cache's decisions and bookkeeping per call. Compare with
a model step in benchmarks/bench.py's table of the same run.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from uniavgen_core.sampling import SOLVERS, SamplingParams, solvers  # noqa: E402
from uniavgen_core.sampling.cache import StepCache  # noqa: E402
from uniavgen_core.sampling.guidance import GuidedVelocity, PassVelocities  # noqa: E402
from uniavgen_core.sampling.schedule import build  # noqa: E402

VIDEO, AUDIO = (1, 48, 21, 46, 82), (1, 506, 80)
STEPS = 12


class FixedPasses(GuidedVelocity):
    """The guidance's combination over pass outputs that move a little with the state (no model)."""

    def __init__(self, device):
        self.params, self.macfg_above, self.evaluations = SamplingParams(), 500.0, 0
        self.v = torch.randn((1, 48, 22, 46, 82), device=device)
        self.a = torch.randn(AUDIO, device=device)

    def passes(self, video, audio, t, cond=True, null=True, macfg=None):
        v = torch.cat([self.v[:, :, :1], self.v[:, :, 1:] + 0.01 * video], 2)
        a = self.a + 0.01 * audio
        return PassVelocities(v if cond else None, a if cond else None, v if null else None, a if null else None, None)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def per_step(run, device, repeats) -> float:
    run()
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        run()
    sync(device)
    return (time.perf_counter() - start) / repeats / STEPS * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    gen = torch.Generator().manual_seed(0)
    state = (torch.randn(VIDEO, generator=gen).to(device), torch.randn(AUDIO, generator=gen).to(device))
    velocity = (torch.randn(VIDEO, generator=gen).to(device), torch.randn(AUDIO, generator=gen).to(device))
    grid = build("shifted", STEPS, 5.0, 0.5)
    keys = grid.keys.to(device)
    rows = []
    dubbed = torch.tensor([True], device=device)
    runs = [(f"solver {name}", name, {}) for name in SOLVERS]
    runs.append(("solver adams, dubbing_start unipc, a dubbing clip (preset fast's)", "adams",
                 {"dubbing_start": "unipc"}))
    for what, name, options in runs:
        def run(name=name, options=options):
            solver, x = solvers.build(name, keys, grid.breaks, dubbed, options), state
            for i in range(STEPS):
                x = solver.step(i, x, velocity, lambda s, t, k: velocity)
        rows.append((what, per_step(run, device, args.repeats)))
    for threshold in (0.05, 0.2):
        def run(threshold=threshold):
            cache = StepCache(FixedPasses(device), threshold)
            for i in range(STEPS):
                cache(state[0] + 0.001 * i, state[1] + 0.001 * i, float(keys[i]))
        rows.append((f"step cache {threshold:g} (decisions, bookkeeping, guidance)",
                     per_step(run, device, args.repeats)))
    print(f"### Sampling overhead per step at the official shape ({device}, {STEPS}-step runs)\n")
    print("| what | ms per step |\n|---|---|")
    for what, ms in rows:
        print(f"| {what} | {ms:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())

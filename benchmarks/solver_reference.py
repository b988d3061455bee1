"""Trajectories of diffusers' flow-matching UniPC and DPM-Solver++ 2M schedulers on an ODE with a known
solution, for tests/test_solvers.py to check the pack's own solvers against a well-kept implementation.

    python -m pip install --target build/diffusers diffusers
    PYTHONPATH=build/diffusers:. python benchmarks/solver_reference.py   # writes tests/data/solver_reference.json

The grids are the pack's "shifted" schedule with the first level at t = 990: diffusers moves a first level
of 1 to 1 - 1e-6 and its bh1 variant is undefined there, while the pack's solvers take sigma = 1 itself,
so the comparison starts below it. diffusers keeps its noise levels in float32.
"""
import json
import sys
from pathlib import Path

import diffusers
import torch
from diffusers import DPMSolverMultistepScheduler, UniPCMultistepScheduler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_solvers import gaussian  # noqa: E402
from uniavgen_core.sampling.schedule import build  # noqa: E402

START = [[1.3, -0.7, 0.2]]
FIRST = 990.0


def grid(steps: int) -> torch.Tensor:
    keys = build("shifted", steps, 5.0, 0.0).keys.double()
    keys[0] = FIRST
    return keys


def trajectory(scheduler, keys: torch.Tensor) -> list:
    scheduler.set_timesteps(num_inference_steps=len(keys) - 1)
    scheduler.sigmas = (keys / 1000).float()
    scheduler.timesteps = keys[:-1].clone()
    x, out = torch.tensor(START, dtype=torch.float64), []
    for i, t in enumerate(scheduler.timesteps):
        x = scheduler.step(gaussian((x,), float(scheduler.sigmas[i]) * 1000)[0], t, x).prev_sample
        out.append(x[0].tolist())
    return out


def main():
    cases = []
    for steps in (8, 12, 20):
        for order in (1, 2, 3):
            for variant in ("bh1", "bh2"):
                s = UniPCMultistepScheduler(solver_order=order, solver_type=variant, use_flow_sigmas=True,
                                            prediction_type="flow_prediction")
                cases.append({"solver": "unipc", "options": {"order": order, "variant": variant}, "steps": steps,
                              "trajectory": trajectory(s, grid(steps))})
        s = DPMSolverMultistepScheduler(solver_order=2, algorithm_type="dpmsolver++", use_flow_sigmas=True,
                                        prediction_type="flow_prediction")
        cases.append({"solver": "dpmpp_2m", "options": {}, "steps": steps, "trajectory": trajectory(s, grid(steps))})
    out = Path(__file__).resolve().parents[1] / "tests" / "data" / "solver_reference.json"
    out.write_text(json.dumps({"diffusers": diffusers.__version__, "start": START, "first_timestep": FIRST,
                               "cases": cases}, indent=0))
    print(f"{len(cases)} trajectories from diffusers {diffusers.__version__} -> {out}")


if __name__ == "__main__":
    main()

"""Named sampling presets: how many steps, which solver, schedule and step cache, as one value.

A preset leaves the guidance (scales, MA-CFG fraction, skip layer) to the model's parameters; applied to
them it sets the rest. `release` is the release's sampling, exactly; `fast` the best combination measured
at no more than 25 model evaluations per clip (docs/sampling.md has the table it was chosen from).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .params import SamplingParams


@dataclass(frozen=True)
class Preset:
    steps: int
    solver: str = "euler"
    solver_options: dict = field(default_factory=dict, hash=False)
    schedule: str = "release"
    cache: float = 0.0

    def apply(self, params: SamplingParams) -> SamplingParams:
        """The parameters with this preset's sampling and their own guidance (checked again)."""
        return dataclasses.replace(params, steps=self.steps, solver=self.solver,
                                   solver_options=dict(self.solver_options), schedule=self.schedule,
                                   cache=self.cache)

    def describe(self) -> str:
        options = "".join(f", {k} {v}" for k, v in self.solver_options.items())
        cache = f", step cache {self.cache:g}" if self.cache else ""
        return f"{self.steps} steps of {self.solver}{options} on the {self.schedule} schedule{cache}"


PRESETS: dict[str, Preset] = {
    "release": Preset(steps=50),
    "fast": Preset(steps=12, solver="unipc", solver_options={"order": 2}, schedule="shifted"),
}

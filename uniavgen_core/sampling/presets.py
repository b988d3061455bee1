"""Named sampling presets: how many steps, which solver, schedule and step cache, as one value; and the
sampling a user chooses by name (a preset, or a solver, schedule and cache one by one: `choose`).

A preset leaves the guidance (scales, MA-CFG fraction, skip layer) to the model's parameters; applied to
them it sets the rest. `release` is the release's sampling, exactly; `fast` the best combination measured
at no more than 25 model evaluations per clip, on the small model closer to the converged solution than the
release in every task of the table; `balanced`, chosen before `fast` got there, the same with 16 steps on `beta`
and the step cache, fewer evaluations than `fast` where the audio is given (docs/sampling.md has the table both
were chosen from).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from .params import SamplingParams
from .solvers import SOLVERS


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
        options = "".join(f", {'with' if v else 'without'} its {k}" if isinstance(v, bool)
                          else f", {k.replace('_', ' ')} {v}"
                          for k, v in self.solver_options.items()) + ("," if self.solver_options else "")
        cache = f", step cache {self.cache:g}" if self.cache else ""
        return f"{self.steps} steps of {self.solver}{options} on the {self.schedule} schedule{cache}"


# Solvers by the names a user chooses from: every registered solver under its own name with its default
# options (unipc: order 2, bh2; adams: order 2 with its corrector), and these variants with other options
# (`adams_unipc_dubbing`: `fast`'s solver, the dubbed audio by UniPC up to MA-CFG's switch).
SOLVER_VARIANTS: dict[str, tuple[str, dict]] = {
    "unipc_bh1": ("unipc", {"variant": "bh1"}),
    "unipc_order3": ("unipc", {"order": 3}),
    "adams_order3": ("adams", {"order": 3}),
    "ab3": ("adams", {"order": 3, "corrector": False}),
    "adams_unipc_dubbing": ("adams", {"order": 2, "corrector": True, "dubbing_start": "unipc"}),
}


def solver_choices() -> list[str]:
    """The solver names `choose` takes: the registered solvers in registration order (euler first), then the
    variants."""
    return list(SOLVERS) + [name for name in SOLVER_VARIANTS if name not in SOLVERS]


def named_solver(name: str) -> tuple[str, dict]:
    """A name of `solver_choices()` -> (registered solver, its options)."""
    if name in SOLVERS:
        return name, {}
    if name in SOLVER_VARIANTS:
        solver, options = SOLVER_VARIANTS[name]
        return solver, dict(options)
    raise ValueError(f"unknown solver {name!r}: choose one of {', '.join(solver_choices())}")


PRESETS: dict[str, Preset] = {
    "release": Preset(steps=50),
    "fast": Preset(12, *named_solver("adams_unipc_dubbing"), schedule="beta_clean"),
    "balanced": Preset(steps=16, solver="adams", solver_options={"order": 2, "corrector": True}, schedule="beta",
                       cache=0.02),
}
CUSTOM = "custom"                     # no preset: the steps, solver, schedule and cache as chosen one by one


def choose(params: SamplingParams, preset: str = CUSTOM, solver: str = "euler", schedule: str = "release",
           cache: float = 0.0, sampler: str | None = None, sigmas: int | None = None) -> tuple[SamplingParams, list]:
    """The parameters a user's choices stand for, and what to tell them. `params` gives the guidance, the shift
    and (with preset `custom`) the steps; `custom` adds the solver (a name of `solver_choices()`), schedule and
    cache; a named preset sets steps, solver, schedule and cache together (the others are still checked).
    The defaults give `params` unchanged. `sampler`: what steps in place of the pack's solvers, in words (a
    sampler written elsewhere, flat.py); `sigmas`: the steps of noise levels given in place of the schedule.
    A ValueError says what is wrong with a choice and what to choose."""
    name, options = named_solver(solver)
    chosen = dataclasses.replace(params, solver=name, solver_options=options, schedule=schedule, cache=cache)
    messages = []
    if preset != CUSTOM:
        if preset not in PRESETS:
            raise ValueError(f"unknown preset {preset!r}: choose {CUSTOM} (steps, solver, schedule and cache as "
                             f"set) or one of {', '.join(PRESETS)}")
        chosen, solver = PRESETS[preset].apply(params), PRESETS[preset].solver
        messages.append(f"preset {preset}: {PRESETS[preset].describe()}; it sets the steps, solver, schedule "
                        f"and cache (preset {CUSTOM} takes them as set)")
    if sampler is not None and chosen.solver != "euler":
        messages.append(f"{sampler} steps in place of the solver {solver}; disconnect it to use {solver}")
    if sigmas is not None and (preset != CUSTOM or chosen.schedule != "release"):
        messages.append(f"the noise levels given ({sigmas} steps) replace the {chosen.steps} steps on the "
                        f"{chosen.schedule} schedule")
    return chosen, messages

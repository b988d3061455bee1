"""Update rules: from the state at step i of the schedule to the state at step i + 1.

The state is the tuple of modality tensors (video, audio), float32, moved together: a solver writes
its algebra once (`combine`) and it applies to every modality. A solver is built once per run from
the timestep schedule and its options (`SamplingParams.solver_options`), keeps whatever history it
needs (a multistep solver keeps past velocities), and may evaluate the guided velocity elsewhere
(a Heun or Runge-Kutta step): `velocity(state, t, i)` at a float32 timestep t, in the velocity field of
step i (a step's far end belongs to the field of the step, also where the guidance switches there).
Register a new one with
`@register("name")`; `SamplingParams.solver` chooses it.

Every solver also takes `breaks`, from the loop, never from the user: the step indices k where the
guided velocity jumps (MA-CFG's switch), i.e. the velocity at step k belongs to another field than the
one at step k - 1. A multistep solver starts its history afresh there (a difference across a jump is no
derivative); a solver that evaluates ahead names the field of the step it is in. A solver whose signature
names `video_given` also gets it from the loop: a bool tensor [N], the clips whose video is given whole
(dubbing), so that it may step their audio otherwise (`build`).
"""
from __future__ import annotations

import inspect
import math
from typing import Callable, Protocol

import torch

from . import flow

State = tuple[torch.Tensor, ...]                  # (video [N, C, F, h, w], audio [N, S, 80]), float32
VelocityFn = Callable[[State, float, int], State]     # the guided velocity of a state at a timestep, step i's field


def combine(*terms: tuple[float | torch.Tensor, State]) -> State:
    """sum of coefficient x state, modality by modality, in the order given."""
    out = None
    for c, state in terms:
        scaled = tuple(x * c for x in state)
        out = scaled if out is None else tuple(a + b for a, b in zip(out, scaled))
    return out


class Solver(Protocol):
    def __init__(self, timesteps: torch.Tensor, breaks: frozenset[int] = frozenset(), **options): ...

    def step(self, i: int, state: State, velocity_at_i: State, velocity: VelocityFn) -> State:
        """The state at timestep i + 1 from the state and its velocity at timestep i. `timesteps` [steps + 1]
        run from 1000 to 0 in the schedule's dtype (bf16 as released), on the compute device."""


SOLVERS: dict[str, type] = {}


def register(name: str) -> Callable[[type], type]:
    def add(cls: type) -> type:
        SOLVERS[name] = cls
        return cls
    return add


def check_options(name: str, options: dict) -> None:
    """A ValueError naming what a solver does not take, or an option value it refuses, before any work."""
    for loop_set, source in (("breaks", "the guidance"), ("video_given", "the tasks")):
        if loop_set in options:
            raise ValueError(f"solver {name!r}: {loop_set!r} is not an option; the sampling loop sets it from {source}")
    try:
        inspect.signature(SOLVERS[name]).bind(torch.zeros(2), breaks=frozenset(), **options)
    except TypeError as err:
        raise ValueError(f"solver {name!r} does not take the options {sorted(options)}: {err}") from None
    SOLVERS[name](torch.tensor([1000.0, 0.0]), breaks=frozenset(), **options)    # its own checks of the values


def build(name: str, timesteps: torch.Tensor, breaks: frozenset[int], video_given: torch.Tensor,
          options: dict) -> Solver:
    """The solver `name` for one run, with `video_given` ([N] bool) where its signature takes it."""
    cls = SOLVERS[name]
    extra = {"video_given": video_given} if "video_given" in inspect.signature(cls).parameters else {}
    return cls(timesteps, breaks=breaks, **extra, **options)


def _sigmas(timesteps: torch.Tensor) -> list[float]:
    """The noise levels of the schedule as Python floats (one host copy; the coefficients of every step
    are then computed in double precision on the host, whatever the device)."""
    return [flow.sigma(t) for t in timesteps.double().cpu().tolist()]


def _lam(s: float) -> float:
    """lambda = log(alpha / sigma), the half log signal-to-noise ratio: -inf at sigma = 1, inf at 0."""
    return math.log((1 - s) / s) if 0 < s < 1 else (math.inf if s == 0 else -math.inf)


@register("euler")
class Euler:
    """x_{i+1} = x_i - v_i (t_i - t_{i+1}) / 1000, the release's sampler. The step size is computed in
    the schedule's dtype (bf16 as released) before it scales the float32 velocity."""

    def __init__(self, timesteps: torch.Tensor, breaks: frozenset[int] = frozenset()):
        self.timesteps = timesteps          # breaks: nothing to restart

    def step(self, i, state, velocity_at_i, velocity):
        dt = flow.sigma(self.timesteps[i] - self.timesteps[i + 1])
        return combine((1, state), (-dt, velocity_at_i))


def _adams_weights(nodes: list[float], a: float, b: float) -> list[float]:
    """The integrals over [a, b] of the Lagrange basis polynomials on `nodes` (distinct noise levels): a
    velocity polynomial through the nodes integrates to sum_j w_j v_j. Each basis polynomial is expanded in
    powers of (s - a) and integrated term by term."""
    out = []
    for j, xj in enumerate(nodes):
        coeffs = [1.0]                                     # of (s - a)^0, (s - a)^1, ...
        for m, xm in enumerate(nodes):
            if m != j:                                     # times ((s - a) - (xm - a)) / (xj - xm)
                c, shift = 1 / (xj - xm), xm - a
                coeffs = [c * ((coeffs[n - 1] if n else 0.0) - shift * (coeffs[n] if n < len(coeffs) else 0.0))
                          for n in range(len(coeffs) + 1)]
        out.append(sum(cn * (b - a) ** (n + 1) / (n + 1) for n, cn in enumerate(coeffs)))
    return out


@register("adams")
class Adams:
    """Adams methods on the velocity in sigma, on uneven steps. The predictor (Adams-Bashforth) integrates
    the polynomial through the velocities at the last `order` steps over the step; with `corrector` (Adams-
    Moulton, no extra evaluation, as UniPC's) step i first corrects the state it receives with the polynomial
    that also passes through the velocity just evaluated there, and goes on from the corrected state with that
    velocity: one order more. The first step, and the first at each index in `breaks` (where the guided velocity
    jumps, e.g. MA-CFG's switch), is Euler's (a difference across a jump is no derivative; no correction across
    it either); the order then grows with the history. The step to sigma = 0 is not corrected (nothing is
    evaluated there).

    `dubbing_start="unipc"`: the audio of the clips whose video is given whole (`video_given`: dubbing and its
    continuation) takes
    UniPC's steps (order 2, bh2) up to the first break, MA-CFG's switch, and Adams' from there (both restart
    their history at the switch). Chosen by measurement (docs/sampling.md): in MA-CFG's field the dubbed audio
    lands closer to the converged solution by UniPC's steps, the generated one (joint generation) by Adams'.
    Without a switch on the grid it changes nothing."""

    def __init__(self, timesteps: torch.Tensor, breaks: frozenset[int] = frozenset(), order: int = 2,
                 corrector: bool = True, dubbing_start: str = "adams", video_given: torch.Tensor | None = None):
        if order not in (1, 2, 3):
            raise ValueError(f"adams: order must be 1, 2 or 3, got {order!r}")
        if not isinstance(corrector, bool):
            raise ValueError(f"adams: corrector must be true or false, got {corrector!r}")
        if dubbing_start not in ("adams", "unipc"):
            raise ValueError(f"adams: dubbing_start must be 'adams' or 'unipc', got {dubbing_start!r}")
        self.sigmas, self.breaks, self.order, self.corrector = _sigmas(timesteps), frozenset(breaks), order, corrector
        self.history: list[tuple[float, State]] = []       # (sigma, velocity) at the last `order` steps
        self.last = None                                   # the state the previous step started from
        dubbed = dubbing_start == "unipc" and self.breaks and video_given is not None and bool(video_given.any())
        self.start = UniPC(timesteps, self.breaks) if dubbed else None
        self.switch, self.video_given = min(self.breaks, default=0), video_given

    def _integral(self, i: int, points: list[tuple[float, State]]) -> State:
        w = _adams_weights([s for s, _ in points], self.sigmas[i], self.sigmas[i + 1])
        return combine(*zip(w, (v for _, v in points)))

    def step(self, i, state, velocity_at_i, velocity):
        if self.start is not None and i < self.switch:
            audio = self.start.step(i, state[1:], velocity_at_i[1:], velocity)[0]     # UniPC on the audio alone
            out = self._step(i, state, velocity_at_i)
            rows = self.video_given.to(audio.device).view(-1, *(1,) * (audio.dim() - 1))
            return out[0], torch.where(rows, audio, out[1])
        return self._step(i, state, velocity_at_i)

    def _step(self, i, state, velocity_at_i):
        if i in self.breaks:
            self.history, self.last = [], None
        point = (self.sigmas[i], velocity_at_i)
        if self.corrector and self.last is not None:
            state = combine((1, self.last), (1, self._integral(i - 1, self.history + [point])))
        self.history = (self.history + [point])[-self.order:]
        self.last = state
        return combine((1, state), (1, self._integral(i, self.history)))


@register("ab2")
class AdamsBashforth2(Adams):
    """Two-step Adams-Bashforth, second order: with h_i the step in sigma,
    x_{i+1} = x_i + h_i ((1 + r) v_i - r v_{i-1}), r = h_i / (2 h_{i-1}); Euler's step first and at breaks."""

    def __init__(self, timesteps: torch.Tensor, breaks: frozenset[int] = frozenset()):
        super().__init__(timesteps, breaks, order=2, corrector=False)


@register("heun")
class Heun:
    """Heun's method (explicit trapezoid), second order, two evaluations per step: an Euler guess at
    t_{i+1}, then the mean of the velocities at both ends, the far one in this step's velocity field. The
    last step (to sigma = 0) is Euler's, as in k-diffusion."""

    def __init__(self, timesteps: torch.Tensor, breaks: frozenset[int] = frozenset()):
        self.sigmas, self.t = _sigmas(timesteps), timesteps.float().cpu().tolist()   # one field per step: no breaks

    def step(self, i, state, velocity_at_i, velocity):
        h = self.sigmas[i + 1] - self.sigmas[i]
        guess = combine((1, state), (h, velocity_at_i))
        if self.sigmas[i + 1] == 0:
            return guess
        ahead = velocity(guess, self.t[i + 1], i)
        return combine((1, state), (h / 2, velocity_at_i), (h / 2, ahead))


@register("dpmpp_2m")
class DPMSolverPP2M:
    """DPM-Solver++(2M) (Lu et al. 2022) on the flow x = alpha x0 + sigma noise, alpha = 1 - sigma: it
    integrates exactly the linear part of the ODE in lambda = log(alpha / sigma) and extrapolates the data
    prediction x0 = x - sigma v linearly in lambda from the last two steps:
        x_{i+1} = (sigma_{i+1} / sigma_i) x_i + alpha_{i+1} (1 - e^{-h}) D,  h = lambda_{i+1} - lambda_i,
        D = (1 + 1 / (2 r)) x0_i - x0_{i-1} / (2 r),  r = h_{i-1} / h.
    The first step, and the first at each index in `breaks`, use D = x0_i (first order). The step to
    sigma = 0 (lambda infinite, e^{-h} = 0) returns x0_i, as in k-diffusion."""

    def __init__(self, timesteps: torch.Tensor, breaks: frozenset[int] = frozenset()):
        self.sigmas, self.breaks, self.previous = _sigmas(timesteps), frozenset(breaks), None

    def step(self, i, state, velocity_at_i, velocity):
        s0, s1 = self.sigmas[i], self.sigmas[i + 1]
        x0 = combine((1, state), (-s0, velocity_at_i))
        previous = None if i in self.breaks else self.previous
        if s1 == 0:
            self.previous = None
            return x0
        h = _lam(s1) - _lam(s0)          # infinite from sigma = 1, where the state is pure noise
        self.previous = (h, x0)
        # alpha_{i+1} (1 - e^{-h}) = alpha_{i+1} - sigma_{i+1} alpha_i / sigma_i, finite also at sigma_i = 1
        c = (1 - s1) - s1 * (1 - s0) / s0
        if previous is None:
            return combine((s1 / s0, state), (c, x0))
        w = h / (2 * previous[0])                # 1 / (2 r); 0 after the step from sigma = 1 (h_{i-1} infinite)
        return combine((s1 / s0, state), (c * (1 + w), x0), (-c * w, previous[1]))


@register("unipc")
class UniPC:
    """UniPC (Zhao et al. 2023), the multistep predictor-corrector in the data-prediction form Wan samples
    with, on x = alpha x0 + sigma noise (alpha = 1 - sigma, x0 = x - sigma v, lambda = log(alpha / sigma)).

    Step i first corrects the state it receives (the predictor's x_i) with the data prediction m_i made
    from that very state, so the corrector costs no evaluation; then predicts x_{i+1} from m_i and up to
    `order` - 1 earlier predictions. Both are `sigma_{i+1} / sigma_i x_i + alpha_{i+1} (1 - e^{-h}) m_i`
    plus `- alpha_{i+1} B(h) sum_k rho_k D_k` with the divided differences D_k = (m_k - m_i) / r_k,
    r_k = (lambda_k - lambda_i) / h, and rho solving the order conditions sum_k rho_k r_k^(n-1) = b_n(h)
    (the corrector adds the point r = 1, m_{i+1}); with hh = -h, B = hh ("bh1") or e^hh - 1 ("bh2"), and
    b_n = n! phi_{n+1}(hh) / B. The order falls to 1 on the first step, on the first at each of `breaks` (no corrector
    across the jump either) and on the last (to sigma = 0: the data prediction), and to 2 on the one
    before; the predictions at sigma = 1 (lambda infinite) never serve as an earlier point."""

    def __init__(self, timesteps: torch.Tensor, breaks: frozenset[int] = frozenset(), order: int = 2,
                 variant: str = "bh2"):
        if order not in (1, 2, 3):
            raise ValueError(f"unipc: order must be 1, 2 or 3, got {order!r}")
        if variant not in ("bh1", "bh2"):
            raise ValueError(f"unipc: variant must be 'bh1' or 'bh2', got {variant!r}")
        self.sigmas, self.breaks, self.order, self.variant = _sigmas(timesteps), frozenset(breaks), order, variant
        self.lams = [_lam(s) for s in self.sigmas]
        self.history: list[tuple[float, State]] = []       # (lambda, data prediction), newest last
        self.last = None                                   # what the corrector of the previous step needs

    def _update(self, i: int, x: State, m0: State, earlier: list[tuple[float, State]], m1: State | None):
        """x_{i+1} from x_i: the predictor with the earlier points, or with m1 (the data prediction at
        i + 1) the corrector."""
        s0, s1 = self.sigmas[i], self.sigmas[i + 1]
        h = self.lams[i + 1] - self.lams[i]
        hh = -h
        phi1 = math.expm1(hh)                                 # e^{-h} - 1
        b_h = hh if self.variant == "bh1" and math.isfinite(h) else phi1   # bh1 has no limit at h = inf
        base = [(s1 / s0, x), (-(1 - s1) * phi1, m0)]      # the first-order (DDIM) step
        rks = [(lam - self.lams[i]) / h for lam, _ in earlier]
        diffs = [combine((1 / r, m), (-1 / r, m0)) for r, (_, m) in zip(rks, earlier)]
        if m1 is not None:
            rks, diffs = rks + [1.0], diffs + [combine((1, m1), (-1, m0))]
        if not diffs:
            return combine(*base)
        if len(diffs) == 1:
            rhos = [0.5]                                   # Wan's (and the paper's h -> 0) choice for one point
        else:
            # the right-hand sides b_n = n! phi_{n+1}(hh) / B(h), phi_{n+1} by phi_{n+1} = phi_n / hh - 1 / n!
            b, phi, fact = [], phi1 / hh - 1, 1
            for n in range(1, len(diffs) + 1):
                b.append(phi * fact / b_h)
                fact *= n + 1
                phi = phi / hh - 1 / fact
            R = torch.tensor([[r ** n for r in rks] for n in range(len(diffs))], dtype=torch.float64)
            rhos = torch.linalg.solve(R, torch.tensor(b, dtype=torch.float64)).tolist()
        return combine(*base, *((-(1 - s1) * b_h * rho, d) for rho, d in zip(rhos, diffs)))

    def step(self, i, state, velocity_at_i, velocity):
        m = combine((1, state), (-self.sigmas[i], velocity_at_i))
        if i in self.breaks:
            self.history, self.last = [], None
        if self.last is not None:                          # correct x_i with m_i, made from the uncorrected x_i
            j, x, m0, earlier = self.last
            state = self._update(j, x, m0, earlier, m)
        if self.sigmas[i + 1] == 0:                        # lambda infinite: the update is the data prediction
            self.last = None
            return m
        order = min(self.order, len(self.sigmas) - 1 - i, len(self.history) + 1)
        earlier = self.history[::-1][: order - 1]          # the newest first
        self.history = (self.history + [(self.lams[i], m)])[-3:] if math.isfinite(self.lams[i]) else []
        self.last = (i, state, m, earlier)
        return self._update(i, state, m, earlier, None)

"""The small model as an instrument for sampling: how smooth its guided velocity is in the timestep, and
how much closer than Euler a second-order multistep solver gets to the converged solution.

    roughness    |v(x, t + 1) - v(x, t)| / |v(x, t)| on a fixed noisy state x of each held-out clip
                 (its clean latents and mel noised to t), at t = 200, 500 and 800, per task and modality,
                 over the generated part only. The exact flow of a smooth data distribution changes by
                 well under 1 % for such a step.
    solver gain  the relative L2 distance of the final latents and mel to the converged solution
                 (Richardson extrapolation of Euler at M and 2M steps), for Euler and for the two-step
                 Adams-Bashforth solver at the same number of steps; the gain is their ratio (2 for a
                 second-order solver well inside its asymptotic range, about 1 on a rough velocity).

Both use the sampler's own guided velocity (MA-CFG, the small model's guidance scales), taken through
`sample`'s wrap_velocity seam, on the tasks of the task table.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from .. import units
from ..audio.mel import log_mel, normalise
from ..frontend.jobs import Job
from ..mini.pipeline import MINI_SAMPLING, MiniPipeline
from ..sampling import SamplingParams, flow, sample, seeded_noise
from ..sampling.tasks import TASKS, Given, Task, Voice
from ..synthetic.clips import Clip

TIMESTEPS = (200.0, 500.0, 800.0)
SETUPS = tuple(t.name.lower() for t in Task)     # every task of the table


def clean_state(pipe: MiniPipeline, clip: Clip) -> tuple[torch.Tensor, torch.Tensor]:
    """The clip's latents [48, F, h, w] and normalised mel [S, 80], as the model should make them."""
    return pipe.codec.encode(clip.frames.float()), normalise(log_mel(clip.wave.float()))


def job(pipe: MiniPipeline, setup: str, clip: Clip, seed: int) -> Job:
    """The job of one task for a held-out clip: its first picture, transcript and caption, and what the
    task takes of the clip (its other sentence's voice, its speech, its pictures, its first half as the
    prior clip of a continuation)."""
    spec = TASKS[Task[setup.upper()]]
    extra = {}
    if spec.voice == Voice.NEEDED:
        extra.update(voice_wave=clip.ref_wave, voice_text=clip.ref_text)
    if spec.audio == Given.ALL:
        extra["driving_wave"] = clip.wave
    if spec.video == Given.ALL:
        extra["driving_frames"] = clip.frames
    if Given.PRIOR in (spec.video, spec.audio):     # the clip's first half is the prior clip
        latent, mel = clean_state(pipe, clip)
        k = latent.shape[1] // 2
        extra["prior"] = (latent[:, :k], mel[: units.mel_frames(units.video_frames(k))])
    return pipe.job(spec.task, clip.text, clip.caption, clip.frames[0], seed, **extra)


def guided_velocity(model, requests, params: SamplingParams):
    """The guided velocity `sample` builds for these requests (video, audio, t) -> Velocity."""
    taken = []

    class Taken(Exception):
        pass

    def take(inner):
        taken.append(inner)
        raise Taken

    try:
        sample(model, requests, params, wrap_velocity=take)
    except Taken:
        return taken[0]
    raise RuntimeError("the sampler did not build its guided velocity")


def generated(jobs: list[Job], video: torch.Tensor, audio: torch.Tensor, i: int):
    """Clip i's generated part: video frames after its clean ones, mel rows after its clean ones."""
    c = jobs[i].request.condition
    return video[i, :, c.video_cond_frames:], audio[i, c.audio_cond_frames:]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """|a - b| / |b|; NaN where the part is empty (the modality is given, not generated)."""
    return float((a - b).norm() / b.norm()) if b.numel() else math.nan


def velocity_steps(pipe: MiniPipeline, setup: str, clips: list[Clip], params: SamplingParams = MINI_SAMPLING,
                   at: tuple[float, ...] = TIMESTEPS, dt: float = 1.0):
    """(t, jobs, v(x, t), v(x, t + dt)) for each t of `at`: the guided velocity of the task's jobs on the clips'
    clean latents and mel noised to t with each request's seeded noise."""
    jobs = [job(pipe, setup, c, seed=i) for i, c in enumerate(clips)]
    requests = [j.request for j in jobs]
    velocity = guided_velocity(pipe.model, requests, params)
    clean = [clean_state(pipe, c) for c in clips]
    x0_v, x0_a = torch.stack([v for v, _ in clean]), torch.stack([a for _, a in clean])
    noise = [seeded_noise(r) for r in requests]
    eps_v, eps_a = torch.cat([n[0] for n in noise]), torch.cat([n[1] for n in noise])
    for t in at:
        level = flow.sigma(t)
        x_v, x_a = flow.noisy(x0_v, eps_v, level), flow.noisy(x0_a, eps_a, level)
        yield t, jobs, velocity(x_v, x_a, t), velocity(x_v, x_a, t + dt)


def roughness(pipe: MiniPipeline, setup: str, clips: list[Clip], params: SamplingParams = MINI_SAMPLING,
              at: tuple[float, ...] = TIMESTEPS, dt: float = 1.0) -> dict:
    """{t: {"video": [per clip], "audio": [per clip]}} relative change of the guided velocity for a step dt."""
    out = {}
    for t, jobs, here, there in velocity_steps(pipe, setup, clips, params, at, dt):
        rows = {"video": [], "audio": []}
        for i in range(len(jobs)):
            a = generated(jobs, there.video, there.audio, i)
            b = generated(jobs, here.video, here.audio, i)
            rows["video"].append(relative(a[0], b[0]))
            rows["audio"].append(relative(a[1], b[1]))
        out[t] = rows
    return out


def converged(model, requests, params: SamplingParams, steps: int):
    """Richardson extrapolation of Euler: 2 E(2M) - E(M) cancels Euler's first-order error term, on a grid
    with MA-CFG's switch on it (on the release's grid the step across the switch keeps a first-order
    error that the extrapolation does not cancel)."""
    euler = dict(solver="euler", solver_options={}, schedule="shifted", cache=0.0)
    coarse = sample(model, requests, dataclasses.replace(params, steps=steps, **euler))
    fine = sample(model, requests, dataclasses.replace(params, steps=2 * steps, **euler))
    return 2 * fine.video - coarse.video, 2 * fine.audio - coarse.audio


def solver_gain(pipe: MiniPipeline, setup: str, clips: list[Clip], params: SamplingParams = MINI_SAMPLING,
                steps: int = 12, reference_steps: int = 64) -> dict:
    """Distances to the converged solution per clip, {"euler"|"ab2": {"video": [...], "audio": [...]}}."""
    jobs = [job(pipe, setup, c, seed=i) for i, c in enumerate(clips)]
    requests = [j.request for j in jobs]
    ref_v, ref_a = converged(pipe.model, requests, params, reference_steps)
    runs = {"euler": ("euler", {}), "ab2": ("ab2", {})}     # AB2 restarts at MA-CFG's switch (the loop's breaks)
    out = {}
    for name, (solver, options) in runs.items():
        result = sample(pipe.model, requests, dataclasses.replace(params, steps=steps, solver=solver,
                                                                  solver_options=options))
        rows = {"video": [], "audio": []}
        for i in range(len(jobs)):
            got, ref = generated(jobs, result.video, result.audio, i), generated(jobs, ref_v, ref_a, i)
            rows["video"].append(relative(got[0], ref[0]))
            rows["audio"].append(relative(got[1], ref[1]))
        out[name] = rows
    return out


def mean_interval(values: list[float], n_boot: int = 2000, seed: int = 0) -> tuple[float, float, float]:
    """(mean, low, high): the mean with a bootstrap 95 % interval; NaN for a modality not generated."""
    x = np.asarray([v for v in values if not math.isnan(v)], dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, (n_boot, x.size))].mean(axis=1)
    return float(x.mean()), float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def generates(setup: str) -> dict:
    """Which modalities the task generates (the others are given)."""
    spec = TASKS[Task[setup.upper()]]
    return {"video": spec.video != Given.ALL, "audio": spec.audio != Given.ALL}


def measure(pipe: MiniPipeline, clips: list[Clip], params: SamplingParams = MINI_SAMPLING, solvers: bool = True,
            steps: int = 12, reference_steps: int = 64, log=print) -> dict:
    """Both measurements for every task: {setup: {"roughness": {t: {modality: (mean, low, high)}},
    "solvers": {"euler"|"ab2"|"gain": {modality: (mean, low, high)}}}}, modalities the task generates."""
    out = {}
    for setup in SETUPS:
        made = [m for m, yes in generates(setup).items() if yes]
        rough = roughness(pipe, setup, clips, params)
        entry = {"roughness": {t: {m: mean_interval(rows[m]) for m in made} for t, rows in rough.items()}}
        if solvers:
            runs = solver_gain(pipe, setup, clips, params, steps, reference_steps)
            gain = {m: [e / a for e, a in zip(runs["euler"][m], runs["ab2"][m])] for m in made}
            entry["solvers"] = {"euler": {m: mean_interval(runs["euler"][m]) for m in made},
                                "ab2": {m: mean_interval(runs["ab2"][m]) for m in made},
                                "gain": {m: mean_interval(gain[m]) for m in made}}
        out[setup] = entry
        log(f"{setup}: done")
    return out


def markdown(results: dict, steps: int = 12) -> str:
    """The tables of `measure`: roughness in % per unit step of t, and distances to the converged solution."""
    def cell(v, scale=1.0, digits=2):
        return f"{v[0] * scale:.{digits}f} [{v[1] * scale:.{digits}f}, {v[2] * scale:.{digits}f}]"

    times = next(iter(results.values()))["roughness"].keys()
    lines = ["| task | modality | " + " | ".join(f"t = {t:g}" for t in times) + " |",
             "|---|---|" + "---|" * len(times)]
    for setup, entry in results.items():
        for m in next(iter(entry["roughness"].values())):
            lines.append(f"| {setup} | {m} | " + " | ".join(cell(entry["roughness"][t][m], 100) for t in times) + " |")
    if all("solvers" in e for e in results.values()):
        lines += ["", f"| task | modality | Euler {steps} | AB2 {steps} | gain (Euler / AB2) |",
                  "|---|---|---|---|---|"]
        for setup, entry in results.items():
            s = entry["solvers"]
            for m in s["gain"]:
                lines.append(f"| {setup} | {m} | {cell(s['euler'][m], digits=4)} | {cell(s['ab2'][m], digits=4)} | "
                             f"{cell(s['gain'][m])} |")
    return "\n".join(lines)

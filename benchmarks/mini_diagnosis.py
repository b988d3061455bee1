"""Where a small model's clips go wrong: how far its ODE is from converging, and which latent channels its
generated pictures get wrong, on held-out validation clips.

    python benchmarks/mini_diagnosis.py MODEL CODEC [--clips 4] [--cfg 1 1.5 3] [--out diagnosis.json]
                                        [--sections convergence channels grids profile roughness static]
                                        [--grids euler:shifted ab2:shifted euler:beta ab2:beta]
                                        [--guidance V A] [--shift S]

convergence  |E(N) - E(2N)| / |E(2N)| for Euler at N = 12 ... 192 steps (AVG, the model's guidance and
             without any): a first-order solver halves it with every doubling once inside its asymptotic
             range; before that, no solver's order shows.
channels     A2V driven by each clip's own speech remakes the clip's pictures: per latent channel the
             generated spread against the data's, and the error weighted by the codec's pixel scale of the
             channel, relative to a still copy of the first latent frame, for each video guidance scale.
grids        AVG at 12 steps for each SOLVER:SCHEDULE of --grids: the relative distance to the converged
             solution (2 E(2M) - E(M) on the shifted grid, M = --reference-steps) of the video latents, of the
             video in pixels (the codec's channel scales) and of the audio, per clip.
profile      along an Euler trajectory of AVG (--profile-steps, one clip), per band of noise levels: the
             velocity's summed step-to-step change (its wobble in t included) and its net change across the
             band, each over its size at the band's start, the jump at MA-CFG's switch left out; where the net
             change is large, a coarse grid's step cannot follow it.
roughness    AVG's video at t = 200, 500, 800 on each clip's noisy state: the relative change of the guided
             velocity for a unit step of t in latents (the smoothness tool's figure), in pixels, and per
             latent channel (the codec's channels run from the most pixel variance to the least).
static       A2V: the synthetic clips move only at the mouth and the eyes, and everywhere else each frame's latents
             equal the first frame's (a static element; moving: off by more than 0.05). At 12 steps on `beta`,
             Euler's, AB2's and Adams' (with its corrector) squared distance to the converged solution on the
             static and the moving elements and per channel group, with each solver's gain over Euler; and the
             clean estimate x - sigma v of each clip's real latents noised to sigma, its error on the static and
             the moving elements and per channel group by noise level (a perfect model
             knows every static element at any noise level: the first frame holds it); and the unguided
             velocity's mean squared error against the true target eps - x0 at the same noise levels, on the
             validation clips and on as many clips of the training set (equal when the model does not memorise).
--guidance and --shift set the scales and the shift of grids, profile, roughness and static (default: the model's).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uniavgen_core.checkpoint.loading import CheckpointError  # noqa: E402
from uniavgen_core.mini.pipeline import MINI_SAMPLING, MiniPipeline  # noqa: E402
from uniavgen_core.sampling import flow, sample, seeded_noise  # noqa: E402
from uniavgen_core.sampling import schedule  # noqa: E402
from uniavgen_core.sampling.params import MAX_STEPS  # noqa: E402
from uniavgen_core.sampling.schedule import SCHEDULES  # noqa: E402
from uniavgen_core.sampling.solvers import SOLVERS  # noqa: E402
from uniavgen_core.training import smoothness  # noqa: E402
from uniavgen_core.training.data import DataConfig  # noqa: E402
from uniavgen_core.training.evaluate import held_out  # noqa: E402

def step_counts(most: int) -> list[int]:
    """12, 24, 48, ... up to `most`."""
    return [12 * 2 ** i for i in range(16) if 12 * 2 ** i <= most]


def convergence(pipe: MiniPipeline, clips, params, steps: list[int]) -> dict:
    """{modality: [|E(N) - E(2N)| / |E(2N)| for N in steps[:-1]]} on the generated parts of AVG."""
    jobs = [smoothness.job(pipe, "avg", c, seed=i) for i, c in enumerate(clips)]
    runs = [sample(pipe.model, [j.request for j in jobs], dataclasses.replace(params, steps=n, schedule="shifted"))
            for n in steps]
    out = {}
    for m in ("video", "audio"):
        out[m] = [float((getattr(a, m) - getattr(b, m)).norm() / getattr(b, m).norm()) for a, b in zip(runs, runs[1:])]
    return out


def channels(pipe: MiniPipeline, clips, params) -> dict:
    """Per-channel spread and pixel-weighted error of A2V's generated latents against the clips' own."""
    jobs = [smoothness.job(pipe, "a2v", c, seed=i) for i, c in enumerate(clips)]
    truth = torch.stack([smoothness.clean_state(pipe, c)[0] for c in clips])
    made = sample(pipe.model, [j.request for j in jobs], params).video[:, :, 1:]
    real, still = truth[:, :, 1:], truth[:, :, :1].expand_as(truth[:, :, 1:])
    pixel = pipe.codec.channel_std.view(1, -1, 1, 1, 1)
    dims = (0, 2, 3, 4)
    return {"generated_std": made.std(dim=dims).tolist(), "data_std": real.std(dim=dims).tolist(),
            "pixel_error": ((made - real) * pixel).square().mean(dim=dims).sqrt().tolist(),
            "error_over_still": float(((made - real) * pixel).norm() / ((still - real) * pixel).norm())}


def grids(pipe: MiniPipeline, clips, params, combos: list[str], steps: int = 12, reference_steps: int = 128) -> dict:
    """{"SOLVER:SCHEDULE": {"video"|"pixel"|"audio": [per clip]}}: AVG's distances to the converged solution."""
    jobs = [smoothness.job(pipe, "avg", c, seed=i) for i, c in enumerate(clips)]
    requests = [j.request for j in jobs]
    ref_v, ref_a = smoothness.converged(pipe.model, requests, params, reference_steps)
    pixel = pipe.codec.channel_std.view(-1, 1, 1, 1)
    out = {}
    for combo in combos:
        solver, grid = combo.split(":")
        run = sample(pipe.model, requests, dataclasses.replace(params, steps=steps, solver=solver, schedule=grid))
        rows = {"video": [], "pixel": [], "audio": []}
        for i in range(len(jobs)):
            (v, a), (rv, ra) = (smoothness.generated(jobs, run.video, run.audio, i),
                                smoothness.generated(jobs, ref_v, ref_a, i))
            rows["video"].append(smoothness.relative(v, rv))
            rows["pixel"].append(smoothness.relative(pixel * v, pixel * rv))
            rows["audio"].append(smoothness.relative(a, ra))
        out[combo] = rows
    return out


def channel_roughness(pipe: MiniPipeline, clips, params) -> dict:
    """{t: {"latent": x, "pixel": x, "channels": [48]}}: AVG's video velocity change for t -> t + 1 over the
    generated frames, relative, the mean over the clips (the smoothness tool's figure, in latents)."""
    pixel = pipe.codec.channel_std.view(-1, 1, 1, 1)
    dims = (1, 2, 3)
    out = {}
    for t, jobs, at, after in smoothness.velocity_steps(pipe, "avg", clips, params):
        rows = []
        for i in range(len(jobs)):
            here = smoothness.generated(jobs, at.video, at.audio, i)[0]
            change = smoothness.generated(jobs, after.video, after.audio, i)[0] - here
            rows.append([float(change.norm() / here.norm()), float((pixel * change).norm() / (pixel * here).norm()),
                         change.square().mean(dim=dims) / here.square().mean(dim=dims)])
        out[t] = {"latent": sum(r[0] for r in rows) / len(rows), "pixel": sum(r[1] for r in rows) / len(rows),
                  "channels": (sum(r[2] for r in rows) / len(rows)).sqrt().tolist()}
    return out


MOVING = 0.05                                   # a latent element moves when it leaves its first frame's value by more
GROUPS = ((0, 8), (8, 20), (20, 32), (32, 48))  # channel groups, from the most pixel variance to the least
LEVELS = (0.98, 0.9, 0.7, 0.5, 0.3, 0.1, 0.05, 0.02)     # noise levels of the clean estimates


@dataclasses.dataclass
class A2VClips:
    """A2V's requests for clips and what the static section compares against: the real latents and mel, each
    request's seeded noise, and where frames are generated."""
    requests: list
    truth: torch.Tensor         # [N, 48, F, h, w]
    audio: torch.Tensor         # [N, S, 80]
    noise: torch.Tensor         # [N, 48, F, h, w]
    generated: torch.Tensor     # [N, 48, F, h, w] bool

    @classmethod
    def of(cls, pipe: MiniPipeline, clips) -> A2VClips:
        requests = [smoothness.job(pipe, "a2v", c, seed=i).request for i, c in enumerate(clips)]
        truth, audio = (torch.stack(parts) for parts in zip(*(smoothness.clean_state(pipe, c) for c in clips)))
        generated = torch.zeros(truth.shape, dtype=torch.bool)
        for i, r in enumerate(requests):
            generated[i, :, r.condition.video_cond_frames:] = True
        return cls(requests, truth, audio, torch.cat([seeded_noise(r)[0] for r in requests]), generated)

    def velocities(self, pipe: MiniPipeline, params):
        """(level, noisy latents, velocity) at each of LEVELS, the real latents noised with the seeded noise."""
        velocity = smoothness.guided_velocity(pipe.model, self.requests, params)
        with torch.no_grad():
            for level in LEVELS:
                x = flow.noisy(self.truth, self.noise, level)
                yield level, x, velocity(x, self.audio, float(flow.timestep(torch.tensor(level)))).video


def static(pipe: MiniPipeline, clips, params, steps: int = 12, reference_steps: int = 128) -> dict:
    """A2V's solver error and clean estimates on the clips' static and moving latent elements (module docstring)."""
    a2v = A2VClips.of(pipe, clips)
    moves = (a2v.truth - a2v.truth[:, :, :1]).abs() > MOVING
    parts = {"static": a2v.generated & ~moves, "moving": a2v.generated & moves}
    for lo, hi in GROUPS:
        group = torch.zeros_like(moves)
        group[:, lo:hi] = True
        parts[f"channels {lo}-{hi - 1}"] = a2v.generated & group
    ref = smoothness.converged(pipe.model, a2v.requests, params, reference_steps)[0]
    error = {}
    for solver in ("euler", "ab2", "adams"):
        made = sample(pipe.model, a2v.requests, dataclasses.replace(params, steps=steps, solver=solver,
                                                                    schedule="beta")).video
        error[solver] = {part: float((made - ref)[mask].square().sum()) for part, mask in parts.items()}
    clean = {str(level): {part: float((flow.denoised(x, v, level) - a2v.truth)[mask].square().mean().sqrt())
                          for part, mask in parts.items()}
             for level, x, v in a2v.velocities(pipe, params)}
    return {"moving_share": float(parts["moving"].sum() / a2v.generated.sum()), "squared_error": error,
            "clean_estimate_rms": clean,
            "velocity_mse": {"validation": velocity_mse(pipe, a2v, params),
                             "training": velocity_mse(pipe, A2VClips.of(pipe, training_clips(len(clips))), params)}}


def training_clips(count: int, data: DataConfig = DataConfig()) -> list:
    """The first `count` clips of the training set the small model's recipe makes."""
    return data.make_clips(data.seeds()[:count])


def velocity_mse(pipe: MiniPipeline, a2v: A2VClips, params) -> dict:
    """{noise level: mean squared error of A2V's unguided velocity against eps - x0} over the generated frames."""
    target = flow.velocity(a2v.truth, a2v.noise)
    return {str(level): float((v - target)[a2v.generated].square().mean())
            for level, _, v in a2v.velocities(pipe, dataclasses.replace(params, video_cfg=1.0))}


BANDS = (1.0, 0.97, 0.9, 0.8, 0.6, 0.4, 0.3, 0.2, 0.1, 0.05, 0.0)      # noise levels, the profile's bands


def profile(pipe: MiniPipeline, clip, params, steps: int = 256) -> list[dict]:
    """Per band of noise levels along an Euler trajectory of AVG on the shifted grid: the velocity's summed
    step-to-step change and its net change across the band, each over its norm at the band's start. The jump at
    MA-CFG's switch (a grid point) is left out: in the band that holds it, both sums run on each side of it."""
    seen = []
    switch = schedule.macfg_switch(params.macfg_fraction, params.shift)

    def record(velocity):
        def call(video, audio, t, macfg=None):
            out = velocity(video, audio, t, macfg=macfg)
            seen.append((flow.sigma(t), out.video.clone(), out.audio.clone(), t > switch))
            return out
        return call

    job = smoothness.job(pipe, "avg", clip, seed=0)
    sample(pipe.model, [job.request], dataclasses.replace(params, steps=steps, schedule="shifted"),
           wrap_velocity=record)
    rows = []
    for high, low in zip(BANDS, BANDS[1:]):
        idx = [i for i, entry in enumerate(seen) if low < entry[0] <= high]
        if len(idx) < 2:
            continue
        sides = [[i for i in idx if seen[i][3] == field] for field in (True, False)]
        sides = [side for side in sides if side]
        row = {"band": [low, high], "evaluations": len(idx), "switch": len(sides) > 1}
        for m, k in (("video", 1), ("audio", 2)):
            size = float(seen[idx[0]][k].norm())
            row[m] = {"total": sum(float((seen[i + 1][k] - seen[i][k]).norm()) for side in sides for i in side[:-1])
                      / size,
                      "net": sum(float((seen[side[-1]][k] - seen[side[0]][k]).norm()) for side in sides) / size}
        rows.append(row)
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("codec")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--cfg", type=float, nargs="+", default=[1.0, 1.5, 3.0], help="video guidance scales")
    parser.add_argument("--max-steps", type=int, default=192, help="the most Euler steps of the convergence check")
    parser.add_argument("--out", default=None)
    parser.add_argument("--sections", nargs="+", choices=("convergence", "channels", "grids", "profile", "roughness",
                                                              "static"),
                        default=["convergence", "channels"])
    parser.add_argument("--grids", nargs="+", default=["euler:shifted", "ab2:shifted", "euler:beta", "ab2:beta"],
                        metavar="SOLVER:SCHEDULE", help="the solvers and grids of the grids section")
    parser.add_argument("--guidance", type=float, nargs=2, default=None, metavar=("VIDEO", "AUDIO"),
                        help="guidance scales of the grids, profile, roughness and static sections (default: the "
                             "model's)")
    parser.add_argument("--shift", type=float, default=MINI_SAMPLING.shift,
                        help="the shift of the grids, profile, roughness and static sections (default: the model's)")
    parser.add_argument("--reference-steps", type=int, default=128, help="Euler steps M of the grids' reference")
    parser.add_argument("--profile-steps", type=int, default=256, help="Euler steps of the profile's trajectory")
    args = parser.parse_args(argv)
    steps = step_counts(args.max_steps)
    if len(steps) < 2 or args.clips < 1:
        parser.error("--max-steps must be at least 24 and --clips at least 1")
    for combo in args.grids:
        solver, _, grid = combo.partition(":")
        if solver not in SOLVERS or grid not in SCHEDULES:
            parser.error(f"--grids {combo}: give SOLVER:SCHEDULE with a solver of {', '.join(SOLVERS)} and a "
                         f"schedule of {', '.join(SCHEDULES)}")
    if not 1 <= args.reference_steps <= MAX_STEPS // 2:
        parser.error(f"--reference-steps {args.reference_steps}: must be from 1 to {MAX_STEPS // 2} (the reference "
                     f"also runs twice as many)")
    if not 16 <= args.profile_steps <= MAX_STEPS:
        parser.error(f"--profile-steps {args.profile_steps}: must be from 16 to {MAX_STEPS}")
    guidance = {} if args.guidance is None else {"video_cfg": args.guidance[0], "audio_cfg": args.guidance[1]}
    try:
        guided = dataclasses.replace(MINI_SAMPLING, shift=args.shift, **guidance)
    except ValueError as err:
        parser.error(f"--shift / --guidance: {err}")
    torch.set_num_threads(1)
    try:
        pipe = MiniPipeline(args.model, args.codec)
    except (CheckpointError, OSError) as err:
        parser.error(str(err))
    clips = held_out(args.clips, "validation")
    unguided = dataclasses.replace(MINI_SAMPLING, video_cfg=1.0, audio_cfg=1.0)
    result = {"steps": steps}
    if "convergence" in args.sections:
        result["convergence"] = {"guided": convergence(pipe, clips, MINI_SAMPLING, steps),
                                 "unguided": convergence(pipe, clips, unguided, steps)}
    if "channels" in args.sections:
        result["channels"] = {str(c): channels(pipe, clips, dataclasses.replace(MINI_SAMPLING, video_cfg=c))
                              for c in args.cfg}
    if "grids" in args.sections:
        result["grids"] = grids(pipe, clips, guided, args.grids, reference_steps=args.reference_steps)
    if "roughness" in args.sections:
        result["roughness"] = channel_roughness(pipe, clips, guided)
    if "static" in args.sections:
        result["static"] = static(pipe, clips, guided, reference_steps=args.reference_steps)
    if "profile" in args.sections:
        result["profile"] = profile(pipe, clips[0], guided, args.profile_steps)
    for name, rows in result.get("convergence", {}).items():
        for m, d in rows.items():
            print(f"Euler {name} {m}: |E(N) - E(2N)| for N = {', '.join(map(str, steps[:-1]))}: "
                  + ", ".join(f"{x:.4f}" for x in d))
    for cfg, entry in result.get("channels", {}).items():
        worst = sorted(range(len(entry["pixel_error"])), key=lambda c: -entry["pixel_error"][c])[:5]
        print(f"video guidance {cfg}: error / still copy {entry['error_over_still']:.2f}; largest pixel error in "
              + ", ".join(f"channel {c} (spread {entry['generated_std'][c]:.2f} vs {entry['data_std'][c]:.2f})"
                          for c in worst))
    for combo, rows in result.get("grids", {}).items():
        print(f"{combo} at 12 steps, distance to the converged solution per clip: "
              + "; ".join(f"{m} " + ", ".join(f"{x:.4f}" for x in d) for m, d in rows.items()))
    for t, row in result.get("roughness", {}).items():
        chans = row["channels"]
        print(f"t = {t:g}: video velocity change for a unit step of t {100 * row['latent']:.2f} % in latents, "
              f"{100 * row['pixel']:.2f} % in pixels; channels 0-4 "
              + ", ".join(f"{100 * x:.1f}" for x in chans[:5]) + " %, the last five "
              + ", ".join(f"{100 * x:.1f}" for x in chans[-5:]) + " %")
    for row in result.get("profile", []):
        print(f"noise {row['band'][0]:.2f}-{row['band'][1]:.2f} ({row['evaluations']} evaluations"
              f"{', MA-CFG switch left out' if row['switch'] else ''}): velocity change "
              + "; ".join(f"{m} total {row[m]['total']:.3f}, net {row[m]['net']:.3f}" for m in ("video", "audio")))
    if "static" in result:
        entry = result["static"]
        error = entry["squared_error"]
        print(f"A2V, {100 * entry['moving_share']:.1f} % of the generated latent elements move; at 12 steps on beta:")
        for part in error["euler"]:
            print(f"  {part}: squared distance euler {error['euler'][part]:.1f}, ab2 {error['ab2'][part]:.1f}, adams "
                  f"{error['adams'][part]:.1f}; gain ab2 {(error['euler'][part] / error['ab2'][part]) ** 0.5:.2f}, "
                  f"adams {(error['euler'][part] / error['adams'][part]) ** 0.5:.2f}")
        for level, row in entry["clean_estimate_rms"].items():
            print(f"  noise {level}: clean estimate's rms error " + ", ".join(f"{k} {v:.3f}" for k, v in row.items())
                  + "; unguided velocity's squared error, validation / training clips "
                  + " / ".join(f"{entry['velocity_mse'][split][level]:.3f}" for split in ("validation", "training")))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

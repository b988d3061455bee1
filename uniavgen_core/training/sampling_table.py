"""Quality against model evaluations for solver x steps x schedule x step-cache settings, on a small model
(the command line: python -m uniavgen_core.cli.sampling_table, or make sampling-table-mini).

For every task (AVG, A2V, V2A) on held-out clips, every setting samples the same clips from the same noise
and is measured by
    the relative L2 distance of each generated modality to the converged solution: Euler's Richardson
        extrapolation 2 E(2M) - E(M) on a grid with MA-CFG's switch on it (smoothness.converged);
    the lip-sync metric of the decoded clip (median r0 with its bootstrap interval, training/lipsync.py);
    the model evaluations per clip (guidance passes run, SampleResult.evaluations) and the wall time of
        the sampling, in the same run; a step cache's settings sample one clip at a time (sample_clips).
"""
from __future__ import annotations

import dataclasses
import json
import math
import time

import torch

from ..mini.pipeline import MINI_SAMPLING, MiniPipeline
from ..sampling import SampleResult, SamplingParams, Task, sample
from ..sampling.presets import PRESETS, Preset, named_solver
from ..synthetic.clips import Clip
from . import lipsync
from .evaluate import signals
from .smoothness import converged, generated, generates, job, mean_interval, relative

SETUPS = ("avg", "a2v", "v2a")


def candidates() -> dict[str, Preset]:
    """The settings compared, named family[ grid]@steps: Euler on the release's schedule as the baseline, and
    Euler, the higher-order solvers (abm: Adams-Bashforth with the Adams-Moulton corrector) and the step cache
    on the two grids with MA-CFG's switch on them
    (`shifted`, the release's shape; `beta`, denser at both ends); then Euler, AB2, UniPC and Adams with its corrector
    on `beta_clean` (leaning to the clean end), and abm2-dub: Adams with its corrector, the dubbed audio by UniPC up
    to MA-CFG's switch (`fast`'s solver), on `beta` and `beta_clean`."""
    out = {f"euler@{n}": Preset(n) for n in (8, 12, 16, 25, 50)}
    out.update({f"euler beta@{n}": Preset(n, schedule="beta") for n in (8, 12, 16, 25)})
    multistep = (("ab2", "ab2", {}), ("dpmpp_2m", "dpmpp_2m", {}), ("unipc-o2", "unipc", {"order": 2}),
                 ("unipc-o3", "unipc", {"order": 3}), ("ab3", "adams", {"order": 3, "corrector": False}),
                 ("abm2", "adams", {"order": 2, "corrector": True}), ("abm3", "adams", {"order": 3, "corrector": True}))
    for schedule, suffix in (("shifted", ""), ("beta", " beta")):
        for n in (8, 10, 12, 16):
            for family, solver, options in multistep:
                out[f"{family}{suffix}@{n}"] = Preset(n, solver, options, schedule)
        for n in (6, 8):
            out[f"heun{suffix}@{n}"] = Preset(n, "heun", schedule=schedule)
        for n in (16, 20, 25):
            for threshold in (0.05, 0.1, 0.2):
                out[f"unipc-o2{suffix} cache {threshold:g}@{n}"] = Preset(n, "unipc", {"order": 2}, schedule,
                                                                           threshold)
                out[f"ab2{suffix} cache {threshold:g}@{n}"] = Preset(n, "ab2", {}, schedule, threshold)
    for n in (16, 20, 25):
        out[f"euler cache 0.1@{n}"] = Preset(n, cache=0.1)
        for threshold in (0.02, 0.05, 0.1, 0.2):
            out[f"abm2 beta cache {threshold:g}@{n}"] = Preset(n, "adams", {"order": 2, "corrector": True}, "beta",
                                                               threshold)
    out["euler beta_clean@12"] = Preset(12, schedule="beta_clean")
    dubbing = named_solver("adams_unipc_dubbing")
    for n in (10, 12, 16):
        for family, solver, options in (m for m in multistep if m[0] in ("ab2", "unipc-o2", "abm2", "abm3")):
            out[f"{family} beta_clean@{n}"] = Preset(n, solver, options, "beta_clean")
        for schedule, suffix in (("beta", " beta"), ("beta_clean", " beta_clean")):
            out[f"abm2-dub{suffix}@{n}"] = Preset(n, *dubbing, schedule)
    out.update({f"preset {name}@{p.steps}": p for name, p in PRESETS.items()})
    return out


def sync_summary(setup: str, clips: list[Clip], made) -> dict:
    scores = [lipsync.sync_score(*signals(Task[setup.upper()], c, g.frames, g.wave)) for c, g in zip(clips, made)]
    s = lipsync.summarise(scores)
    return {"median_r0": s.median_r0, "r0_ci": s.r0_ci, "n_frozen": s.n_frozen}


def as_json(preset: Preset) -> dict:
    """The preset as its row stores it, also after a JSON round trip."""
    return json.loads(json.dumps(dataclasses.asdict(preset)))


def run_key(reference_steps: int, clips: int, tag: str) -> dict:
    """What a task's rows were measured with: the reference's steps, the clip count and the tag (files)."""
    return {"reference_steps": reference_steps, "clips": clips, "tag": tag}


def measured_with(entry: dict, key: dict) -> bool:
    return all(entry.get(k) == v for k, v in key.items())


def settings_of(entry: dict) -> dict:
    """A task's rows, one per setting (the entry's other keys say how it was measured)."""
    return {k: v for k, v in entry.items() if isinstance(v, dict)}


def copy_twins(entry: dict, settings: dict[str, Preset]) -> None:
    """A task's rows for the settings equal to one measured under another name (a preset), taken from it:
    sampling is seeded, so measuring it again gives the same row."""
    for name, preset in settings.items():
        if name not in entry:
            wanted = as_json(preset)
            twin = next((row for row in settings_of(entry).values() if row["preset"] == wanted), None)
            if twin is not None:
                entry[name] = twin


def sample_clips(pipe: MiniPipeline, requests: list, params: SamplingParams) -> tuple[SampleResult, list[int]]:
    """The batch sampled as a user meets it, and each clip's model evaluations. Without a step cache every clip
    runs the same passes, so the batch runs at once. A step cache decides for the whole batch it is given (a pass
    runs when any request needs it), so its settings run one clip at a time, each clip deciding for itself as it
    does when sampled alone."""
    if not params.cache:
        result = sample(pipe.model, requests, params, device=pipe.device)
        return result, [result.evaluations] * len(requests)
    parts = [sample(pipe.model, [r], params, device=pipe.device) for r in requests]
    counts = [p.evaluations for p in parts]
    return SampleResult(torch.cat([p.video for p in parts]), torch.cat([p.audio for p in parts]),
                        evaluations=max(counts)), counts


def per_clip(row: dict) -> bool:
    """Whether a row was measured as sample_clips measures it (a step cache's rows used to be measured on the
    whole batch at once)."""
    return "evaluations_range" in row or not row["preset"].get("cache")


def count_range(counts: list[int]) -> str:
    """Model evaluations per clip in words: the count, or its range where the clips differ (the step cache)."""
    low, high = min(counts), max(counts)
    return f"{high}" if low == high else f"{low}-{high}"


def evaluations_cell(row: dict) -> str:
    """A row's model evaluations per clip (count_range)."""
    return count_range(row.get("evaluations_range", [row["evaluations"]]))


def measure(pipe: MiniPipeline, clips: list[Clip], settings: dict[str, Preset], params: SamplingParams = MINI_SAMPLING,
            reference_steps: int = 128, log=print, tag: str = "", previous: dict | None = None, save=None) -> dict:
    """{setup: {"reference_steps": M, "clips": n, "tag": tag, name: {"preset", "evaluations", "seconds", "distance":
    {modality: (mean, low, high)}, "sync": {...}}}} for the modalities each task generates.

    previous: the results of an interrupted run; a task's rows measured there with the same reference, clip
    count and tag (the files measured) are kept (but those of a setting whose preset has changed since) and
    only the settings missing there run (a setting equal to one measured under another name takes its row).
    save(results) is called
    after every setting with those results and the earlier ones of the tasks not reached yet, so that an
    interruption loses one setting at most."""
    out = {}
    for setup in SETUPS:
        how = run_key(reference_steps, len(clips), tag)
        kept = (previous or {}).get(setup, {})
        same = measured_with(kept, how)
        entry = out[setup] = {**how, **{k: v for k, v in settings_of(kept).items()
                                        if same and per_clip(v) and (k not in settings or
                                                                     v["preset"] == as_json(settings[k]))}}
        copy_twins(entry, settings)
        todo = [name for name in settings if name not in entry]
        if not todo:
            continue
        jobs = [job(pipe, setup, c, seed=i) for i, c in enumerate(clips)]
        requests = [j.request for j in jobs]
        start = time.perf_counter()
        ref_v, ref_a = converged(pipe.model, requests, params, reference_steps)
        log(f"{setup}: converged solution in {time.perf_counter() - start:.0f} s")
        modalities = generates(setup)
        for name in todo:
            if name in entry:
                continue
            preset = settings[name]
            start = time.perf_counter()
            result, counts = sample_clips(pipe, requests, preset.apply(params))
            seconds = time.perf_counter() - start
            rows = {"video": [], "audio": []}
            for i in range(len(jobs)):
                got, ref = generated(jobs, result.video, result.audio, i), generated(jobs, ref_v, ref_a, i)
                rows["video"].append(relative(got[0], ref[0]))
                rows["audio"].append(relative(got[1], ref[1]))
            distance = {m: mean_interval(v) for m, v in rows.items() if modalities[m]}
            entry[name] = {"preset": as_json(preset), "evaluations": max(counts),
                           "evaluations_range": [min(counts), max(counts)], "seconds": seconds,
                           "distance": distance, "sync": sync_summary(setup, clips, pipe.decode(result))}
            log(f"{setup} {name}: {evaluations_cell(entry[name])} evaluations, {seconds:.1f} s, " +
                ", ".join(f"{m} {d[0]:.4f}" for m, d in distance.items()))
            copy_twins(entry, settings)
            if save:        # the tasks not reached yet keep their earlier rows, should this run stop here
                save({**(previous or {}), **out})
    return out


def markdown(results: dict) -> str:
    """One table per task: evaluations, time, distances and lip sync per setting, fewest evaluations first."""
    def cell(v, digits=4):
        return f"{v[0]:.{digits}f} [{v[1]:.{digits}f}, {v[2]:.{digits}f}]"

    blocks = []
    for setup, entry in results.items():
        rows = settings_of(entry)
        modalities = list(next(iter(rows.values()))["distance"])
        lines = [f"**{setup.upper()}** (distance to the converged solution, Richardson from "
                 f"{entry['reference_steps']}/{2 * entry['reference_steps']}-step Euler)", "",
                 "| setting | evaluations | seconds | " + " | ".join(modalities) + " | lip sync r0 |",
                 "|---|---|---|" + "---|" * len(modalities) + "---|"]
        for name, r in sorted(rows.items(), key=lambda kv: (kv[1]["evaluations"], kv[0])):
            sync = r["sync"]
            lines.append(f"| {name} | {evaluations_cell(r)} | {r['seconds']:.1f} | " +
                         " | ".join(cell(r["distance"][m]) for m in modalities) +
                         f" | {sync['median_r0']:.3f} [{sync['r0_ci'][0]:.3f}, {sync['r0_ci'][1]:.3f}] |")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


GRID_STYLES = {"beta": "-", "beta_clean": (0, (6, 1.5, 1, 1.5, 1, 1.5)), "shifted": ":", "release": "--"}


def plot(results: dict, path: str) -> None:
    """Distance to the converged solution against evaluations per clip (log-log), a panel per task and modality:
    a line per solver without the cache (colour: the solver; the grid's line style: solid `beta`, dash-dot-dot
    `beta_clean`, dotted `shifted`, dashed the release's), the step-cache settings as grey crosses, the presets
    circled and the release's distance drawn across."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter, ScalarFormatter

    panels = [(s, m) for s, e in results.items() for m in next(iter(settings_of(e).values()))["distance"]]
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.6), squeeze=False)
    colours = {}
    for ax, (setup, modality) in zip(axes[0], panels):
        lines: dict[str, list] = {}
        presets: dict[str, tuple] = {}
        for name, r in settings_of(results[setup]).items():
            point = (r["evaluations"], r["distance"][modality][0])
            if name.startswith("preset "):
                presets[name.split()[1].split("@")[0]] = point
                ax.scatter(*point, s=110, facecolors="none", edgecolors="k", zorder=5)
                if name.startswith("preset release"):          # what the release reaches, across the panel
                    ax.axhline(point[1], color="k", lw=0.7, ls="-.", zorder=1)
            elif " cache " in name:
                ax.scatter(*point, marker="x", s=14, color="0.6", zorder=2)
            else:
                lines.setdefault(name.split("@")[0], []).append(point)
        for preset, point in presets.items():      # labelled on the side away from the nearest other preset
            others = [p for n, p in presets.items() if n != preset]
            log_point = tuple(map(math.log, point))
            nearest = min(others, default=(0, 0), key=lambda p: math.dist(tuple(map(math.log, p)), log_point))
            left = nearest[0] > point[0]
            ax.annotate(preset, point, textcoords="offset points", xytext=(-8, -3) if left else (6, 6),
                        ha="right" if left else "left", fontsize=8, zorder=6)
        for family, points in sorted(lines.items()):
            solver, grid = (family.split(" ") + ["shifted" if family != "euler" else "release"])[:2]
            colour = colours.setdefault(solver, f"C{len(colours) % 10}")
            ax.plot(*zip(*sorted(points)), ls=GRID_STYLES[grid], marker="o", ms=3, color=colour, lw=1.3, zorder=3)
        ax.set(xscale="log", yscale="log", xlabel="model evaluations per clip", title=f"{setup.upper()} {modality}")
        ax.set_xticks([8, 12, 16, 24, 32, 50, 100])
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.grid(True, which="both", alpha=0.3)
    axes[0, 0].set_ylabel("relative L2 to the converged solution")
    handles = [plt.Line2D([], [], color=c, marker="o", ms=3, label=s) for s, c in colours.items()]
    handles += [plt.Line2D([], [], color="k", ls=ls, label=f"{grid} grid") for grid, ls in GRID_STYLES.items()]
    handles += [plt.Line2D([], [], color="0.6", marker="x", ls="", label="step cache"),
                plt.Line2D([], [], color="k", marker="o", mfc="none", ms=9, ls="", label="preset"),
                plt.Line2D([], [], color="k", lw=0.7, ls="-.", label="the release's distance")]
    fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)

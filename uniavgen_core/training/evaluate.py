"""Lip-sync evaluation of a small model on held-out synthetic clips (the command line:
python -m uniavgen_core.cli.evaluate, or make evaluate-mini).

For each held-out clip (seeds no training or codec clip used) the model generates:
    AVG  speech and video from the clip's first picture, transcript and caption;
    A2V  video driven by the clip's speech;
    V2A  speech for the clip's pictures (dubbing).
Sync is measured between the mouth read from pixels and the audio's low-band energy
(training/lipsync.py), against the data's own ceiling (the real pairs, raw and through the
codec) and a shuffled-pair null, with bootstrap 95% intervals. Ablations on the same seeds and
noise: both interactions off, and MA-CFG fraction 0 / 0.5 / 1.

Picture quality: A2V, driven by the clip's own speech, should remake the clip's pictures. The face-region
error (RMSE over the clip's face mask, the pictures after the first) of the generated pictures is set against
two floors: the real pictures through the codec (what any model in this latent space can at best reach) and a
still copy of the first picture (a model that only knows the face).
"""
from __future__ import annotations

import dataclasses
import time

import torch

from ..mini.pipeline import MINI_SAMPLING, MiniPipeline
from ..sampling import SamplingParams, Task
from ..sampling import tasks as table
from ..synthetic.clips import Clip
from ..units import SAMPLE_RATE
from . import lipsync
from .data import DataConfig
from .smoothness import mean_interval

TASKS = {"avg": Task.AVG, "a2v": Task.A2V, "v2a": Task.V2A}


def held_out(count: int, split: str = "test", data: DataConfig = DataConfig()) -> list[Clip]:
    return data.make_clips(data.held_out_seeds(count, split))


def generate(pipe: MiniPipeline, clips: list[Clip], task: Task, params: SamplingParams, chunk: int = 16):
    """Generated (frames, wave) per clip; seeds are the clip indices, so variants share noise."""
    out = []
    for lo in range(0, len(clips), chunk):
        jobs = [pipe.job(task, c.text, c.caption, c.frames[0], seed=lo + i, driving_wave=c.wave,
                         driving_frames=c.frames) for i, c in enumerate(clips[lo: lo + chunk])]
        out.extend(pipe.generate(jobs, params))
    return out


def signals(task: Task, clip: Clip, frames: torch.Tensor, wave: torch.Tensor):
    """(mouth track, audio envelope) of one generated clip: the generated side(s) of the task,
    the clip's own pictures or speech for the side that was given."""
    spec = table.TASKS[task]
    pictures = clip.frames if spec.video == table.Given.ALL else frames
    speech = clip.wave if spec.audio == table.Given.ALL else wave
    n = min(pictures.shape[0], frames.shape[0])
    mouth = lipsync.mouth_openness(pictures[:n], clip.mouth_box)
    env = lipsync.audio_envelope(speech, SAMPLE_RATE, n)
    return mouth, env


def face_error(frames: torch.Tensor, clip: Clip) -> float:
    """RMSE of `frames` against the clip's pictures over its face mask, the pictures after the first."""
    n = min(frames.shape[0], clip.frames.shape[0])
    mask = clip.face_mask.float()[None, :, :, None]
    err = (frames[1:n].float() - clip.frames[1:n].float()).square() * mask
    return float((err.sum() / (mask.sum() * 3 * (n - 1))).sqrt())


def face_floors(pipe: MiniPipeline, clips: list[Clip]) -> dict:
    """The face-region error of the real pictures through the codec and of a still copy of the first picture,
    per clip."""
    return {"codec": [face_error(pipe.codec.decode(pipe.codec.encode(c.frames.float())), c) for c in clips],
            "still": [face_error(c.frames[:1].expand_as(c.frames), c) for c in clips]}


def mean_ci(values) -> dict:
    """{"mean", "ci"}: the mean with its bootstrap 95 % interval."""
    mean, low, high = mean_interval(values)
    return {"mean": mean, "ci": [low, high]}


def summary_dict(scores) -> dict:
    s = lipsync.summarise(scores)
    return dataclasses.asdict(s)


def evaluate(model: str, codec: str, clips: int = 32, params: SamplingParams = MINI_SAMPLING,
             ablations: bool = True, split: str = "test", detrend_frames: int = lipsync.DETREND_FRAMES,
             log=print) -> dict:
    """Sync of every task and variant, scored with the high-passed metric (`detrend_frames`) against its shuffled
    null ("minus_null": the paired difference, clip i's real pair minus clip i's mouth with another clip's
    audio); each entry also carries "plain": the same pairs scored without the high-pass, for comparison."""
    def score_pairs(pairs, window=detrend_frames):
        return [lipsync.sync_score(m, e, detrend_frames=window) for m, e in pairs]

    def null_scores(pairs, window=detrend_frames):
        return lipsync.shuffled_null([m for m, _ in pairs], [e for _, e in pairs], detrend_frames=window)

    def null(pairs, window=detrend_frames):
        return summary_dict(null_scores(pairs, window))

    def differences(a, b):
        return {field: dataclasses.asdict(lipsync.paired_difference(a, b, field=field))
                for field in ("r0", "confidence")}

    def summary(pairs, window=detrend_frames):
        return summary_dict(score_pairs(pairs, window))

    pipe = MiniPipeline(model, codec)
    data = held_out(clips, split)
    real = [(lipsync.mouth_openness(c.frames, c.mouth_box),
             lipsync.audio_envelope(c.wave, SAMPLE_RATE, c.frames.shape[0])) for c in data]
    through_codec = [(lipsync.mouth_openness(pipe.codec.decode(pipe.codec.encode(c.frames)), c.mouth_box), e)
                     for c, (_, e) in zip(data, real)]
    results = {"clips": clips, "split": split, "detrend_frames": detrend_frames,
               "params": {k: v for k, v in dataclasses.asdict(params).items() if k != "schedule_dtype"},
               "ceiling": summary(real), "ceiling_codec": summary(through_codec), "null_real": null(real),
               "plain": {"ceiling": summary(real, 0), "ceiling_codec": summary(through_codec, 0),
                         "null_real": null(real, 0)},
               "face": {k: mean_ci(v) for k, v in face_floors(pipe, data).items()}, "tasks": {}}
    variants = {"default": params}
    if ablations:
        variants.update({"interactions_off": dataclasses.replace(params, interactions=False),
                         "macfg_0": dataclasses.replace(params, macfg_fraction=0.0),
                         "macfg_1": dataclasses.replace(params, macfg_fraction=1.0)})
    for name, task in TASKS.items():
        per_variant = {}
        for variant, p in variants.items():
            if variant.startswith("macfg") and not table.TASKS[task].joint:     # MA-CFG acts on the pair
                continue
            start = time.perf_counter()
            made = generate(pipe, data, task, p)
            seconds = time.perf_counter() - start
            pairs = [signals(task, c, g.frames, g.wave) for c, g in zip(data, made)]
            scores, shuffled = score_pairs(pairs), null_scores(pairs)
            entry = {"summary": summary_dict(scores), "null": summary_dict(shuffled),
                     "minus_null": differences(scores, shuffled),
                     "plain": {"summary": summary(pairs, 0), "null": null(pairs, 0)},
                     "seconds": seconds, "scores": scores}
            if table.TASKS[task].video != table.Given.ALL and table.TASKS[task].audio == table.Given.ALL:
                entry["face"] = mean_ci([face_error(g.frames, c) for c, g in zip(data, made)])
            per_variant[variant] = entry
            log(f"{name} {variant}: median r0 {entry['summary']['median_r0']:.3f}, confidence "
                f"{entry['summary']['mean_confidence']:.3f} (null {entry['null']['mean_confidence']:.3f}), "
                f"{seconds:.1f} s")
        for variant, entry in per_variant.items():
            if variant != "default":
                entry["default_minus_this"] = differences(per_variant["default"]["scores"], entry["scores"])
        for entry in per_variant.values():
            entry.pop("scores")
        results["tasks"][name] = per_variant
    return results


def markdown(results: dict) -> str:
    """The results as tables of median r0 and mean confidence with their 95% intervals: the high-passed metric,
    then the plain correlation of the same pairs."""
    def cell(s):
        lo, hi = s["r0_ci"]
        clo, chi = s["confidence_ci"]
        return (f"{s['median_r0']:.2f} [{lo:.2f}, {hi:.2f}] | {s['mean_confidence']:.3f} [{clo:.3f}, {chi:.3f}] | "
                f"{s['frac_offset0']:.2f}")

    def table(ceilings, rows_of):
        rows = ["| pairs | median r at offset 0 [95% CI] | mean confidence [95% CI] | offset 0 share |",
                "|---|---|---|---|",
                f"| real clips (data ceiling) | {cell(ceilings['ceiling'])} |",
                f"| real clips through the codec | {cell(ceilings['ceiling_codec'])} |",
                f"| real clips, shuffled pairs (null) | {cell(ceilings['null_real'])} |"]
        for task, variants in results["tasks"].items():
            for variant, entry in variants.items():
                entry = rows_of(entry)
                if entry is None:
                    continue
                rows.append(f"| {task.upper()} {variant.replace('_', ' ')} | {cell(entry['summary'])} |")
                if "null" in entry and variant == "default":
                    rows.append(f"| {task.upper()} shuffled (null) | {cell(entry['null'])} |")
        return "\n".join(rows) + "\n"

    def diff(d):
        return f"{d['mean']:+.3f} [{d['ci'][0]:+.3f}, {d['ci'][1]:+.3f}]"

    out = f"High-passed over {results['detrend_frames']} frames:\n\n" + table(results, lambda e: e)
    out += ("\nEach task against its own shuffled pairs (paired by clip, mean difference [95% CI]):\n\n"
            "| task | r at offset 0 | confidence |\n|---|---|---|\n")
    for task, variants in results["tasks"].items():
        d = variants["default"]["minus_null"]
        out += f"| {task.upper()} | {diff(d['r0'])} | {diff(d['confidence'])} |\n"
    if "face" in results:
        def face(e):
            return f"{e['mean']:.4f} [{e['ci'][0]:.4f}, {e['ci'][1]:.4f}]"
        out += ("\nFace-region error against the real pictures (RMSE in [0, 1] units, mean [95% CI]):\n\n"
                "| pictures | error |\n|---|---|\n"
                f"| real, through the codec (floor) | {face(results['face']['codec'])} |\n"
                f"| a still copy of the first picture | {face(results['face']['still'])} |\n")
        for task, variants in results["tasks"].items():
            for variant, entry in variants.items():
                if "face" in entry:
                    out += f"| {task.upper()} {variant.replace('_', ' ')} | {face(entry['face'])} |\n"
    if "plain" in results:
        out += "\nPlain correlation (no high-pass), same pairs:\n\n" + table(results["plain"], lambda e: e.get("plain"))
    return out

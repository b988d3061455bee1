"""Long talks on a small model, three ways, measured at their joins (training/seams.py) on held-out faces and
voices:

- continuation: frontend/long.py's driver, segments continuing the last `overlap` latent frames and their sound;
- chain: the last-picture chain, each clip a plain job whose reference picture is the previous clip's last
  picture (AVG: whose cloned voice is the previous clip's speech), clips laid end to end;
- single: one generation of the whole length (up to units.MAX_SECONDS), measured at the continuation's joins.

A2V is driven by a synthetic recording in the clip's own voice (sentences the training never drew); AVG speaks
a transcript drawn the same way, `seconds` long at the driver's speaking rate. A plain clip of the trained
length per face gives the picture change inside one generation that the long ones are held against.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from .. import units
from ..audio.inputs import fit_to_frames
from ..frontend.long import SPEAKING_RATE, share_transcript
from ..mini.pipeline import MINI_SAMPLING, MiniPipeline
from ..sampling import SamplingParams, Task
from ..synthetic.clips import Clip, recording
from ..synthetic.sentences import sentence
from ..units import FPS, SAMPLE_RATE
from . import seams
from .evaluate import mean_ci

TALKS = ((Task.A2V, "recording"), (Task.AVG, "transcript"))    # what drives each
RECORDING_SEED = 7_000_000      # + clip index: the recordings' and transcripts' sentences


@dataclasses.dataclass
class Talk:
    frames: torch.Tensor        # [T, H, W, 3]
    wave: torch.Tensor          # [N]: A2V the driving recording, AVG the generated speech
    joins: list[int]            # pictures where a segment's new part starts


def transcript(seconds: float, seed: int) -> str:
    """Sentences of about `seconds` at the driver's English speaking rate."""
    rng = np.random.default_rng(seed)
    text = ""
    while len(text) < seconds * SPEAKING_RATE["en"]:
        text = f"{text} {sentence(rng, max_words=12, min_words=5)}".strip()
    return text


def continuation(pipe: MiniPipeline, clip: Clip, task: Task, given: dict, seed: int, params: SamplingParams,
                 overlap: int) -> Talk:
    inputs = pipe.inputs(task, given.get("text", ""), clip.caption, clip.frames[0], seed,
                         driving_wave=given.get("wave"), seconds=given.get("seconds"))
    result, made = pipe.long(inputs, params, overlap=overlap)
    wave = fit_to_frames(given["wave"], result.audio.shape[0])[0] if "wave" in given else made.wave
    return Talk(made.frames, wave, seams.join_pictures(result.segments))


def chain(pipe: MiniPipeline, clip: Clip, task: Task, given: dict, seed: int, params: SamplingParams,
          total_pictures: int) -> Talk:
    """Plain clips of the trained length; clip n + 1's reference picture is clip n's last, which it repeats as
    its picture 0, so each adds trained - 1 pictures (and their sound)."""
    trained = pipe.trained_frames
    new = trained - 1
    count = -(-(total_pictures - 1) // new)
    texts = share_transcript(given["text"], [new / FPS] * count, SPEAKING_RATE["en"]) if "text" in given else None
    reference, frames, waves, joins = clip.frames[0], [], [], []
    voice = None
    for n in range(count):
        extra = {}
        if "wave" in given:
            first = n * new * SAMPLE_RATE // FPS
            extra["driving_wave"] = given["wave"][first: first + units.mel_frames(trained) * units.HOP]
        elif voice is not None:
            extra.update(voice_wave=voice[0], voice_text=voice[1])
        kind = Task.RAVG if voice is not None else task
        job = pipe.job(kind, texts[n] if texts else "", clip.caption, reference, seed + n, **extra)
        made = pipe.generate([job], params)[0]
        keep = made.frames if n == 0 else made.frames[1:]
        if n:
            joins.append(sum(f.shape[0] for f in frames))
        frames.append(keep)
        start = 0 if n == 0 else SAMPLE_RATE // FPS - units.HOP // 4     # picture 1, within 2.5 ms
        waves.append(made.wave[start: start + keep.shape[0] * SAMPLE_RATE // FPS])
        reference = made.frames[-1]
        if texts:
            voice = (made.wave, texts[n]) if texts[n].strip() else voice
    frames = torch.cat(frames)[:total_pictures]
    wave = torch.cat(waves) if texts else given["wave"]
    return Talk(frames, fit_to_frames(wave, units.mel_frames(total_pictures))[0], [j for j in joins
                                                                                   if j < total_pictures])


def single(pipe: MiniPipeline, clip: Clip, task: Task, given: dict, seed: int, params: SamplingParams,
           like: Talk) -> Talk:
    """One generation as long as `like`, measured at its joins."""
    job = pipe.job(task, given.get("text", ""), clip.caption, clip.frames[0], seed, driving_wave=given.get("wave"),
                   duration=units.Duration.from_video_frames(like.frames.shape[0]))
    made = pipe.generate([job], params)[0]
    wave = fit_to_frames(given["wave"], job.request.mel_frames)[0] if "wave" in given else made.wave
    return Talk(made.frames, wave, like.joins)


def measure(pipe: MiniPipeline, clips: list[Clip], seconds: float = 24.0, overlaps=(4,),
            params: SamplingParams = MINI_SAMPLING, log=print) -> dict:
    """Per task, per way (continuation at each overlap, chain, single): the seam figures of every clip and
    their means with bootstrap 95 % intervals; and the largest picture change inside plain clips."""
    results = {"seconds": seconds, "clips": len(clips), "overlaps": list(overlaps), "tasks": {}}
    for task, driver in TALKS:
        rows: dict[str, list[dict]] = {}
        plain_max = []
        for i, clip in enumerate(clips):
            if driver == "recording":
                given = {"wave": recording(clip.voice, seconds, RECORDING_SEED + i)[0][: round(seconds * SAMPLE_RATE)]}
            else:
                given = {"text": transcript(seconds, RECORDING_SEED + i), "seconds": seconds}
            plain = pipe.generate([pipe.job(task, clip.text, clip.caption, clip.frames[0], i,
                                            driving_wave=given.get("wave"))], params)[0]
            plain_max.append(float(seams.picture_changes(plain.frames).max()))
            talks = {f"continuation, overlap {k}": continuation(pipe, clip, task, given, i, params, k)
                     for k in overlaps}
            first = talks[f"continuation, overlap {overlaps[0]}"]
            talks["chain"] = chain(pipe, clip, task, given, i, params, first.frames.shape[0])
            talks["single"] = single(pipe, clip, task, given, i, params, first)
            for name, talk in talks.items():
                scores = seams.window_scores(talk.frames, talk.wave, clip.mouth_box)
                report = seams.measure(talk.frames, talk.wave, talk.joins, clip.frames[0], clip.face_mask, scores)
                row = report.row()
                row["change_vs_plain"] = row["change_max"] / plain_max[-1]
                row["drift_ratio"] = row["drift_last"] / row["drift_first"]
                row["gap_fraction"] = row["gaps"] / max(1, row["joins"])
                rows.setdefault(name, []).append(row)
            log(f"{task.name} clip {i + 1}/{len(clips)}: " + ", ".join(
                f"{n} sync {rows[n][-1]['windows_synced']:.2f} change x{rows[n][-1]['change_vs_plain']:.2f}"
                for n in rows))
        results["tasks"][task.name] = {"driver": driver, "plain_change_max": plain_max, "ways": {
            name: {"clips": r, "summary": {k: mean_ci([x[k] for x in r]) for k in r[0]}} for name, r in rows.items()}}
    return results


FIGURES = (("windows_synced", "3 s windows in sync (r0 ≥ 0.3)"),
           ("change_vs_plain", "largest picture change / largest in a plain clip"),
           ("join_change_max", "largest change at a join"), ("inside_change_max", "largest change elsewhere"),
           ("join_colour_max", "largest colour step at a join"), ("inside_colour_p99", "colour step elsewhere, p99"),
           ("drift_ratio", "face drift, last window / first"),
           ("click_ratio_max", "largest click at a join / p99.9 of the wave's steps"),
           ("gap_fraction", "joins in a silence (a 20 ms frame 40 dB down within 50 ms)"),
           ("silent_fraction", "the wave's 20 ms frames that quiet"))


def markdown(results: dict) -> str:
    lines = []
    for task, data in results["tasks"].items():
        ways = list(data["ways"])
        lines += [f"### {task}, {results['seconds']:g} s, {results['clips']} held-out faces and voices", "",
                  "| | " + " | ".join(ways) + " |", "|---|" + "---|" * len(ways)]
        for key, label in FIGURES:
            if data["driver"] == "recording" and key in ("click_ratio_max", "gap_fraction", "silent_fraction"):
                continue        # the file carries the recording itself
            cells = []
            for w in ways:
                s = data["ways"][w]["summary"][key]
                cells.append(f"{s['mean']:.3f} [{s['ci'][0]:.3f}, {s['ci'][1]:.3f}]")
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)


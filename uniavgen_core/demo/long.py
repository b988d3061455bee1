"""Long talks on the shipped small model: a recording of any length drives the face (A2V), or a transcript of
any length is spoken and shown (AVG), up to frontend/long.py's LONG_MAX_SECONDS, as segments that continue
each other from their last second of picture and sound. The command line is python -m uniavgen_core.demo
--task a2v|avg|long; `make demo-long` makes both from a synthetic recording and transcript it has not
trained on:

    long_a2v.mp4      a multi-sentence synthetic recording (at least 45 s) drives a held-out face
    long_avg.mp4      a long transcript, spoken and shown by the same face (at least 20 s)
    long_contact_sheet.png   pictures across each whole clip, its mouth against the sound, and the lip-sync
                             score of every 3 s window
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from .. import units
from ..audio.inputs import fit_to_frames
from ..audio.levels import read_audio
from ..frontend.long import LONG_MAX_SECONDS, LongResult, overlap_frames
from ..mp4 import write_mp4
from ..mini.pipeline import MINI_SAMPLING, Generated, MiniPipeline
from ..sampling import Task
from ..training import lipsync
from ..training.seams import WINDOW_SECONDS, window_scores
from ..units import FPS, HOP, SAMPLE_RATE
from . import CODEC, DISPLAY_SCALE, FACE_SEED, MODEL, DemoError, check_text

RECORDING_SEED = 9_000_000 + 5151    # the demo recording's sentences: drawn for no training or codec clip
RECORDING_SECONDS = 46.0
LONG_TEXT = ("hello again. this time the small face talks for longer than it was ever trained to. "
             "every part starts from the last second of the one before, so the picture and the voice carry on "
             "where they were. the face stays the one you gave it, and the words follow one another without a "
             "break. this is how a long talk is made, one piece after another, until the whole text is said.")
SHEET_PICTURES = 24


def read_recording(path: str | Path, limit: float = LONG_MAX_SECONDS) -> torch.Tensor:
    """Any audio file, at any rate and channel count -> float32 at 24 kHz, the channels' mean; refused when it
    cannot be read, holds no sound or is longer than `limit` seconds."""
    try:
        wave = read_audio(path, SAMPLE_RATE, limit)[0].mean(dim=0)
    except ValueError as err:
        raise DemoError(f"--audio {err}") from None
    if wave.shape[0] < SAMPLE_RATE // 10 or not bool(wave.abs().max() > 1e-4):
        raise DemoError(f"--audio {path} holds no sound ({wave.shape[0] / SAMPLE_RATE:.2f} s, silent): give speech")
    if not bool(torch.isfinite(wave).all()):
        raise DemoError(f"--audio {path} decodes to invalid samples (NaN or infinity): export it again")
    return wave.float()


def demo_recording(seconds: float = RECORDING_SECONDS) -> tuple[torch.Tensor, str]:
    """The demo's recording: sentences the training never drew, spoken by the demo face's voice."""
    from ..synthetic.clips import make_clip, recording

    return recording(make_clip(FACE_SEED, frames=17).voice, seconds, RECORDING_SEED)


@dataclasses.dataclass
class LongClip:
    name: str
    title: str
    result: LongResult
    frames: torch.Tensor        # [T, H, W, 3] in [0, 1]
    wave: torch.Tensor          # [N] at 24 kHz: what the file carries (A2V: the driving recording)


def _bar(desc: str):
    from tqdm import tqdm

    bar = tqdm(desc=desc, unit="step")

    def update(p):
        bar.total = p.segments * p.step.steps
        bar.set_description(f"{desc}, segment {p.segment + 1}/{p.segments}", refresh=False)
        bar.update(1)
    return bar, update


def talk(pipe: MiniPipeline, task: Task, wave: torch.Tensor | None = None, text: str = "",
         seconds: float | None = None, overlap: float = 1.0, seed: int = 2025, steps: int | None = None) -> LongClip:
    """A2V driven by `wave` (24 kHz) or AVG speaking `text` (for `seconds`, default as long as the text takes),
    by the demo's held-out face."""
    from ..synthetic.clips import make_clip

    face = make_clip(FACE_SEED, frames=pipe.trained_frames)
    if wave is None:
        text = check_text(pipe, text, seconds=LONG_MAX_SECONDS).text
    inputs = pipe.inputs(task, text, face.caption, face.frames[0], seed, driving_wave=wave, seconds=seconds)
    params = MINI_SAMPLING if steps is None else dataclasses.replace(MINI_SAMPLING, steps=steps)
    bar, update = _bar(f"long {task.name}")
    with bar:
        result, made = pipe.long(inputs, params, overlap=overlap_frames(overlap), progress=update)
    if wave is not None:          # the file carries the recording itself, fitted to the video as the sampler did
        made = Generated(made.frames, fit_to_frames(wave, made.wave.shape[0] // HOP)[0])
        title = f"A2V: a {wave.shape[0] / SAMPLE_RATE:.1f} s recording drives the face"
    else:
        title = f"AVG: '{text[:60]}...'" if len(text) > 60 else f"AVG: '{text}'"
    return LongClip(task.name.lower(), title, result, made.frames, made.wave)


def long_sheet(path: Path, clips: list[LongClip], box) -> None:
    """Per clip: SHEET_PICTURES pictures evenly across its whole length, and its mouth opening against the
    sound's low-band energy with the score of every window."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2 * len(clips), 1, figsize=(16, 7 * len(clips)),
                             gridspec_kw={"height_ratios": [2.2, 1] * len(clips)}, squeeze=False)
    axes = axes[:, 0]
    for k, clip in enumerate(clips):
        strip_ax, plot_ax = axes[2 * k], axes[2 * k + 1]
        picks = torch.linspace(0, clip.frames.shape[0] - 1, SHEET_PICTURES).round().long()
        row = SHEET_PICTURES // 2
        strip = [torch.cat([clip.frames[i] for i in picks[first: first + row]], dim=1) for first in (0, row)]
        strip_ax.imshow(torch.cat(strip, dim=0).numpy())
        strip_ax.set_title(f"{clip.title} ({clip.frames.shape[0] / FPS:.1f} s, {len(clip.result.segments)} "
                           f"segments): {SHEET_PICTURES} pictures evenly from 0 to {clip.frames.shape[0] / FPS:.1f} s",
                           fontsize=10, loc="left")
        strip_ax.axis("off")
        mouth = lipsync.mouth_openness(clip.frames, box)
        env = lipsync.audio_envelope(clip.wave, SAMPLE_RATE, clip.frames.shape[0])
        z = lambda x: (x - x.mean()) / (x.std() + 1e-9)
        t = np.arange(clip.frames.shape[0]) / FPS
        plot_ax.plot(t, z(lipsync.high_pass(mouth, lipsync.DETREND_FRAMES)), lw=0.8, label="mouth opening (pixels)")
        plot_ax.plot(t, z(lipsync.high_pass(env, lipsync.DETREND_FRAMES)), lw=0.8, alpha=0.7,
                     label="sound, low-band energy")
        for seg in clip.result.segments[1:]:
            plot_ax.axvline(units.video_frames(seg.start + seg.prior) / FPS, color="grey", lw=0.5, ls=":")
        scores = window_scores(clip.frames, clip.wave, box)
        for i, r in enumerate(scores):
            plot_ax.text((i + 0.5) * WINDOW_SECONDS, 3.3, f"{r:.2f}", ha="center", fontsize=7)
        good = sum(r >= 0.3 for r in scores)
        plot_ax.set_title(f"lip sync per {WINDOW_SECONDS:g} s window (numbers; {good} of {len(scores)} at 0.3 or "
                          f"more); dotted: where each segment's new part starts", fontsize=9, loc="left")
        plot_ax.set_xlim(0, t[-1])
        plot_ax.set_ylim(-4, 4)
        plot_ax.set_yticks([])
        plot_ax.set_xlabel("s", fontsize=8)
        plot_ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)


def run_long(out: Path, task: str, audio: str | None = None, text: str | None = None, seconds: float | None = None,
             overlap: float = 1.0, steps: int | None = None, seed: int = 2025, model: Path = MODEL,
             codec: Path = CODEC) -> dict:
    """--task a2v (a recording file), avg (a transcript, for `seconds` or as long as it takes) or long (both,
    from the demo's own recording and transcript): the clips, a contact sheet, written into `out`."""
    from ..synthetic.clips import make_clip

    start = time.perf_counter()
    pipe = MiniPipeline(model, codec)
    messages, clips = [], []
    if task in ("a2v", "long"):
        if audio is not None:
            wave = read_recording(audio)
        else:
            wave, said = demo_recording()
            messages.append(f"the recording ({wave.shape[0] / SAMPLE_RATE:.1f} s) says: {said}")
        clips.append(talk(pipe, Task.A2V, wave=wave, overlap=overlap, seed=seed, steps=steps))
    if task in ("avg", "long"):
        clips.append(talk(pipe, Task.AVG, text=LONG_TEXT if text is None else text, seconds=seconds,
                          overlap=overlap, seed=seed, steps=steps))
    out.mkdir(parents=True, exist_ok=True)
    for clip in clips:
        write_mp4(out / f"long_{clip.name}.mp4", clip.frames, clip.wave, scale=DISPLAY_SCALE)
        messages += clip.result.messages
    sheet = out / ("long_contact_sheet.png" if task == "long" else f"long_{task}_contact_sheet.png")
    long_sheet(sheet, clips, make_clip(FACE_SEED, frames=17).mouth_box)
    files = [str(out / f"long_{c.name}.mp4") for c in clips] + [str(sheet)]
    return {"files": files, "messages": messages, "total_seconds": time.perf_counter() - start}

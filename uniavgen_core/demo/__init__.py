"""The demo: the shipped small model generates three clips a person can watch, on the CPU (the command
line: python -m uniavgen_core.demo, or make demo; long talks: long.py).

    avg.mp4   a held-out synthetic face + a transcript -> generated speech and talking video
    a2v.mp4   synthetic speech of the transcript drives the face
    v2a.mp4   a rendered clip -> generated speech (dubbing)
    contact_sheet.png   frames of each clip and its mouth track against the audio envelope

Needs the demo extras (av, matplotlib, espeakng-loader); `make demo` installs them.
"""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from .. import units
from ..audio.transcript import Fitted, describe, fit_to_vocabulary, wordless
from ..frontend.jobs import MAX_CHARS_PER_SECOND
from ..mini.pipeline import MINI_SAMPLING, MiniPipeline
from ..mp4 import write_mp4
from ..sampling import Task
from ..training import lipsync
from ..units import SAMPLE_RATE

PACK = Path(__file__).resolve().parents[2]
MODEL = PACK / "models_builtin" / "uniavgen" / "UniAVGen-mini.safetensors"
CODEC = PACK / "models_builtin" / "uniavgen_codecs" / "UniAVGen-mini-video-codec.safetensors"
DEFAULT_TEXT = "hello there, this small face talks on your computer."
FACE_SEED = 9_000_000 + 4242        # a held-out face: no training or codec clip uses this seed
DISPLAY_SCALE = 2                   # the 128 px pictures are shown at 256 px


class DemoError(ValueError):
    pass


def check_text(pipe: MiniPipeline, text: str, seconds: float | None = None) -> Fitted:
    """The transcript in the model's alphabet (capitals lower-cased and the like, transcript.py); refused
    when it has no words, when it is longer than a fast speaker says in `seconds` (default one clip; checked
    before anything is read or synthesised, so a huge text costs nothing), or when characters remain that the
    model cannot say."""
    text = " ".join(text.split())
    what, seconds = ("clip", pipe.duration.seconds) if seconds is None else ("talk", seconds)
    limit = int(MAX_CHARS_PER_SECOND["en"] * seconds)
    if len(text) > limit:
        raise DemoError(f"the transcript has {len(text)} characters; a {seconds:.2f} s {what} holds at most about "
                        f"{limit} (a fast speaker's {MAX_CHARS_PER_SECOND['en']} a second): shorten it")
    fitted = fit_to_vocabulary(text, pipe.tokenizer.vocab)
    nothing = wordless(fitted.text)
    if nothing:
        raise DemoError(f'the transcript has no words ({nothing}): give some, e.g. make demo TEXT="hello there"')
    unknown = pipe.tokenizer.encode(fitted.text, "en").unknown
    if unknown:
        raise DemoError(f"the small model does not know these characters: {' '.join(repr(u) for u in unknown)}; "
                        f"it has {describe(pipe.tokenizer.vocab)}")
    return fitted


def contact_sheet(path: Path, rows: list[tuple[str, torch.Tensor, torch.Tensor]], box: tuple, every: int = 4):
    """Per clip: every `every`-th frame, and the mouth openness read from the pixels against the
    audio's low-band envelope."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rows), 2, figsize=(16, 2.6 * len(rows)), gridspec_kw={"width_ratios": [3, 1]})
    for (title, frames, wave), (strip_ax, plot_ax) in zip(rows, axes):
        picks = frames[::every]
        strip_ax.imshow(torch.cat(list(picks), dim=1).numpy())
        strip_ax.set_title(f"{title}: every {every}th frame (16 fps)", fontsize=10, loc="left")
        strip_ax.axis("off")
        mouth = lipsync.mouth_openness(frames, box)
        env = lipsync.audio_envelope(wave, SAMPLE_RATE, frames.shape[0])
        score = lipsync.sync_score(mouth, env)
        seconds = torch.arange(frames.shape[0]) / units.FPS
        z = lambda x: (x - x.mean()) / (x.std() + 1e-9)
        plot_ax.plot(seconds, z(mouth), label="mouth opening (pixels)")
        plot_ax.plot(seconds, z(env), label="audio low-band energy", alpha=0.8)
        plot_ax.set_title(f"r = {score.r0:.2f} at offset 0, best offset {score.offset:+d}", fontsize=9)
        plot_ax.set_xlabel("s", fontsize=8)
        plot_ax.set_yticks([])
        plot_ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def run(out: Path, text: str = DEFAULT_TEXT, steps: int | None = None, model: Path = MODEL, codec: Path = CODEC,
        seed: int = 2025) -> dict:
    """The three clips and the contact sheet, written into `out` (made when missing); the files, the times
    and the notes on the transcript."""
    from tqdm import tqdm

    from ..synthetic.clips import make_clip
    from ..synthetic.speech import synthesize

    start = time.perf_counter()
    pipe = MiniPipeline(model, codec)
    fitted = check_text(pipe, text)
    text, messages = fitted.text, fitted.messages()
    face = make_clip(FACE_SEED, frames=pipe.trained_frames)
    spoken = synthesize(text, face.voice).wave
    if spoken.shape[0] > pipe.duration.samples:
        messages.append(f"the transcript takes {spoken.shape[0] / SAMPLE_RATE:.1f} s to say; the clips are "
                        f"{pipe.duration.seconds:.2f} s, so the spoken audio is cut (use a shorter text)")
    jobs = [pipe.job(Task.AVG, text, face.caption, face.frames[0], seed),
            pipe.job(Task.A2V, text, face.caption, face.frames[0], seed, driving_wave=spoken),
            pipe.job(Task.V2A, face.text, face.caption, face.frames[0], seed, driving_frames=face.frames)]
    params = MINI_SAMPLING if steps is None else dataclasses.replace(MINI_SAMPLING, steps=steps)
    with tqdm(total=params.steps, desc="generating 3 clips", unit="step") as bar:
        made = pipe.generate(jobs, params, callback=lambda info: bar.update(1))
    sampling = time.perf_counter() - start
    out.mkdir(parents=True, exist_ok=True)
    # the A2V file carries the driving speech itself, fitted to the clip as the sampler fits it
    driving = torch.nn.functional.pad(spoken, (0, max(0, pipe.duration.samples - spoken.shape[0])))
    clips = {"avg": (made[0].frames, made[0].wave),
             "a2v": (made[1].frames, driving[: pipe.duration.samples]),
             "v2a": (face.frames, made[2].wave)}
    for name, (frames, wave) in clips.items():
        write_mp4(out / f"{name}.mp4", frames, wave, scale=DISPLAY_SCALE)
    titles = {"avg": f"AVG: '{text}'", "a2v": "A2V: the face follows the synthetic speech",
              "v2a": f"V2A: speech made for this rendered clip ('{face.text}')"}
    contact_sheet(out / "contact_sheet.png", [(titles[k], f, w) for k, (f, w) in clips.items()], face.mouth_box)
    return {"files": sorted(str(p) for p in out.iterdir()), "sampling_seconds": sampling,
            "total_seconds": time.perf_counter() - start, "messages": messages, "text": text}

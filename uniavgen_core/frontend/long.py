"""Generation longer than the model's trained length: the job is cut into segments of the trained length that
overlap by a few latent frames, sampled one after another with `sample`, and stitched into one latent and one
mel. Plain PyTorch, like the rest of the front end; each segment's request comes from `jobs.make_job`.

The first segment is the job's own task (AVG, RAVG, A2V or V2A); every later one is the task's continuation
(`tasks.continued`: CONTINUATION, A2V_CONTINUATION, V2A_CONTINUATION), which takes the stitched result's last
latent frames and the mel rows they cover as its clean start. The reference picture (and a reference voice)
is the same for every segment; A2V and V2A give each segment the next slice of the driving audio or video, and
a speaking task the next slice of its transcript.

The seam timeline. Latent frame 0 of a clip is one picture, every later frame four. A segment that starts on
stitched latent frame s takes frames s, s+1, ... as its frames 0, 1, ...; its frame 0 counts as one picture,
so its picture 0 is the LAST picture of stitched frame s, stitched picture 4s:

    stitched pictures   ... | 4s-3 4s-2 4s-1 4s | 4s+1 .. 4s+4 | ... | P-4 .. P-1 |      (P = 1 + 4 (F - 1))
    stitched frames         |        s          |      s+1     | ... |    F-1     |
    segment frames          |        0          |       1      | ... |   k-1      | k (generated) ...
    segment pictures                         0  |    1 .. 4    | ... |            |

4 pictures are 0.25 s = 25 mel rows exactly, so the segment's mel row 0 is stitched row 25 s, its k prior
frames cover mel_frames(4k - 3) = 25 k - 19 rows, and those end exactly where the stitched mel ends
(mel_frames(P) = 25 F - 19). The segment's generated frames k.. and its rows after the prior ones are
appended: the stitched result stays P = 1 + 4 (F - 1) pictures and mel_frames(P) rows after any number of
segments, and each segment's generated audio starts within one mel row of its first generated picture. The
driving audio and video of a segment are cut on the same timeline: from latent frame s of the video, and from
stitched picture 4s of the audio (mel row 25 s, sample 6000 s at 24 kHz).

Seeds: segment n samples with (seed + n * SEED_STRIDE) mod 2**64, so the first segment has the job's own seed
and a job that fits one segment gives exactly what `sample` gives for it.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Callable

import torch

from .. import units
from ..audio.inputs import fit_to_frames
from ..audio.speech_tokenizer import SpeechTokenizer, is_chinese
from ..sampling import SampleResult, SamplingParams, StepInfo, sample
from ..sampling.tasks import TASKS, Given, Task, choose, continued
from .jobs import MAX_CHARS_PER_SECOND, Inputs, JobError, Speech, face, make_job, spoken_length

LONG_MAX_SECONDS = 600          # the longest job the driver takes: 10 minutes (units.MAX_SECONDS is one clip's)
MAX_LATENT_FRAMES = LONG_MAX_SECONDS * units.FPS // units.TEMPORAL_STRIDE + 1      # 2401: 9601 pictures
DEFAULT_OVERLAP = 4             # latent frames a segment takes from the one before: 1 s
# characters (Chinese: syllables) per second an ordinary speaker says, half of jobs.MAX_CHARS_PER_SECOND's fast
# one: how much of a long transcript one segment is given
SPEAKING_RATE = {"en": 15.0, "zh": 4.0}
SEED_STRIDE = 0x9E3779B97F4A7C15    # segment n's seed is seed + n * SEED_STRIDE (mod 2**64)
SEED_MOD = 2 ** 64

# mel rows per latent frame after the first (4 pictures = 0.25 s = 25 rows): the seams need it whole
ROWS_PER_FRAME = units.MEL_RATE * units.TEMPORAL_STRIDE / units.FPS
if ROWS_PER_FRAME != int(ROWS_PER_FRAME) or units.SAMPLE_RATE % units.FPS:
    raise ImportError("the long driver's seams need whole mel rows and samples per latent frame")

SENTENCE_ENDS = ".!?;…。！？；"
PAUSES = ",:，、：—"
CLOSERS = "\"')]”’」』）"


@dataclass(frozen=True)
class Segment:
    """One segment of a long job on the stitched timeline (module docstring)."""
    index: int
    start: int          # the stitched latent frame its frame 0 lies on
    frames: int         # its latent frames
    prior: int          # its leading frames taken clean from the stitched result; 0 for the first

    @property
    def end(self) -> int:
        return self.start + self.frames

    @property
    def pictures(self) -> int:
        return units.video_frames(self.frames)

    @property
    def picture(self) -> int:
        """The stitched picture its picture 0 is: the last picture of stitched frame `start`."""
        return units.TEMPORAL_STRIDE * self.start

    @property
    def mel_start(self) -> int:
        """The stitched mel row its row 0 is (exact: 4 pictures are a whole number of rows)."""
        return units.mel_frames(self.picture)

    @property
    def rows(self) -> int:
        return units.mel_frames(self.pictures)

    @property
    def prior_rows(self) -> int:
        """Its leading mel rows taken clean from the stitched result: those its prior frames cover."""
        return units.mel_frames(units.video_frames(self.prior)) if self.prior else 0

    @property
    def new_pictures(self) -> int:
        """Pictures it adds to the stitched result."""
        return units.TEMPORAL_STRIDE * (self.frames - self.prior) if self.prior else self.pictures

    @property
    def seconds(self) -> float:
        return self.pictures / units.FPS

    @property
    def new_seconds(self) -> float:
        return self.new_pictures / units.FPS


def overlap_frames(seconds: float) -> int:
    """The overlap in latent frames nearest `seconds` (1 s -> 4)."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"overlap must be a positive number of seconds, got {seconds!r}")
    return max(1, round(seconds * units.FPS / units.TEMPORAL_STRIDE))


def frames_for(seconds: float, up: bool = False) -> int:
    """Latent frames for a length in seconds, at most LONG_MAX_SECONDS: the nearest 4k+1 pictures (up: the
    fewest that hold it), at least 5."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or not 0 < seconds <= LONG_MAX_SECONDS:
        raise JobError(f"a long job is more than 0 and at most {LONG_MAX_SECONDS} s ({LONG_MAX_SECONDS // 60} "
                       f"minutes) long, got {seconds} s; split it into several jobs")
    steps = (seconds * units.FPS - 1) / units.TEMPORAL_STRIDE
    return min(MAX_LATENT_FRAMES, max(1, math.ceil(steps - 1e-9) if up else round(steps)) + 1)


def plan(total_frames: int, segment_frames: int, overlap: int = DEFAULT_OVERLAP) -> list[Segment]:
    """The segments of a job of `total_frames` latent frames for a model trained on `segment_frames`: the
    first from frame 0, each later one taking `overlap` frames of the stitched result; the last takes as many
    more as keep it `segment_frames` long. A job that fits one segment is one segment."""
    for name, value in (("total_frames", total_frames), ("segment_frames", segment_frames), ("overlap", overlap)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"{name} must be a whole number of latent frames, got {value!r}")
    if segment_frames < 2:
        raise ValueError(f"segments of {segment_frames} latent frame(s) hold nothing to continue; a model is "
                         f"trained on at least 2 (5 pictures)")
    if not 1 <= overlap < segment_frames:
        raise ValueError(f"an overlap of {overlap} latent frames does not fit segments of {segment_frames} "
                         f"({units.video_frames(segment_frames) / units.FPS:.2f} s): it must be at least 1 and at "
                         f"most {segment_frames - 1} (default {DEFAULT_OVERLAP}, 1 s)")
    if not 2 <= total_frames <= MAX_LATENT_FRAMES:
        raise ValueError(f"{total_frames} latent frames: a long job has 2 to {MAX_LATENT_FRAMES} "
                         f"({LONG_MAX_SECONDS} s)")
    segments = [Segment(0, 0, min(segment_frames, total_frames), 0)]
    while segments[-1].end < total_frames:
        end = segments[-1].end
        start = min(end - overlap, total_frames - segment_frames)
        segments.append(Segment(len(segments), start, segment_frames, end - start))
    return segments


def segment_seed(seed: int, index: int) -> int:
    return (seed + index * SEED_STRIDE) % SEED_MOD


# ---------------------------------------------------------------- transcripts cut into segments

def _wide(c: str) -> bool:
    """A Chinese character, CJK punctuation or a full-width form: written without spaces around it."""
    return is_chinese(c) or "\u3000" <= c <= "\u303f" or "\uff00" <= c <= "\uffef"


def _join(parts: list[str]) -> str:
    """Pieces of a transcript joined: with a space, but none next to Chinese characters or punctuation."""
    out = ""
    for p in parts:
        out = p if not out else out + p if _wide(out[-1]) or _wide(p[0]) else out + " " + p
    return out


def _cut(text: str, marks: str) -> list[str]:
    """`text` cut after each run of `marks` (with closing quotes); a Latin mark cuts only before white space
    or the end (3.5 stays whole)."""
    pieces, start, i = [], 0, 0
    while i < len(text):
        if text[i] not in marks:
            i += 1
            continue
        j = i + 1
        while j < len(text) and (text[j] in marks or text[j] in CLOSERS):
            j += 1
        if j == len(text) or text[j].isspace() or _wide(text[i]):
            pieces.append(text[start:j])
            start = j
        i = j
    pieces.append(text[start:])
    return [p.strip() for p in pieces if p.strip()]


def _pack(parts: list[str], limit: Callable[[int], float], lang: str) -> list[str]:
    """Parts joined greedily into chunks, chunk i at most limit(i) long (a part longer than that alone)."""
    chunks, current = [], []
    for part in parts:
        if current and spoken_length(_join(current + [part]), lang)[0] > limit(len(chunks)):
            chunks.append(_join(current))
            current = []
        current.append(part)
    return chunks + ([_join(current)] if current else [])


def _syllables(text: str) -> list[str]:
    """Chinese characters one by one, with what follows each up to the next (punctuation, Latin words)."""
    out = []
    for c in text:
        if not out or is_chinese(c):
            out.append(c)
        else:
            out[-1] += c
    return [p.strip() for p in out if p.strip()]


def _fit(piece: str, limit: float, lang: str) -> list[str]:
    """A sentence longer than `limit` cut at pauses (commas), then between words, then (Chinese) characters."""
    if spoken_length(piece, lang)[0] <= limit:
        return [piece]
    for parts in (_cut(piece, PAUSES), piece.split(), _syllables(piece) if lang == "zh" else []):
        if len(parts) > 1:
            return _pack([p for part in parts for p in _fit(part, limit, lang)], lambda _: limit, lang)
    return [piece]


def pieces(text: str, limit: float) -> list[str]:
    """The transcript's lines when it has line breaks, else its sentences, each longer than `limit` characters
    (Chinese: syllables) cut at pauses or between words."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if len(lines) > 1:
        return lines
    lang = SpeechTokenizer.detect_language(text)
    return [p for sentence in _cut(" ".join(text.split()), SENTENCE_ENDS) for p in _fit(sentence, limit, lang)]


def pack_transcript(text: str, first_seconds: float, later_seconds: float, rate: float) -> list[str]:
    """One transcript slice per segment when the transcript sets the length: one line each when it has line
    breaks, else whole sentences packed in order up to what `rate` characters a second says in the first
    segment's `first_seconds` and each later one's `later_seconds` (a longer sentence cut at pauses or words)."""
    lang = SpeechTokenizer.detect_language(text)
    parts = pieces(text, rate * min(first_seconds, later_seconds))
    if len([line for line in text.splitlines() if line.strip()]) > 1:
        return parts
    return _pack(parts, lambda i: rate * (first_seconds if i == 0 else later_seconds), lang)


def share_transcript(text: str, seconds: list[float], rate: float) -> list[str]:
    """The transcript over segments of a fixed length (`seconds`: what each adds): lines or sentences in order
    (a sentence longer than a full later segment holds cut at pauses or words), each to the segment in whose
    share of the time the middle of its share of the text falls."""
    lang = SpeechTokenizer.detect_language(text)
    parts = pieces(text, rate * max(seconds[1:] or seconds))
    weights = [max(1, spoken_length(p, lang)[0]) for p in parts]
    total, time = sum(weights), sum(seconds)
    bounds = [sum(seconds[: j + 1]) / time for j in range(len(seconds))]
    slices, done = [[] for _ in seconds], 0
    for part, weight in zip(parts, weights):
        middle = (done + weight / 2) / total
        done += weight
        slices[next(j for j, b in enumerate(bounds) if middle < b or j == len(bounds) - 1)].append(part)
    return [_join(s) for s in slices]


# ---------------------------------------------------------------- the driver

@dataclass
class Progress:
    """Where a long job is: segment `segment` (0-based) of `segments`, and that segment's finished step."""
    segment: int
    segments: int
    step: StepInfo

    @property
    def fraction(self) -> float:
        """Of the whole job, from 0 to 1."""
        return (self.segment + (self.step.step + 1) / self.step.steps) / self.segments


@dataclass
class LongResult:
    video: torch.Tensor             # [C, F, h, w] float32 on the CPU: the stitched latents, 1 + 4 (F - 1) pictures
    audio: torch.Tensor             # [S, 80] float32 on the CPU: the stitched normalised mel, mel_frames(pictures)
    segments: list[Segment]
    texts: list[str]                # each segment's transcript
    tasks: list[Task]
    seeds: list[int]
    messages: list[str]

    @property
    def pictures(self) -> int:
        return units.video_frames(self.video.shape[1])

    @property
    def seconds(self) -> float:
        return self.pictures / units.FPS


def _rate(text: str, chars_per_second: float | None) -> float:
    lang = SpeechTokenizer.detect_language(text)
    rate = SPEAKING_RATE[lang] if chars_per_second is None else chars_per_second
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or not 0 < rate <= MAX_CHARS_PER_SECOND[lang]:
        raise JobError(f"chars_per_second {rate!r}: more than 0 and at most {MAX_CHARS_PER_SECOND[lang]} (a fast "
                       f"speaker) for this {'Chinese' if lang == 'zh' else 'text'}; default {SPEAKING_RATE[lang]:g}")
    return float(rate)


def _length(spec, inputs: Inputs, segment: int, overlap: int, rate: float,
            messages: list[str]) -> tuple[int, list[str] | None]:
    """The job's latent frames: the duration asked for; else dubbing's video, the driving audio (at least the
    trained length), or as many segments as the transcript fills (then also their transcripts)."""
    if inputs.seconds is not None:
        total = frames_for(inputs.seconds)
        if spec.video == Given.ALL and total > inputs.driving_video.shape[1]:
            messages.append(f"the video is {units.video_frames(inputs.driving_video.shape[1]) / units.FPS:.4g} s "
                            f"long: dubbing all of it")
            total = inputs.driving_video.shape[1]
        return total, None
    if spec.video == Given.ALL:
        if inputs.driving_video.shape[1] > MAX_LATENT_FRAMES:
            raise JobError(f"the driving video is {units.video_frames(inputs.driving_video.shape[1]) / units.FPS:.1f}"
                           f" s; a long job dubs at most {LONG_MAX_SECONDS} s: cut the video or give a duration")
        return inputs.driving_video.shape[1], None
    if spec.audio == Given.ALL:
        seconds = inputs.driving_audio.shape[-1] / units.SAMPLE_RATE
        if seconds > LONG_MAX_SECONDS:
            raise JobError(f"the driving audio is {seconds:.1f} s; a long job takes at most {LONG_MAX_SECONDS} s "
                           f"({LONG_MAX_SECONDS // 60} minutes): trim it or split it into several jobs")
        return max(segment, frames_for(seconds, up=True)), None
    text = inputs.speech.text
    if not text.strip():
        raise JobError("the transcript is empty: give the text to speak (its length sets the video's) or a "
                       "duration")
    first = units.video_frames(segment) / units.FPS
    later = units.TEMPORAL_STRIDE * (segment - overlap) / units.FPS
    texts = pack_transcript(text, first, later, rate)
    total = segment + (len(texts) - 1) * (segment - overlap)
    if total > MAX_LATENT_FRAMES:
        raise JobError(f"the transcript takes {len(texts)} segments, {units.video_frames(total) / units.FPS:.0f} s "
                       f"at {rate:g} characters a second; a long job is at most {LONG_MAX_SECONDS} s: split the "
                       f"text into several jobs")
    return total, texts


def generate_long(model, inputs: Inputs, trained_frames: int, params: SamplingParams = SamplingParams(),
                  speak: Callable[[str], Speech] | None = None, overlap: int = DEFAULT_OVERLAP,
                  chars_per_second: float | None = None, progress: Callable[[Progress], None] | None = None,
                  device: torch.device | str | None = None, preset=None, wrap_velocity=None,
                  sigmas: torch.Tensor | None = None,
                  sample_fn: Callable[..., SampleResult] | None = None) -> LongResult:
    """A job of any length up to LONG_MAX_SECONDS as segments of the model's trained length (`trained_frames`
    pictures, as make_job takes it) overlapping by `overlap` latent frames (overlap_frames() from seconds).

    inputs: as for make_job, without a prior. Its length: `seconds`; else dubbing's video, the driving audio
    (at least the trained length), or the transcript at `chars_per_second` (default SPEAKING_RATE), a line a
    segment when it has line breaks. speak(text) -> Speech of one segment's transcript (with the reference
    transcript for voice cloning): needed when a speaking task runs more than one segment.
    progress: called after every step of every segment; raise from it to cancel. params, preset, device,
    wrap_velocity, sigmas: `sample`'s, for every segment. sample_fn: what samples each segment, called as `sample`
    (a parallel run's ranks give parallel.sample_on_rank bound to their configuration)."""
    try:
        task = choose(inputs.task, inputs.given())
    except ValueError as err:
        raise JobError(str(err)) from None
    spec = TASKS[task]
    if inputs.prior is not None or Given.PRIOR in (spec.video, spec.audio):
        raise JobError("a long job starts from its reference picture and makes each segment's prior itself: give "
                       "no previous clip")
    segment = units.latent_frames(trained_frames)
    if not isinstance(overlap, int) or isinstance(overlap, bool) or not 1 <= overlap < segment:
        raise JobError(f"overlap {overlap!r}: at least 1 and at most {segment - 1} latent frames for this model's "
                       f"{segment}-frame ({trained_frames / units.FPS:.2f} s) segments (default {DEFAULT_OVERLAP}: "
                       f"1 s)")
    rate = _rate(inputs.speech.text, chars_per_second) if spec.speaks else 0.0
    messages: list[str] = []
    total, texts = _length(spec, inputs, segment, overlap, rate, messages)
    run = dict(params=params, device=device, wrap_velocity=wrap_velocity, sigmas=sigmas, preset=preset)
    sample_fn = sample_fn or sample
    if total <= segment:
        return _one(model, inputs, trained_frames, task, run, progress, messages, sample_fn)
    segments = plan(total, segment, overlap)
    texts = texts or _texts(spec, inputs, segments, rate)
    if spec.speaks and inputs.speech.text.strip() and speak is None:
        raise JobError("a transcript over several segments needs speak(text) -> Speech, to turn each segment's "
                       "slice into tokens (MiniPipeline.speech, or the tokenizer the Speech came from)")
    reference = face(spec, inputs)
    wave = None
    if spec.audio == Given.ALL:
        wave, fitted = fit_to_frames(inputs.driving_audio, units.mel_frames(units.video_frames(total)))
        messages += fitted
    video = torch.zeros(reference.shape[0], total, *reference.shape[2:])
    audio = torch.zeros(units.mel_frames(units.video_frames(total)), units.N_MELS)
    tasks, seeds, seen = [], [], set()
    for seg, text in zip(segments, texts):
        now = task if not seg.prior else continued(task)
        given = _segment_inputs(inputs, spec, seg, now, text, speak, reference, wave, video, audio)
        job = make_job(given, trained_frames, model.config.num_layers, params)
        messages += [m if not seg.index else f"segment {seg.index + 1}: {m}" for m in job.messages if m not in seen]
        seen.update(job.messages)
        result = sample_fn(model, [job.request], callback=_step(progress, seg.index, len(segments)), **run)
        video[:, seg.start + seg.prior: seg.end] = result.video[0, :, seg.prior:].float().cpu()
        audio[seg.mel_start + seg.prior_rows: seg.mel_start + seg.rows] = result.audio[0, seg.prior_rows:].float().cpu()
        del result, job
        tasks.append(now)
        seeds.append(given.seed)
    messages.insert(0, f"{len(segments)} segments of {segment} latent frames ({trained_frames / units.FPS:.2f} s), "
                       f"overlapping by {overlap}: {units.video_frames(total) / units.FPS:.2f} s in all")
    return LongResult(video, audio, segments, texts, tasks, seeds, messages)


def _one(model, inputs: Inputs, trained_frames: int, task: Task, run: dict, progress, messages,
         sample_fn) -> LongResult:
    """A job that fits one segment: exactly make_job and sample."""
    job = make_job(inputs, trained_frames, model.config.num_layers, run["params"])
    result = sample_fn(model, [job.request], callback=_step(progress, 0, 1), **run)
    seg = Segment(0, 0, job.request.latent_frames, 0)
    return LongResult(result.video[0].float().cpu(), result.audio[0].float().cpu(), [seg], [inputs.speech.text],
                      [task], [inputs.seed], messages + [m for m in job.messages if m not in messages])


def _step(progress, index: int, count: int):
    if progress is None:
        return None
    return lambda info: progress(Progress(index, count, info))


def _texts(spec, inputs: Inputs, segments: list[Segment], rate: float) -> list[str]:
    """Each segment's transcript: the whole one where the audio is given (it is not spoken), else its share."""
    text = inputs.speech.text
    if not spec.speaks or not text.strip():
        return [text] * len(segments)
    return share_transcript(text, [s.new_seconds for s in segments], rate)


def _segment_inputs(inputs: Inputs, spec, seg: Segment, task: Task, text: str, speak, reference, wave, video,
                    audio) -> Inputs:
    """One segment's inputs: its task, length, transcript slice, seed, driving slices and prior."""
    change = dict(task=task.name, seconds=seg.seconds, reference=reference, seed=segment_seed(inputs.seed, seg.index),
                  prior=None)
    if spec.speaks and inputs.speech.text.strip():     # a slice without words is spoken as silence
        change["speech"] = speak(text)
    change.update(_cut_on_timeline(seg, video, audio, wave if spec.audio == Given.ALL else None,
                                   inputs.driving_video if spec.video == Given.ALL else None))
    return dataclasses.replace(inputs, **change)


def _cut_on_timeline(seg: Segment, video: torch.Tensor, rows: torch.Tensor, wave=None, driving_video=None) -> dict:
    """What a segment takes on the seam timeline: its prior (the stitched frames from seg.start on and the mel
    rows they cover; None for the first segment), and its slices of a driving audio and video when given (a
    driving video also sets the length: seconds None)."""
    cut = {"prior": None if not seg.prior else (video[:, seg.start: seg.start + seg.prior].clone(),
                                                rows[seg.mel_start: seg.mel_start + seg.prior_rows].clone())}
    if wave is not None:
        first = seg.mel_start * units.HOP
        cut["driving_audio"] = wave[first: first + seg.rows * units.HOP]
    if driving_video is not None:
        cut["driving_video"], cut["seconds"] = driving_video[:, seg.start: seg.end], None
    return cut


# ---------------------------------------------------------------- decoding a long latent a few seconds at a time

def decode_windows(frames: int, tile: int, context: int) -> list[tuple[int, int, int]]:
    """(lo, start, end) for decoding a latent of `frames` latent frames `tile` frames at a time: frames lo..end-1
    are decoded, the `context` frames before `start` only so that a causal video decoder sees what came before,
    and the pictures of start..end-1 are kept (kept_pictures). Together the windows keep every picture once, in
    order. At least one frame of context: a decode's first frame is one picture, not four."""
    if tile < 1 or context < 1:
        raise ValueError(f"tile {tile} and context {context} must each be at least 1 latent frame")
    return [(max(0, start - context), start, min(start + tile, frames)) for start in range(0, frames, tile)]


def kept_pictures(lo: int, start: int, end: int) -> slice:
    """The pictures of latent frames start..end-1 within the decode of lo..end-1: all of them for the first window
    (frame 0 is one picture), else the last 4 per frame."""
    decoded = units.video_frames(end - lo)
    keep = units.video_frames(end) - (units.video_frames(start) if start else 0)
    return slice(decoded - keep, decoded)


# ---------------------------------------------------------------- one segment after a clip (UniAVGen Extend)

def segment_after(frames: int, overlap: int, seconds: float, trained: int, wave_samples: int | None,
                  video_frames: int | None, messages: list[str]) -> Segment:
    """The segment that carries a clip of `frames` latent frames on, on the long driver's seam timeline: it starts
    on stitched frame frames - overlap, takes those `overlap` frames as its prior, and adds `seconds` (0: the
    trained length of `trained` frames less the overlap), shortened to what a driving audio of `wave_samples` or
    a driving video of `video_frames` latent frames still holds."""
    if isinstance(overlap, bool) or not isinstance(overlap, int) or not 1 <= overlap <= frames:
        raise JobError(f"overlap {overlap!r}: at least 1 and at most the clip's {frames} latent frames")
    if overlap >= trained and not seconds:
        raise JobError(f"an overlap of {overlap} latent frames leaves nothing new in this model's {trained}-frame "
                       f"({units.video_frames(trained) / units.FPS:.2f} s) segments: lower it (default "
                       f"{DEFAULT_OVERLAP}: 1 s) or give a duration")
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        raise JobError(f"duration_seconds {seconds!r}: 0 (the trained length) or more")
    new = trained - overlap if not seconds else max(1, round(seconds * units.FPS / units.TEMPORAL_STRIDE))
    if seconds and overlap + new > units.latent_frames(units.MAX_SECONDS * units.FPS + 1):
        raise JobError(f"a segment of {overlap} + {new} latent frames is longer than one clip may be "
                       f"({units.MAX_SECONDS} s): give a shorter duration")
    so_far = units.video_frames(frames)
    if wave_samples is not None:
        per_picture = units.SAMPLE_RATE // units.FPS
        left = wave_samples / per_picture - so_far        # pictures of the recording after the clip so far
        if left <= 0:
            raise JobError(f"the driving audio is {wave_samples / units.SAMPLE_RATE:.2f} s and the clip so far "
                           f"{so_far / units.FPS:.2f} s: there is nothing left to follow")
        holds = max(1, math.ceil(left / units.TEMPORAL_STRIDE - 1e-9))
        if holds < new:
            messages.append(f"the driving audio ends {left / units.FPS:.2f} s after the clip so far: the new part "
                            f"is {holds * units.TEMPORAL_STRIDE / units.FPS:.4g} s")
            new = holds
    if video_frames is not None:
        if video_frames <= frames:
            raise JobError(f"the video's {units.video_frames(video_frames)} pictures are all dubbed already: the "
                           f"clip so far has {so_far}")
        if video_frames - frames < new:
            messages.append(f"the video ends {(video_frames - frames) * units.TEMPORAL_STRIDE / units.FPS:.4g} s after "
                            f"the clip so far: dubbing the rest of it")
            new = video_frames - frames
    return Segment(1, frames - overlap, overlap + new, overlap)


def continuation_inputs(speech, caption, neg_caption, seed: int, seg: Segment, video: torch.Tensor, rows: torch.Tensor,
                        reference=None, voice=None, driving_audio=None, driving_video=None) -> Inputs:
    """The continuation segment's inputs: its prior is the clip's frames from seg.start on and the mel rows they
    cover (the clip's last ones); the driving audio and video are cut from the whole ones on the seam timeline,
    as generate_long cuts them."""
    if reference is None and driving_video is not None:
        reference = driving_video[:, :1]
    given = Inputs(speech, caption, neg_caption, seed, "auto", seg.seconds, reference=reference, voice=voice)
    return dataclasses.replace(given, **_cut_on_timeline(seg, video, rows, driving_audio, driving_video))

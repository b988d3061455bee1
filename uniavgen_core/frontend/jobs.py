"""The front end's one entry: from what a user gives (pictures and audio already prepared, texts, a
duration, a task or 'auto') to a sampler Request and the messages to show, by the task table. The ComfyUI
nodes, the small model's pipeline and the demo all go through `make_job`; plain PyTorch."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import units
from ..audio.mel import log_mel, normalise
from ..audio.speech_tokenizer import SpeechTokenizer, Tokens, is_chinese
from ..audio.transcript import wordless
from ..model.conditioning import Condition
from ..audio.inputs import fit_to_frames
from ..sampling import Request, SamplingParams
from ..sampling.tasks import TASKS, Given, TaskSpec, Voice, choose


class JobError(ValueError):
    pass


@dataclass
class Speech:
    tokens: Tokens            # conditional transcript (reference transcript + " " + text for RAVG)
    null: Tokens              # unconditional transcript
    text: str
    ref_text: str = ""


@dataclass(frozen=True)
class Speaker:
    """speak(text) -> the Speech of one slice of a long transcript, with the same reference transcript (RAVG);
    a plain object, so the ranks of a parallel run can be sent it."""
    tokenizer: SpeechTokenizer
    ref_text: str = ""
    lang: str = "auto"

    def __call__(self, text: str) -> Speech:
        ref = self.ref_text or None
        return Speech(self.tokenizer.encode(text, self.lang, ref_text=ref),
                      self.tokenizer.null(ref_text=ref, lang=self.lang), text, self.ref_text)


@dataclass
class Job:
    request: Request
    duration: units.Duration
    messages: list[str] = field(default_factory=list)


def fit_video(latent: torch.Tensor, duration: units.Duration) -> torch.Tensor:
    if latent.shape[1] < duration.latent_frames:
        raise JobError(f"the driving video covers {units.video_frames(latent.shape[1])} frames at {units.FPS} fps but "
                       f"{duration.video_frames} are to be generated; lower the duration or give a longer video")
    return latent[:, : duration.latent_frames]


# Fastest plausible speech: the release's own English example is 96 characters in 5.06 s (19/s).
MAX_CHARS_PER_SECOND = {"en": 30, "zh": 8}


def spoken_length(text: str, lang: str | None = None) -> tuple[int, str]:
    """(length, language) of a transcript as speaking rates count it: Chinese in characters (syllables), other
    text in characters with runs of white space as one; lang: the language to count in (default: the text's)."""
    lang = lang or SpeechTokenizer.detect_language(text)
    return (sum(1 for c in text if is_chinese(c)) if lang == "zh" else len(" ".join(text.split()))), lang


def speaking_rate(text: str, duration: units.Duration) -> list[str]:
    """A message when the transcript cannot be spoken in the clip's duration (the model then rushes or drops
    words): characters per second against a fast speaker's rate, Chinese counted in characters (syllables)."""
    count, lang = spoken_length(text)
    rate, limit = count / duration.seconds, MAX_CHARS_PER_SECOND[lang]
    if rate <= limit:
        return []
    return [f"the transcript has {count} characters for {duration.seconds:.2f} s ({rate:.0f} per second, a fast "
            f"speaker manages about {limit}): raise the duration to {count / limit:.1f} s or shorten the text"]


@dataclass
class Inputs:
    """What a user gives for one clip, in model space: pictures already encoded to normalised latents,
    captions to features, audio prepared as 24 kHz mono (audio.inputs). Which of the optional ones a task
    needs, the task table says."""
    speech: Speech
    caption: torch.Tensor                       # [rows, text_dim] caption features
    neg_caption: torch.Tensor
    seed: int
    task: str = "auto"                          # 'auto' or a Task's name
    seconds: float | None = None                # None: the length the model was trained on (dubbing: the video's)
    reference: torch.Tensor | None = None       # [C, 1, h, w] the face; dubbing takes the video's first frame
    voice: torch.Tensor | None = None           # a reference voice (audio.inputs.reference_voice)
    driving_audio: torch.Tensor | None = None   # levelled speech of any length (audio.inputs.level_driving_audio)
    driving_video: torch.Tensor | None = None   # [C, T, h, w] latents of the video to dub
    prior: tuple[torch.Tensor, torch.Tensor] | None = None   # continuation: the prior clip's last latent frames
                                                             # [C, k, h, w] and the mel rows they cover [m, 80]
                                                             # (a dubbing continuation takes only the rows)

    def given(self) -> set[str]:
        names = {"voice": self.voice, "driving_audio": self.driving_audio, "driving_video": self.driving_video,
                 "prior": self.prior}
        return {name for name, value in names.items() if value is not None}


def make_job(inputs: Inputs, trained_frames: int, num_layers: int, params: SamplingParams) -> Job:
    """The one front-end entry: the task, the clip's duration and the request from a user's inputs, with
    every message the user should read. The nodes, the small model's pipeline and the demo all call it."""
    try:
        task = choose(inputs.task, inputs.given())
    except ValueError as err:
        raise JobError(str(err)) from None
    spec = TASKS[task]
    messages = [f"task: {task.name}"]
    duration = _duration(spec, inputs, trained_frames, messages)
    reference = face(spec, inputs)
    if params.slg_layer >= num_layers:
        messages.append(f"skip-layer guidance off: layer {params.slg_layer} is beyond this model's {num_layers} "
                        f"layers")
    if spec.voice == Voice.NEEDED and not inputs.speech.ref_text:
        messages.append("voice cloning without the reference transcript: give it in Speech Text for better timbre")
    if spec.speaks:
        nothing = wordless(inputs.speech.text)
        if nothing:
            messages.append(f"the transcript has no words ({nothing}): the audio will have none")
        messages += speaking_rate(inputs.speech.text, duration)
    video_cond, cond_mel = _clean_parts(spec, inputs, reference, duration, messages)
    voice = inputs.voice if spec.voice != Voice.UNUSED else None
    if inputs.voice is not None and voice is None:
        messages.append(f"the reference voice is not used: {task.name} ({spec.title}) takes none")
    ref_mel = normalise(log_mel(voice)) if voice is not None else None
    make = lambda ids, cap: Condition(ids, cap, reference, video_cond, ref_mel, cond_mel)
    speech = inputs.speech
    request = Request(task, make(speech.tokens.padded(), inputs.caption),
                      make(speech.null.padded(), inputs.neg_caption), latent_frames=duration.latent_frames,
                      mel_frames=duration.mel_frames, seed=inputs.seed)
    return Job(request, duration, messages)


def face(spec: TaskSpec, inputs: Inputs) -> torch.Tensor:
    """The reference face latent [C, 1, h, w]: the one given, else (dubbing) the driving video's first frame."""
    if inputs.reference is not None:
        return inputs.reference
    if spec.reference_from_video:
        return inputs.driving_video[:, :1]      # the causal VAE's first latent frame is the first picture
    raise JobError(f"task {spec.task.name} needs a reference face: connect UniAVGen Reference Image")


def _duration(spec: TaskSpec, inputs: Inputs, trained_frames: int, messages: list[str]) -> units.Duration:
    """The clip's length: the one asked for (else the trained one); dubbing follows its video, of which
    a shorter duration dubs only the start."""
    trained = units.Duration.from_video_frames(trained_frames)
    wanted = trained if inputs.seconds is None else units.Duration.from_seconds(inputs.seconds)
    if spec.reference_from_video:
        longest = units.MAX_SECONDS * units.FPS + 1
        whole = units.Duration.from_video_frames(min(units.video_frames(inputs.driving_video.shape[1]), longest))
        if inputs.seconds is None or wanted.video_frames >= whole.video_frames:
            if wanted.video_frames > whole.video_frames and inputs.seconds is not None:
                messages.append(f"the video is {whole.seconds:.4g} s long: dubbing all of it")
            wanted = whole
        else:
            messages.append(f"dubbing the first {wanted.seconds:.4g} s of the {whole.seconds:.4g} s video")
    if wanted.video_frames > 1.5 * trained.video_frames:
        messages.append(f"{wanted.seconds:.2f} s is far past the {trained.seconds:.2f} s this model was trained on: "
                        f"expect the face and the voice to drift; chain clips for longer videos (the long-form "
                        f"workflow)")
    return wanted


def _clean_parts(spec: TaskSpec, inputs: Inputs, reference: torch.Tensor, duration: units.Duration,
                 messages: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The clean leading latent frames and mel rows the task gives the model."""
    video, mel = reference, None
    if spec.video == Given.ALL:
        video = fit_video(inputs.driving_video, duration)
    if spec.video == Given.PRIOR:
        video = inputs.prior[0]
        if video.shape[1] >= duration.latent_frames:
            raise JobError(f"the prior clip's {video.shape[1]} latent frames cover all {duration.latent_frames} of "
                           f"the {duration.seconds:.4g} s clip: give fewer prior frames or a longer duration")
    if spec.audio == Given.PRIOR:
        mel = inputs.prior[1].float()
        if mel.shape[0] >= duration.mel_frames:
            raise JobError(f"the prior clip's {mel.shape[0]} mel rows cover all {duration.mel_frames} of the "
                           f"{duration.seconds:.4g} s clip: give fewer prior rows or a longer duration")
    if video.shape[2:] != reference.shape[2:]:
        raise JobError(f"the {'driving video' if spec.video == Given.ALL else 'prior clip'} latent "
                       f"{tuple(video.shape[2:])} and reference {tuple(reference.shape[2:])} differ in size; encode "
                       f"both at one resolution")
    if spec.audio == Given.ALL:
        wave, fitted = fit_to_frames(inputs.driving_audio, duration.mel_frames)
        messages += fitted
        mel = normalise(log_mel(wave))
    return video, mel


def frame_masks(face_masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Face masks [layers, T, h', w'] of one sample -> [4T-3, height, width] per output video frame:
    the mean over interaction layers, latent frame i >= 1 repeated over its 4 video frames."""
    per_latent = face_masks.float().mean(dim=0)                                   # [T, h', w']
    frames = torch.cat([per_latent[:1], per_latent[1:].repeat_interleave(units.TEMPORAL_STRIDE, dim=0)])
    return F.interpolate(frames[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]

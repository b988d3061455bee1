"""From user-level inputs to a sampler Request: task choice, caption and duration fitting, and
face masks per output frame. Used by the ComfyUI nodes; plain PyTorch."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .. import units
from ..audio.mel import log_mel, normalise
from ..audio.speech_tokenizer import SpeechTokenizer, Tokens, is_chinese
from ..audio.transcript import wordless
from ..model.conditioning import Condition
from ..sampling import Request, Task


class JobError(ValueError):
    pass


@dataclass
class Speech:
    tokens: Tokens            # conditional transcript (reference transcript + " " + text for RAVG)
    null: Tokens              # unconditional transcript
    text: str
    ref_text: str = ""


@dataclass
class Job:
    request: Request
    duration: units.Duration
    messages: list[str] = field(default_factory=list)


def choose_task(task: str, has_voice: bool, has_driving_audio: bool, has_driving_video: bool) -> Task:
    """'auto' picks the task from what is connected; an explicit task must have its inputs."""
    if task == "auto":
        if has_driving_video:
            return Task.V2A
        if has_driving_audio:
            return Task.A2V
        return Task.RAVG if has_voice else Task.AVG
    chosen = Task[task]
    needs = {Task.RAVG: (has_voice, "a reference voice"), Task.A2V: (has_driving_audio, "driving audio"),
             Task.V2A: (has_driving_video, "a driving video")}
    if chosen in needs and not needs[chosen][0]:
        raise JobError(f"task {chosen.name} needs {needs[chosen][1]}; connect it or set task to auto")
    return chosen


def caption_features(conditioning, text_dim: int, text_len: int, what: str) -> tuple[torch.Tensor, list[str]]:
    """ComfyUI CONDITIONING from CLIPTextEncode (umT5, zero rows past the prompt) -> [rows, text_dim]."""
    try:
        features = conditioning[0][0]
    except (TypeError, IndexError, KeyError):
        raise JobError(f"{what}: expected a CONDITIONING from CLIPTextEncode") from None
    if not isinstance(features, torch.Tensor) or features.dim() != 3 or features.shape[-1] != text_dim:
        shape = tuple(features.shape) if isinstance(features, torch.Tensor) else type(features).__name__
        raise JobError(f"{what}: conditioning of shape {shape}; UniAVGen needs umT5-XXL features of width "
                       f"{text_dim} (CLIPLoader with type 'wan' and umt5_xxl)")
    messages = []
    features = features[0]
    # ComfyUI pads the prompt with zero rows to 512; the model pads with zero rows itself, so
    # dropping them changes nothing and tells the model how many rows are real.
    rows = int(features.abs().sum(dim=-1).nonzero().max()) + 1 if bool(features.any()) else 0
    if rows > text_len:
        messages.append(f"{what}: the prompt is longer than {text_len} tokens; the rest is ignored")
    return features[: min(rows, text_len)].float(), messages


def fit_video(latent: torch.Tensor, duration: units.Duration) -> torch.Tensor:
    if latent.shape[1] < duration.latent_frames:
        raise JobError(f"the driving video covers {units.video_frames(latent.shape[1])} frames at {units.FPS} fps but "
                       f"{duration.video_frames} are to be generated; lower the duration or give a longer video")
    return latent[:, : duration.latent_frames]


# Fastest plausible speech: the release's own English example is 96 characters in 5.06 s (19/s).
MAX_CHARS_PER_SECOND = {"en": 30, "zh": 8}


def speaking_rate(text: str, duration: units.Duration) -> list[str]:
    """A message when the transcript cannot be spoken in the clip's duration (the model then rushes or drops
    words): characters per second against a fast speaker's rate, Chinese counted in characters (syllables)."""
    lang = SpeechTokenizer.detect_language(text)
    count = sum(1 for c in text if is_chinese(c)) if lang == "zh" else len(" ".join(text.split()))
    rate, limit = count / duration.seconds, MAX_CHARS_PER_SECOND[lang]
    if rate <= limit:
        return []
    return [f"the transcript has {count} characters for {duration.seconds:.2f} s ({rate:.0f} per second, a fast "
            f"speaker manages about {limit}): raise the duration to {count / limit:.1f} s or shorten the text"]


def build_job(task: Task, speech: Speech, caption: torch.Tensor, neg_caption: torch.Tensor,
              ref_latent: torch.Tensor, duration: units.Duration, seed: int,
              voice_wave: torch.Tensor | None = None, driving_wave: torch.Tensor | None = None,
              video_latent: torch.Tensor | None = None) -> Job:
    """ref_latent [C, 1, h, w] and video_latent [C, T, h, w] are normalised latents; waves are
    prepared 24 kHz mono (audio.inputs.reference_voice / driving_audio)."""
    messages = []
    nothing = wordless(speech.text)
    if nothing and task != Task.A2V:
        messages.append(f"the transcript has no words ({nothing}): the audio will have none")
    if task != Task.A2V:
        messages += speaking_rate(speech.text, duration)
    cond_latent = ref_latent
    if task == Task.V2A:
        if video_latent is None:
            raise JobError("V2A needs a driving video")
        cond_latent = fit_video(video_latent, duration)
        if cond_latent.shape[2:] != ref_latent.shape[2:]:
            raise JobError(f"driving video latent {tuple(cond_latent.shape[2:])} and reference "
                           f"{tuple(ref_latent.shape[2:])} differ in size; encode both at one resolution")
    ref_mel = normalise(log_mel(voice_wave)) if task == Task.RAVG and voice_wave is not None else None
    cond_mel = None
    if task == Task.A2V:
        if driving_wave is None or driving_wave.shape[-1] != duration.mel_frames * units.HOP:
            raise JobError("A2V needs driving audio fitted to the duration (audio.inputs.driving_audio)")
        cond_mel = normalise(log_mel(driving_wave))
    make = lambda ids, cap: Condition(ids, cap, ref_latent, cond_latent, ref_mel, cond_mel)
    request = Request(task, make(speech.tokens.padded(), caption), make(speech.null.padded(), neg_caption),
                      latent_frames=duration.latent_frames, mel_frames=duration.mel_frames, seed=seed)
    return Job(request, duration, messages)


def frame_masks(face_masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Face masks [layers, T, h', w'] of one sample -> [4T-3, height, width] per output video frame:
    the mean over interaction layers, latent frame i >= 1 repeated over its 4 video frames."""
    per_latent = face_masks.float().mean(dim=0)                                   # [T, h', w']
    frames = torch.cat([per_latent[:1], per_latent[1:].repeat_interleave(units.TEMPORAL_STRIDE, dim=0)])
    return F.interpolate(frames[:, None], size=(height, width), mode="bilinear", align_corners=False)[:, 0]

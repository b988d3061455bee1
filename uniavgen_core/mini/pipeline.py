"""Generation with a small self-contained model and the weight-free stand-ins (the patch-PCA
video codec, Griffin-Lim and hashed captions), without ComfyUI.

It goes through the public API the nodes use: `load_model`, the speech tokenizer, the audio
front end (`audio.inputs`), the front-end entry `jobs.make_job` and `sample`. `make demo` and the lip-sync
evaluation run on it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import units
from ..audio.inputs import level_driving_audio, reference_voice
from ..audio.mel import denormalise
from ..audio.speech_tokenizer import SpeechTokenizer
from ..checkpoint.loading import CheckpointError, file_metadata, load_model, trained_frames
from .codecs.caption_hash import HashedCaptionEncoder
from .codecs.griffin_lim import GriffinLimVocoder
from .codecs.video_pca import PatchPCACodec
from ..frontend.jobs import Inputs, Job, Speaker, Speech, make_job
from ..frontend.long import DEFAULT_OVERLAP, LongResult, generate_long
from ..sampling import SampleResult, SamplingParams, Task, sample
from ..units import SAMPLE_RATE

# What the shipped small model was tuned with (see docs/mini_model.md).
MINI_SAMPLING = SamplingParams(steps=16, shift=5.0, video_cfg=1.5, audio_cfg=2.0, macfg_fraction=0.5, slg_layer=-1)


@dataclass
class Generated:
    frames: torch.Tensor        # [F, H, W, 3] float32 in [0, 1], 16 fps
    wave: torch.Tensor          # [N] float32, 24 kHz


class MiniPipeline:
    def __init__(self, model_path: str | os.PathLike, codec_path: str | os.PathLike | None = None,
                 device: str | torch.device = "cpu"):
        model_path = Path(model_path)
        if not model_path.is_file():
            raise CheckpointError(f"no small model at {model_path}: give the path of UniAVGen-mini.safetensors")
        meta = file_metadata([model_path])
        if "uniavgen_caption_encoder" not in meta or "uniavgen_vocab" not in meta:
            raise CheckpointError(f"{model_path} is not a self-contained small model (it lacks the embedded "
                                  f"vocabulary or caption encoder); use UniAVGen-mini.safetensors")
        self.model = load_model(model_path, dtype=torch.float32, device=device)
        self.device = torch.device(device)
        self.tokenizer = SpeechTokenizer.from_text(meta["uniavgen_vocab"])
        captions = json.loads(meta["uniavgen_caption_encoder"])
        self.captions = HashedCaptionEncoder(int(captions["dim"]), max_rows=self.model.config.text_len)
        if codec_path is None:
            codec_path = model_path.parent / meta.get("uniavgen_video_codec", "")
        self.codec = PatchPCACodec.load(codec_path)
        self.vocoder = GriffinLimVocoder()
        self.trained_frames = trained_frames(meta)

    @property
    def duration(self) -> units.Duration:
        """The clip length the model was trained on."""
        return units.Duration.from_video_frames(self.trained_frames)

    def speech(self, text: str, voice_text: str = "") -> Speech:
        """The transcript's tokens; with the cloned voice's transcript before it (RAVG)."""
        return Speaker(self.tokenizer, voice_text, "en")(text)

    def inputs(self, task: Task, text: str, caption: str, reference: torch.Tensor, seed: int,
               driving_wave: torch.Tensor | None = None, driving_frames: torch.Tensor | None = None,
               seconds: float | None = None, voice_wave: torch.Tensor | None = None, voice_text: str = "",
               prior: tuple[torch.Tensor, torch.Tensor] | None = None) -> Inputs:
        """reference: the face picture [H, W, 3] in [0, 1]; driving_wave: 24 kHz speech for A2V;
        driving_frames: [4k+1, H, W, 3] pictures at 16 fps for V2A; voice_wave: 24 kHz speech of the voice
        to clone (RAVG) and voice_text its transcript; prior: the latents [48, k, h, w] and normalised mel
        rows [m, 80] a continuation starts from. seconds: default the trained length (dubbing: the video's)."""
        prepare = lambda wave, how: None if wave is None else how(
            {"waveform": wave.reshape(1, 1, -1), "sample_rate": SAMPLE_RATE}).wave
        return Inputs(self.speech(text, voice_text), self.captions.encode(caption), self.captions.encode(""), seed,
                      task=Task(task).name, seconds=seconds, reference=self.codec.encode(reference[None].float()),
                      prior=prior, voice=prepare(voice_wave, reference_voice),
                      driving_audio=prepare(driving_wave, level_driving_audio),
                      driving_video=None if driving_frames is None else self.codec.encode(driving_frames.float()))

    def job(self, task: Task, text: str, caption: str, reference: torch.Tensor, seed: int,
            duration: units.Duration | None = None, **given) -> Job:
        """One clip's job: `inputs`' arguments, duration default the trained length (dubbing: the video's)."""
        inputs = self.inputs(task, text, caption, reference, seed,
                             seconds=None if duration is None else duration.seconds, **given)
        return make_job(inputs, self.trained_frames, self.model.config.num_layers, MINI_SAMPLING)

    def long(self, inputs: Inputs, params: SamplingParams = MINI_SAMPLING, overlap: int = DEFAULT_OVERLAP,
             voice_text: str = "", progress=None) -> tuple[LongResult, Generated]:
        """A job of any length (frontend/long.py) and its decoded pictures and speech. voice_text: the cloned
        voice's transcript, spoken before every segment's slice (RAVG)."""
        result = generate_long(self.model, inputs, self.trained_frames, params,
                               speak=lambda text: self.speech(text, voice_text), overlap=overlap, progress=progress,
                               device=self.device)
        wave = self.vocoder.decode(denormalise(result.audio[None]))["waveform"][0, 0]
        return result, Generated(self.codec.decode(result.video), wave)

    def generate(self, jobs: list[Job], params: SamplingParams = MINI_SAMPLING, callback=None) -> list[Generated]:
        """Sample jobs of one duration as one batch, then decode pictures and speech."""
        return self.decode(sample(self.model, [j.request for j in jobs], params, callback=callback,
                                  device=self.device))

    def decode(self, result: SampleResult) -> list[Generated]:
        """Pictures and speech of a sampled batch."""
        waves = self.vocoder.decode(denormalise(result.audio))["waveform"][:, 0]
        return [Generated(self.codec.decode(result.video[i].cpu()), waves[i]) for i in range(result.video.shape[0])]

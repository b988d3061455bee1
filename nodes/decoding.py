"""Mel -> AUDIO with the loaded vocoder (BigVGAN or Griffin-Lim), and a long talk saved as one mp4 a few seconds
at a time."""
from pathlib import Path

import torch

from uniavgen_core import units
from uniavgen_core.audio.mel import denormalise
from uniavgen_core.frontend.long import decode_windows, kept_pictures
from uniavgen_core.mp4 import Mp4Writer

from . import host
from .common import CATEGORY


class UniAVGenAudioDecode:
    DESCRIPTION = ("Turns the sampler's mel into 24 kHz audio with the loaded vocoder. Connect it to "
                   "PreviewAudio / SaveAudio, or with the decoded frames to CreateVideo (fps 16) -> SaveVideo.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("AUDIO",)
    RETURN_NAMES = ("audio",)
    FUNCTION = "decode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vocoder": ("UNIAVGEN_VOCODER", {"tooltip": "From UniAVGen Vocoder Loader."}),
            "mel": ("UNIAVGEN_MEL", {"tooltip": "The mel output of UniAVGen Sampler."}),
        }}

    def decode(self, vocoder, mel):
        mm = host.mm()
        try:
            audio = vocoder.decode(denormalise(mel["mel"]), mm.get_torch_device())
        finally:
            mm.soft_empty_cache()
        return (audio,)


class UniAVGenSaveLongVideo:
    DESCRIPTION = ("Saves a long talk as one mp4 with its speech without ever holding the whole video: the LATENT "
                   "is decoded a few seconds at a time and each part is written into the file straight away, so "
                   "memory stays that of one part however long the talk (as IMAGE frames, one minute at 736 x "
                   "1280 takes about 11 GB and ten minutes about 110 GB). Saved in ComfyUI's output folder like "
                   "Save Video, with the workflow in the file.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    RETURN_NAMES = ()
    FUNCTION = "save"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vae": ("VAE", {"tooltip": "The Wan2.2 VAE (or the small model's codec) that decodes the latent."}),
            "latent": ("LATENT", {"tooltip": "The long clip's LATENT: UniAVGen Long Sampler's, Extend's or the "
                                             "Sampler's."}),
            "audio": ("AUDIO", {"tooltip": "Its speech: UniAVGen Audio Decode of the same node's mel (or any "
                                           "AUDIO; cut to the video's length)."}),
            "filename_prefix": ("STRING", {"default": "UniAVGen/long_talk",
                                           "tooltip": "Where in ComfyUI's output folder, as for Save Video."}),
            "tile_frames": ("INT", {"default": 8, "min": 1, "max": 64,
                                    "tooltip": "Latent frames decoded at a time (4 pictures, 0.25 s each; default "
                                               "8: 2 s). Lower it when the VAE runs out of memory."}),
            "context_frames": ("INT", {"default": 2, "min": 1, "max": 16,
                                       "tooltip": "Latent frames before each part decoded again and dropped, so "
                                                  "that the VAE, which looks back in time, sees what came before "
                                                  "(default 2; at least 1)."}),
        }, "hidden": {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO"}}

    def save(self, vae, latent, audio, filename_prefix, tile_frames, context_frames, prompt=None,
             extra_pnginfo=None):
        samples, wave, rate = _long_inputs(latent, audio)
        fp = host.folder_paths()
        height, width = units.pixel_size(tuple(samples.shape[-2:]))
        folder, name, counter, subfolder, _ = fp.get_save_image_path(filename_prefix, fp.get_output_directory(),
                                                                     width, height)
        file = f"{name}_{counter:05}_.mp4"
        windows = decode_windows(samples.shape[2], tile_frames, context_frames)
        bar, mm = host.progress_bar(len(windows)), host.mm()
        writer = Mp4Writer(Path(folder) / file, units.FPS, metadata=_metadata(prompt, extra_pnginfo),
                           sample_rate=rate, channels=wave.shape[0])
        try:
            for lo, start, end in windows:
                mm.throw_exception_if_processing_interrupted()
                pictures = vae.decode(samples[:, :, lo:end])
                writer.add(pictures.reshape(-1, *pictures.shape[-3:])[kept_pictures(lo, start, end)])
                bar.update(1)
            writer.finish(wave)
        except BaseException:
            writer.abort()
            raise
        return {"ui": {"images": [{"filename": file, "subfolder": subfolder, "type": "output"}], "animated": (True,)}}


def _long_inputs(latent, audio) -> tuple[torch.Tensor, torch.Tensor, int]:
    """The LATENT's samples [1, C, F, h, w] and the AUDIO's wave [channels (1 or 2), N] and rate, checked."""
    samples = latent.get("samples") if isinstance(latent, dict) else None
    if not isinstance(samples, torch.Tensor) or samples.dim() != 5 or samples.shape[0] != 1:
        shape = tuple(samples.shape) if isinstance(samples, torch.Tensor) else type(samples).__name__
        raise ValueError(f"latent: expected the LATENT of one video ([1, channels, frames, h, w]) from UniAVGen "
                         f"Long Sampler, Extend or Sampler, got {shape}")
    wave = audio.get("waveform") if isinstance(audio, dict) else None
    rate = audio.get("sample_rate") if isinstance(audio, dict) else None
    if not isinstance(wave, torch.Tensor) or wave.dim() != 3 or not isinstance(rate, int) or rate < 8000:
        raise ValueError("audio: expected an AUDIO (waveform [1, channels, samples] and its sample rate), e.g. "
                         "UniAVGen Audio Decode's")
    wave = wave[0].float()
    if wave.shape[0] > 2:          # surround: mixed down to mono
        wave = wave.mean(dim=0, keepdim=True)
    if not bool(torch.isfinite(wave).all()):
        raise ValueError("audio: the waveform holds NaN or infinite samples; decode the mel again")
    return samples, wave, rate


def _metadata(prompt, extra_pnginfo) -> dict:
    """The workflow and prompt, as Save Video stores them, unless ComfyUI runs with --disable-metadata."""
    args = getattr(host.module("comfy.cli_args"), "args", None)
    if getattr(args, "disable_metadata", False):
        return {}
    return {**(extra_pnginfo or {}), **({"prompt": prompt} if prompt is not None else {})}

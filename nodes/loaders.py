"""Model and vocoder loaders."""
import logging

import torch

from uniavgen_core.audio.vocoder import Vocoder
from uniavgen_core.checkpoint.convert import convert
from uniavgen_core.checkpoint.loading import (
    DTYPES,
    RELEASE_TRAINED_FRAMES,
    embedded_vocab,
    file_metadata,
    is_scaled_fp8,
    open_model,
    trained_frames,
)
from uniavgen_core.model.attention import auto_order
from uniavgen_core.model.attention import choices as attention_choices
from uniavgen_core.model.attention import resolve_backend
from uniavgen_core.units import Duration

from . import folders, host
from .common import CATEGORY, with_messages

GRIFFIN_LIM = "griffin-lim (weight-free)"


class UniAVGenHandle(torch.nn.Module):
    """What ComfyUI's ModelPatcher manages: the DiT plus where it came from."""

    def __init__(self, model, path, trained_frames=RELEASE_TRAINED_FRAMES, weight_dtype="auto", attention="auto"):
        super().__init__()
        self.diffusion_model = model
        self.path = path
        self.trained_frames = trained_frames  # the clip length the model was trained on (video frames)
        self.weight_dtype, self.attention = weight_dtype, attention    # the loader's choices, for other devices


class UniAVGenModelLoader:
    DESCRIPTION = ("Loads the UniAVGen audio-video DiT (official Hugging Face folder or one .safetensors file) "
                   "from models/uniavgen or models/diffusion_models. ComfyUI's memory manager moves it to the "
                   "GPU when sampling and back when other models need the room.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (folders.dit_choices(), {"tooltip": "An official UniAVGen folder (shown as 'Name/', with "
                      "diffusion_pytorch_model.safetensors.index.json and its shards) or a single .safetensors. "
                      "UniAVGen-mini.safetensors, a small model at 128x128 px, ships with the pack."}),
            "weight_dtype": (["auto", "bf16", "fp16", "fp32"], {"default": "auto", "tooltip":
                             "Storage and compute precision. auto: bf16 on GPUs that support it (as released), "
                             "fp32 on the CPU; an fp8 file stays fp8 (dequantised per layer)."}),
        }, "optional": {
            "attention": (attention_choices(), {"default": "auto", "tooltip":
                          "Attention kernel. auto: the first installed of " + ", ".join(auto_order()) +
                          " (sdpa is PyTorch's own and always works). An unavailable choice falls back to sdpa "
                          "with the reason in the log."}),
            "block_swap": ("INT", {"default": 0, "min": 0, "max": 30, "tooltip":
                           "Layer pairs whose weights stay in CPU memory and are streamed to the GPU one layer "
                           "at a time (prefetched while the previous layer computes); ComfyUI's memory manager "
                           "only counts and moves the rest. Predicted GPU peak for a 5 s clip at 736x1312 with "
                           "block_swap 0 / 10 / 20 / 30: bf16 15.0 / 11.7 / 7.3 / 3.0 GiB, fp8 file 8.6 / 7.0 / "
                           "4.8 / 2.6 GiB (the README has the table per GPU size)."}),
            "compile": ("BOOLEAN", {"default": False, "tooltip":
                        "torch.compile the transformer blocks: the first run compiles (minutes), later steps "
                        "are faster. Needs a working Triton/compiler setup."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, model):
        if model is None or model in folders.dit_choices():
            return True
        return (f"UniAVGen model {model!r} is not in models/uniavgen or models/diffusion_models: put the official "
                f"UniAVGen folder (with diffusion_pytorch_model.safetensors.index.json) there and refresh")

    def load(self, model, weight_dtype, attention="auto", block_swap=0, compile=False):
        path = folders.resolve(model, folders.DIT_KEYS, "UniAVGen model")
        mm = host.mm()
        device, offload = mm.get_torch_device(), mm.unet_offload_device()
        fp8_ops = None
        if weight_dtype == "auto" and is_scaled_fp8(path):
            # fp8 weights stay fp8 and are dequantised per layer, by ComfyUI's scaled-fp8 layers
            fp8_ops = host.scaled_fp8_ops()
            if fp8_ops is None:
                logging.warning("UniAVGen: this ComfyUI has no scaled-fp8 layers; the fp8 model is loaded "
                                "whole with the pack's own layers (no partial loading, no LoRA)")
        net = open_model(path, weight_dtype, device, offload, ops=host.cast_ops(), fp8_ops=fp8_ops)
        net.attention_backend = resolve_backend(attention)
        if compile:
            net.compile_blocks()
        handle = UniAVGenHandle(net, path, trained_frames(file_metadata([path])), weight_dtype, attention)
        trained = Duration.from_video_frames(handle.trained_frames)
        messages = [f"trained on {trained.seconds:.2f} s clips ({trained.video_frames} frames)"]
        if not block_swap:
            return with_messages((host.model_patcher(handle, device, offload),), messages)
        # The swapped layer pairs stay on the CPU from now on: the memory manager moves and counts
        # only the rest, and writes LoRA patches in place, so they reach the swapped CPU copies too.
        net.set_block_swap(block_swap, device)
        size = net.block_swap.resident_bytes(handle)
        return with_messages((host.model_patcher(handle, device, offload, size=size, weight_inplace_update=True),),
                             messages)


class BigVGAN:
    """The release's vocoder, kept on the offload device and moved to the GPU for one decode."""

    def __init__(self, vocoder: Vocoder):
        self.vocoder = vocoder

    def decode(self, log_mel: torch.Tensor, device: torch.device) -> dict:
        model = self.vocoder.model
        offload = next(model.parameters()).device
        model.to(device)
        try:
            return self.vocoder.decode(log_mel)
        finally:
            model.to(offload)


class GriffinLim:
    """The weight-free vocoder; it runs where its input is."""

    def __init__(self):
        from uniavgen_core.mini.codecs.griffin_lim import GriffinLimVocoder  # here: it imports torchaudio
        self.vocoder = GriffinLimVocoder()

    def decode(self, log_mel: torch.Tensor, device: torch.device) -> dict:
        return self.vocoder.decode(log_mel.to(device))


class UniAVGenVocoderLoader:
    DESCRIPTION = ("Loads the vocoder that turns generated mel spectrograms into 24 kHz audio: the release's "
                   "BigVGAN (the code2wav_bigvgan_model folder: config.json + .safetensors) from models/uniavgen, or "
                   "Griffin-Lim, which needs no download but sounds phasey: enough for UniAVGen-mini, while the real "
                   "model deserves BigVGAN.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_VOCODER",)
    RETURN_NAMES = ("vocoder",)
    FUNCTION = "load"

    @classmethod
    def choices(cls) -> list[str]:
        return folders.vocoder_choices() + [GRIFFIN_LIM]

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "vocoder": (cls.choices(), {"tooltip": "A folder under models/uniavgen with the vocoder's config.json "
                        "and .safetensors weights, e.g. code2wav_bigvgan_model/. "
                        f"'{GRIFFIN_LIM}' needs no download but sounds phasey and metallic: it suits the small "
                        "UniAVGen-mini model; BigVGAN is much better for the real model."}),
            "precision": (["fp32", "bf16", "fp16"], {"default": "fp32", "tooltip":
                          "BigVGAN precision. fp32 is exact and the vocoder is small; bf16 saves memory. "
                          "Griffin-Lim always computes in fp32."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, vocoder):
        if vocoder is None or vocoder in cls.choices():
            return True
        return (f"vocoder {vocoder!r} is not in models/uniavgen: put the release's code2wav_bigvgan_model folder "
                f"(config.json + .safetensors) in models/uniavgen/UniAVGen/, where the README's download command "
                f"puts it, or anywhere under models/uniavgen; refresh and pick it, or choose '{GRIFFIN_LIM}'")

    def load(self, vocoder, precision):
        if vocoder == GRIFFIN_LIM:
            return (GriffinLim(),)
        path = folders.resolve(vocoder, (folders.KEY,), "vocoder")
        return (BigVGAN(Vocoder.from_folder(path, device=host.mm().unet_offload_device(), dtype=DTYPES[precision])),)


class UniAVGenConvertModel:
    DESCRIPTION = ("Writes the selected UniAVGen model as ONE .safetensors in models/uniavgen: bf16, or fp8 "
                   "(e4m3fn, per-tensor scaled; about half the size) with the configuration and the speech "
                   "vocabulary inside, so there is one file to manage. Never overwrites a file.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ()
    RETURN_NAMES = ()
    OUTPUT_NODE = True
    FUNCTION = "convert"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": (folders.dit_choices(), {"tooltip": "The UniAVGen model to convert (official folder or file)."}),
            "format": (["fp8", "bf16"], {"default": "fp8", "tooltip":
                       "fp8: transformer matrices in e4m3fn with a per-tensor scale, the rest bf16. bf16: all bf16."}),
            "filename": ("STRING", {"default": "UniAVGen_fp8", "tooltip":
                         "Name of the new file in models/uniavgen (letters, digits, '.', '_', '-'); "
                         ".safetensors is added."}),
        }}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")          # never served from ComfyUI's cache: each run reports what it did

    def convert(self, model, format, filename):
        name = filename.strip().removesuffix(".safetensors")
        if not name or name.startswith(".") or any(not (c.isalnum() or c in "._-") for c in name):
            raise ValueError(f"file name {filename!r}: use letters, digits, '.', '_' and '-' only")
        path = folders.resolve(model, folders.DIT_KEYS, "UniAVGen model")
        target = folders.roots(folders.KEY)[0] / f"{name}.safetensors"
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            return with_messages((), [f"skipped: {target} already exists and is never overwritten; give another "
                                      f"filename to write a new file"])
        try:
            written = convert(path, target, "fp8" if format == "fp8" else "bf16",
                              vocab=None if embedded_vocab(path) else folders.vocab_for(path))
        except FileExistsError as err:
            return with_messages((), [f"skipped: {err}"])
        except (FileNotFoundError, ValueError):
            raise
        except OSError as err:
            raise OSError(f"cannot write {target}: {err.strerror or err}; choose a models/uniavgen folder you can "
                          f"write to, with enough free space") from None
        return with_messages((), [f"wrote {written} ({written.stat().st_size / 2 ** 30:.2f} GiB); "
                                  f"refresh the browser to choose it in the loader"])

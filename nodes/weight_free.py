"""Nodes that need no downloaded file: the small model's video codec and caption encoder, and a
synthetic face to animate."""
import json
from pathlib import Path

import numpy as np
import torch

from uniavgen_core.checkpoint.loading import file_metadata
from uniavgen_core.mini.codecs.caption_hash import HashedCaptionEncoder
from uniavgen_core.mini.codecs.video_pca import PatchPCACodec
from uniavgen_core.units import LATENT_CHANNELS

from . import folders, host
from .common import CATEGORY

CAPTION_KEY = "uniavgen_caption_encoder"
SIZE_STEP = 32


class CodecVAE:
    """The patch-PCA codec behind the part of ComfyUI's VAE interface that the pack's nodes, VAEDecode
    and VAEEncode call. The codec's latents are normalised; this object speaks the Wan2.2 VAE's own
    (raw) space, like ComfyUI's Wan2.2 VAE, so the sampler's LATENT decodes with either. No tiling."""
    latent_channels = LATENT_CHANNELS

    def __init__(self, codec: PatchPCACodec):
        self.codec = codec
        self.format = host.wan22_format()

    def encode(self, pixels: torch.Tensor) -> torch.Tensor:
        """IMAGE [T, H, W, 3] (T = 4k+1, sides multiples of 16) -> raw latent [1, 48, 1+k, H/16, W/16]."""
        return self.format.process_out(self.codec.encode(pixels[None, ..., :3].float()))

    def decode(self, samples: torch.Tensor) -> torch.Tensor:
        """raw latent [B, 48, t, h, w] -> pictures [B, 4t-3, 16h, 16w, 3] in [0, 1]."""
        return self.codec.decode(self.format.process_in(samples.float()))


class UniAVGenVideoCodecLoader:
    DESCRIPTION = ("Loads the weight-free video codec of the small UniAVGen model (UniAVGen-mini, shipped with "
                   "the pack) as a VAE: use it wherever the Wan2.2 VAE goes (Reference Image, Video Encode, "
                   "VAEDecode). It is a fixed linear patch code for that model only: the real UniAVGen needs "
                   "the Wan2.2 VAE.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("VAE",)
    RETURN_NAMES = ("vae",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "codec": (folders.codec_choices(), {"tooltip": "A video codec file from models/uniavgen_codecs or "
                      "the pack's models_builtin/uniavgen_codecs (UniAVGen-mini-video-codec.safetensors goes "
                      "with UniAVGen-mini.safetensors)."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, codec):
        if codec is None or codec in folders.codec_choices():
            return True
        return f"video codec {codec!r} is not in models/uniavgen_codecs: put the codec file there and refresh"

    def load(self, codec):
        return (CodecVAE(PatchPCACodec.load(folders.resolve(codec, (folders.CODEC_KEY,), "video codec"))),)


def caption_encoder(model_path: Path) -> HashedCaptionEncoder:
    """The caption encoder a self-contained small model names in its metadata."""
    meta = file_metadata([model_path]) if model_path.is_file() else {}
    if CAPTION_KEY not in meta:
        raise ValueError(f"{model_path.name} has no built-in caption encoder (only the small UniAVGen-mini model "
                         f"has one): describe the scene with CLIPTextEncode and the umT5 text encoder "
                         f"(CLIPLoader, type wan, umt5_xxl)")
    spec = json.loads(meta[CAPTION_KEY])
    if spec.get("kind") != "hashed-words":
        raise ValueError(f"{model_path.name} asks for a caption encoder of kind {spec.get('kind')!r}; this version "
                         f"of the pack knows 'hashed-words' only")
    return HashedCaptionEncoder(int(spec["dim"]))


class UniAVGenCaptionEncode:
    DESCRIPTION = ("The scene description for the small UniAVGen-mini model, with the caption encoder named in its "
                   "file (one fixed vector per word: nothing to download). For the real UniAVGen use "
                   "CLIPTextEncode with the umT5 text encoder instead.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING",)
    RETURN_NAMES = ("conditioning",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("UNIAVGEN_MODEL", {"tooltip": "A small model with a built-in caption encoder "
                      "(UniAVGen-mini.safetensors) from UniAVGen Model Loader."}),
            "text": ("STRING", {"multiline": True, "default": "", "tooltip": "The caption, in lower-case English "
                     "words like the model's training captions. Empty gives an empty caption (the usual "
                     "negative)."}),
        }}

    def encode(self, model, text):
        # [1, words, dim]; an empty text gives [1, 0, dim], which the sampler reads as an empty caption.
        # Words past the model's caption length are left in: the sampler drops them and says so.
        return ([[caption_encoder(Path(model.model.path)).encode(text)[None], {}]],)


class UniAVGenSyntheticFace:
    DESCRIPTION = ("A procedural cartoon face like the ones UniAVGen-mini was trained on, with a caption that "
                   "describes it: a reference picture that needs no file. The same seed gives the same face.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "STRING")
    RETURN_NAMES = ("image", "caption")
    FUNCTION = "render"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "seed": ("INT", {"default": 0, "min": 0, "max": 0xFFFFFFFFFFFFFFFF, "control_after_generate": True,
                     "tooltip": "Which face: colours, hair, eyes, mouth and background follow from it."}),
            "size": ("INT", {"default": 128, "min": 64, "max": 1024, "step": SIZE_STEP, "tooltip":
                     "Width and height in pixels (a multiple of 32). UniAVGen-mini was trained at 128."}),
        }}

    def render(self, seed, size):
        if size % SIZE_STEP:
            raise ValueError(f"size {size} must be a multiple of {SIZE_STEP}")
        from uniavgen_core.synthetic import faces  # here: the package imports torchaudio, optional for the pack
        face = faces.random_face(np.random.default_rng(seed), size)
        return (faces.render(face, openness=torch.zeros(1), blink=torch.zeros(1)), faces.caption(face))

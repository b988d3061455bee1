"""Mel -> AUDIO with the loaded vocoder (BigVGAN or Griffin-Lim)."""
from uniavgen_core.audio.mel import denormalise

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

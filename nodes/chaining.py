"""Chaining clips into a longer video: the last frame of a clip (the next clip's face) and the
join of two clips whose second starts on the first one's last frame."""
from uniavgen_core.frontend import clips

from .common import CATEGORY, with_messages


class UniAVGenLastFrame:
    DESCRIPTION = ("The last frame of a clip, whatever its length: the face of the next clip when chaining "
                   "clips into a longer video.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    FUNCTION = "last"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"images": ("IMAGE", {"tooltip": "The frames of a clip (e.g. VAEDecode's output)."})}}

    def last(self, images):
        if images.dim() != 4 or images.shape[0] == 0:
            raise ValueError("images must be an IMAGE batch [frames, height, width, 3] with at least one frame")
        return (images[-1:],)


class UniAVGenJoinClips:
    DESCRIPTION = ("Joins two clips into one, frames and audio, when the second clip starts on the first one's "
                   "last frame (its face came from UniAVGen Last Frame): that repeated frame and its 1/16 s of "
                   "audio are dropped, so picture and sound stay in step. Works for any clip lengths; a clip "
                   "whose audio is more than a frame shorter or longer than its pictures is padded with silence "
                   "or cut to them, and the node says so.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("IMAGE", "AUDIO")
    RETURN_NAMES = ("images", "audio")
    FUNCTION = "join"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "images_1": ("IMAGE", {"tooltip": "Frames of the first clip (16 fps)."}),
            "audio_1": ("AUDIO", {"tooltip": "Audio of the first clip."}),
            "images_2": ("IMAGE", {"tooltip": "Frames of the second clip, whose first frame is the first clip's "
                                              "last."}),
            "audio_2": ("AUDIO", {"tooltip": "Audio of the second clip."}),
        }}

    def join(self, images_1, audio_1, images_2, audio_2):
        rate = audio_1["sample_rate"]
        if audio_2["sample_rate"] != rate:
            raise ValueError(f"the clips' audio rates differ ({rate} and {audio_2['sample_rate']} Hz); decode both "
                             f"with UniAVGen Audio Decode")
        frames, wave, messages = clips.join(images_1, audio_1["waveform"], images_2, audio_2["waveform"], rate)
        return with_messages((frames, {"waveform": wave, "sample_rate": rate}), messages)

"""Chaining clips into a longer video: the last frame of a clip (the next clip's face) and the
join of two clips whose second starts on the first one's last frame."""
import torch

from uniavgen_core.units import FPS

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
        if images_1.shape[1:] != images_2.shape[1:]:
            raise ValueError(f"the clips' frames differ in size ({tuple(images_1.shape[1:3])} and "
                             f"{tuple(images_2.shape[1:3])}); generate both at one resolution")
        if images_2.shape[0] < 2:
            raise ValueError("the second clip has fewer than 2 frames: nothing would remain after its first")
        rate = audio_1["sample_rate"]
        if audio_2["sample_rate"] != rate:
            raise ValueError(f"the clips' audio rates differ ({rate} and {audio_2['sample_rate']} Hz); decode both "
                             f"with UniAVGen Audio Decode")
        first, second = audio_1["waveform"], audio_2["waveform"]
        if first.shape[:2] != second.shape[:2]:
            raise ValueError(f"the clips' audio differ in batch or channels ({tuple(first.shape[:2])} and "
                             f"{tuple(second.shape[:2])})")
        messages = []
        first = _in_step(first, images_1.shape[0], rate, "the first clip", messages)
        second = _in_step(second, images_2.shape[0], rate, "the second clip", messages)
        skip = round(rate / FPS)                                  # the repeated frame's share of the audio
        waveform = torch.cat([first, second[..., skip:]], dim=-1)
        return with_messages((torch.cat([images_1, images_2[1:]]), {"waveform": waveform, "sample_rate": rate}),
                             messages)


def _in_step(wave: torch.Tensor, frames: int, rate: int, which: str, messages: list[str]) -> torch.Tensor:
    """A clip's audio as long as its pictures: left as it is within a frame's share (a decoded clip is a
    few ms short of its frames), else padded with silence or cut, and said, so the join stays in step."""
    want = round(frames * rate / FPS)
    have = wave.shape[-1]
    if abs(have - want) <= rate / FPS:
        return wave
    fix = "padded with silence" if have < want else "cut"
    messages.append(f"{which}'s audio lasts {have / rate:.2f} s but its {frames} frames last {frames / FPS:.2f} s "
                    f"at {FPS} fps: {fix} to {want / rate:.2f} s so that sound and picture stay in step (connect "
                    f"the audio made with these frames if this is not what you meant)")
    return torch.nn.functional.pad(wave, (0, want - have)) if have < want else wave[..., :want]

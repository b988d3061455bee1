"""Joining generated clips: a second clip that starts on the first one's last frame (its face came
from that frame) is appended without the repeated frame and its share of the audio, so picture and
sound stay in step for any clip lengths."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from ..units import FPS


def join(frames_1: torch.Tensor, wave_1: torch.Tensor, frames_2: torch.Tensor, wave_2: torch.Tensor,
         rate: int) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Pictures [T, H, W, 3] and audio [..., N] at `rate` of two clips -> the joined pictures, audio and
    messages. The second clip's first frame is dropped with its 1/16 s of audio."""
    if frames_1.shape[1:] != frames_2.shape[1:]:
        raise ValueError(f"the clips' frames differ in size ({tuple(frames_1.shape[1:3])} and "
                         f"{tuple(frames_2.shape[1:3])}); generate both at one resolution")
    if frames_2.shape[0] < 2:
        raise ValueError("the second clip has fewer than 2 frames: nothing would remain after its first")
    if wave_1.shape[:-1] != wave_2.shape[:-1]:
        raise ValueError(f"the clips' audio differ in batch or channels ({tuple(wave_1.shape[:-1])} and "
                         f"{tuple(wave_2.shape[:-1])})")
    messages = []
    first = in_step(wave_1, frames_1.shape[0], rate, "the first clip", messages)
    second = in_step(wave_2, frames_2.shape[0], rate, "the second clip", messages)
    skip = round(rate / FPS)                                  # the repeated frame's share of the audio
    return torch.cat([frames_1, frames_2[1:]]), torch.cat([first, second[..., skip:]], dim=-1), messages


def in_step(wave: torch.Tensor, frames: int, rate: int, which: str, messages: list[str]) -> torch.Tensor:
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
    return F.pad(wave, (0, want - have)) if have < want else wave[..., :want]

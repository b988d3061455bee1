"""Shared bits of the node adapters."""
import logging

import torch

CATEGORY = "UniAVGen"
log = logging.getLogger("UniAVGen")

RESOLUTIONS = ["official (short side 736)", "short side"]
CROPS = ["none", "face", "center"]
ASPECTS = ["keep", "1:1", "3:4", "4:3", "9:16", "16:9"]


def with_messages(result: tuple, messages: list[str]) -> dict:
    """A node return value that also shows `messages` (and logs them)."""
    for m in messages:
        log.warning(m)
    return {"ui": {"text": list(messages)}, "result": result}


def resolution_inputs() -> dict:
    return {
        "resolution": (RESOLUTIONS, {"default": RESOLUTIONS[0], "tooltip":
                       "official: scale the short side to 736 px and round both sides up to multiples of 32, "
                       "as the release does. short side: use the short_side value below."}),
        "short_side": ("INT", {"default": 480, "min": 64, "max": 2048, "step": 32, "tooltip":
                       "Used only when resolution is 'short side' (the node hides it otherwise): the short side in "
                       "pixels, a multiple of 32. The official resolution ignores it."}),
    }


def check_images(images, name: str) -> None:
    """An IMAGE batch [frames, height, width, channels] with something in it and only finite values."""
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or 0 in images.shape[:3] or images.shape[3] < 3:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be an IMAGE batch [frames, height, width, 3] with at least one pixel, got "
                         f"{shape}")
    if not images.is_floating_point() or not bool(torch.isfinite(images).all()):
        raise ValueError(f"{name} contains NaN, infinite or non-float pixels; the file is damaged or an upstream "
                         f"node produced invalid pictures")

"""Picture preparation: resolution policy, crops, frame-rate conversion (docs/MODEL.md §7.1).

Images are ComfyUI IMAGE tensors [T, H, W, 3] float in 0..1."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..units import FPS

ALIGN = 32                   # VAE x16, then 2x2 patches
OFFICIAL_SHORT_SIDE = 736    # ceil(720 / 32) * 32 in the release


def _check_size(height: int, width: int) -> None:
    if height < 1 or width < 1:
        raise ValueError(f"the picture is {width}x{height} px: it needs at least one pixel each way")


def official_size(height: int, width: int) -> tuple[int, int]:
    """The release's rule, float arithmetic included: scale the short side to 736, then round
    both sides up to multiples of 32 (some sizes land on 768, docs/MODEL.md §8.7)."""
    _check_size(height, width)
    scale = height / OFFICIAL_SHORT_SIDE if height < width else width / OFFICIAL_SHORT_SIDE
    return math.ceil(height / scale / ALIGN) * ALIGN, math.ceil(width / scale / ALIGN) * ALIGN


def short_side_size(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Short side exactly `short_side` (a multiple of 32), long side the nearest multiple of 32."""
    _check_size(height, width)
    if short_side % ALIGN or short_side < ALIGN:
        raise ValueError(f"short side {short_side} must be a positive multiple of {ALIGN}")
    if height <= width:
        return short_side, max(ALIGN, round(width * short_side / height / ALIGN) * ALIGN)
    return max(ALIGN, round(height * short_side / width / ALIGN) * ALIGN), short_side


MAX_ASPECT = 4.0             # refused beyond: the official size rule would grow the long side without bound
WIDE_ASPECT = 2.0            # warned beyond: the model was trained on pictures up to about 16:9
SMALL_UPSCALE = 2.0          # warned beyond: the picture is upscaled this much or more


def check_picture(height: int, width: int, out_h: int, out_w: int) -> list[str]:
    """Messages about a picture of height x width prepared at out_h x out_w; a ValueError for a
    shape the model cannot take (the official size of a 1 x 4000 strip would be gigapixels)."""
    _check_size(height, width)
    aspect = max(height, width) / min(height, width)
    if aspect > MAX_ASPECT:
        raise ValueError(f"the picture is {width}x{height} px, {aspect:.1f}:1; pictures up to {MAX_ASPECT:g}:1 are "
                         f"taken (the model was trained on about 16:9): crop it, e.g. crop center with an aspect")
    messages = []
    if aspect > WIDE_ASPECT:
        messages.append(f"the picture is {aspect:.1f}:1, wider than the model was trained on (about 16:9): "
                        f"expect weaker results, or crop it to 16:9 or 9:16")
    scale = min(out_h / height, out_w / width)
    if scale >= SMALL_UPSCALE:
        messages.append(f"the picture ({width}x{height} px) is upscaled {scale:.1f}x to {out_w}x{out_h}: the face "
                        f"will look soft; give a larger picture or a smaller short side")
    return messages


FLAT_SHARE = 0.97            # warned at or above: this share of the pixels lies within 2 of 255 levels of one value
FLAT_SAMPLE = 8              # frames of a video looked at


def check_contrast(pictures: torch.Tensor, what: str) -> list[str]:
    """A message for pictures [T, H, W, 3] that are nearly one flat colour: nothing for the model to
    animate, and often a file the image loader misread (a 16-bit PNG loads with every value above
    255 of 65535 clipped to white)."""
    step = max(1, pictures.shape[0] // FLAT_SAMPLE)
    grey = pictures[::step][:FLAT_SAMPLE, ..., :3].float().mean(-1)
    level = grey.median()
    share = float(((grey - level).abs() <= 2 / 255).float().mean())
    if share < FLAT_SHARE:
        return []
    tone = "white" if level > 0.85 else "black" if level < 0.15 else "one flat colour"
    return [f"{what} is almost all {tone} ({share:.0%} of its pixels have one value): there is no face to see. "
            f"A 16-bit or greyscale PNG can load like this; save it as an 8-bit RGB PNG or a JPEG"]


def crop_box(height: int, width: int, aspect: float, center: tuple[float, float] | None = None):
    """(top, left, h, w) of the largest window with width/height = aspect, centred on `center`
    (y, x in pixels; default the image centre) and kept inside the image."""
    if width / height > aspect:
        h, w = height, max(1, round(height * aspect))
    else:
        h, w = max(1, round(width / aspect)), width
    cy, cx = center if center is not None else (height / 2, width / 2)
    top = int(min(max(round(cy - h / 2), 0), height - h))
    left = int(min(max(round(cx - w / 2), 0), width - w))
    return top, left, h, w


def resize(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear, antialiased (as the release's torchvision Resize on PIL images)."""
    x = images.movedim(-1, 1).float()
    x = F.interpolate(x, size=(height, width), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(0, 1).movedim(1, -1)


def resample_frames(images: torch.Tensor, fps: float, target_fps: float = FPS) -> torch.Tensor:
    """Nearest-frame resampling of a clip from `fps` to `target_fps` (same duration)."""
    if not fps > 0:
        raise ValueError(f"frame rate must be positive, got {fps}")
    if abs(fps - target_fps) < 1e-6:
        return images
    count = max(1, math.floor(images.shape[0] * target_fps / fps + 1e-6))
    index = torch.clamp((torch.arange(count) * fps / target_fps + 1e-6).floor().long(), max=images.shape[0] - 1)
    return images[index]

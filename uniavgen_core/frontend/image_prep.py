"""Picture preparation: resolution policy, crops, frame-rate conversion (docs/MODEL.md §7.1).

Images are ComfyUI IMAGE tensors [T, H, W, 3] float in 0..1."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from ..units import FPS, SPATIAL_STRIDE, TEMPORAL_STRIDE
from .face import box_mask

ALIGN = 2 * SPATIAL_STRIDE   # the VAE's stride, then the model's 2 x 2 patches
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


def output_size(height: int, width: int, short_side: int | None = None) -> tuple[int, int]:
    """The size the model gets: the release's rule, or a short side of `short_side` pixels."""
    return official_size(height, width) if short_side is None else short_side_size(height, width, short_side)


def frame_reference(picture: torch.Tensor, aspect: float | None = None, box: tuple | None = None,
                    short_side: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """A face picture [1, H, W, 3] as the model gets it: cropped to width/height `aspect` (None: not
    cropped) around the face `box` (top, left, bottom, right; None: around the centre), then resized.
    Returns the picture, the face box as a mask [h, w] (empty without a box) and messages."""
    messages = check_contrast(picture, "the reference picture")
    _, height, width, _ = picture.shape
    if aspect is not None:
        centre = ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2) if box else None
        top, left, height, width = crop_box(height, width, aspect, centre)
        picture = picture[:, top: top + height, left: left + width]
        if box:
            box = (box[0] - top, box[1] - left, box[2] - top, box[3] - left)
    out_h, out_w = output_size(height, width, short_side)
    messages += check_picture(height, width, out_h, out_w)
    if box:
        box = (box[0] * out_h / height, box[1] * out_w / width, box[2] * out_h / height, box[3] * out_w / width)
    return resize(picture, out_h, out_w), box_mask(out_h, out_w, box), messages


def frame_video(frames: torch.Tensor, fps: float, short_side: int | None = None) -> tuple[torch.Tensor, list[str]]:
    """A clip's pictures [T, H, W, 3] at `fps` as the model gets them: resampled to 16 fps, cut to 4k+1
    frames (the VAE's stride), resized like a reference picture."""
    clip = resample_frames(frames, fps)
    messages = [] if abs(fps - FPS) < 1e-6 else [f"resampled {frames.shape[0]} frames at {fps:g} fps to "
                                                f"{clip.shape[0]} frames at {FPS} fps"]
    if clip.shape[0] < TEMPORAL_STRIDE + 1:
        raise ValueError(f"the video has {clip.shape[0]} frame(s) at {FPS} fps; dubbing needs at least "
                         f"{TEMPORAL_STRIDE + 1} ({(TEMPORAL_STRIDE + 1) / FPS:.2f} s)")
    usable = (clip.shape[0] - 1) // TEMPORAL_STRIDE * TEMPORAL_STRIDE + 1
    if usable != clip.shape[0]:
        messages.append(f"used the first {usable} of {clip.shape[0]} frames (the model needs 4k+1 frames)")
    clip = clip[:usable]
    out_h, out_w = output_size(clip.shape[1], clip.shape[2], short_side)
    messages += check_picture(clip.shape[1], clip.shape[2], out_h, out_w)
    messages += check_contrast(clip, "the video")
    return resize(clip, out_h, out_w), messages

"""Procedural cartoon faces with a large, clearly visible mouth, rendered with torch.

A clip's head is static: the background, head, hair and nose are drawn once and only the eyes
(blinks) and the mouth (opening) are redrawn per frame, inside their own boxes. Edges are
anti-aliased from (approximate) signed distances, and the mouth and eyes from exact per-column
coverage, so thin shapes such as a closed lip line or shut eyelids stay clean."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..units import FPS

Colour = tuple[float, float, float]

# name -> RGB; `_named` jitters them slightly so the name stays right
_BACKGROUNDS = {"yellow": (0.98, 0.88, 0.35), "blue": (0.35, 0.55, 0.9), "light blue": (0.65, 0.82, 0.98),
                "green": (0.4, 0.75, 0.4), "pink": (0.98, 0.7, 0.8), "purple": (0.6, 0.45, 0.8),
                "orange": (0.98, 0.6, 0.25), "gray": (0.6, 0.6, 0.62), "white": (0.95, 0.95, 0.93),
                "teal": (0.25, 0.65, 0.65), "red": (0.85, 0.3, 0.28), "beige": (0.9, 0.84, 0.7)}
_SKINS = {"pale": (0.99, 0.89, 0.8), "light": (0.96, 0.8, 0.67), "tan": (0.87, 0.66, 0.48),
          "olive": (0.78, 0.64, 0.46), "brown": (0.64, 0.44, 0.3), "dark brown": (0.5, 0.33, 0.22),
          "green": (0.58, 0.82, 0.52), "blue": (0.6, 0.74, 0.97), "purple": (0.78, 0.64, 0.93),
          "orange": (0.99, 0.72, 0.45), "pink": (1.0, 0.77, 0.82), "gray": (0.74, 0.74, 0.76),
          "yellow": (0.99, 0.9, 0.5)}
_HAIRS = {"black": (0.09, 0.08, 0.08), "brown": (0.42, 0.26, 0.13), "blonde": (0.95, 0.82, 0.45),
          "red": (0.78, 0.27, 0.1), "gray": (0.6, 0.6, 0.6), "white": (0.96, 0.96, 0.95),
          "blue": (0.2, 0.35, 0.85), "pink": (0.95, 0.45, 0.7), "green": (0.2, 0.6, 0.3),
          "purple": (0.5, 0.25, 0.7)}
_EYES = {"blue": (0.2, 0.45, 0.85), "green": (0.2, 0.6, 0.3), "brown": (0.45, 0.27, 0.1),
         "gray": (0.5, 0.55, 0.6), "black": (0.1, 0.1, 0.1), "purple": (0.55, 0.3, 0.75)}
_LIPS = {"red": (0.8, 0.15, 0.18), "pink": (0.92, 0.45, 0.58), "dark red": (0.7, 0.14, 0.22),
         "purple": (0.55, 0.25, 0.6), "orange": (0.93, 0.42, 0.2), "brown": (0.5, 0.28, 0.22)}
_SHIRTS = {"red": (0.8, 0.2, 0.2), "blue": (0.2, 0.35, 0.75), "green": (0.25, 0.6, 0.3),
           "yellow": (0.95, 0.8, 0.2), "white": (0.95, 0.95, 0.95), "black": (0.12, 0.12, 0.14),
           "gray": (0.5, 0.5, 0.52), "orange": (0.95, 0.55, 0.15), "purple": (0.5, 0.3, 0.7),
           "pink": (0.95, 0.6, 0.75)}
HAIR_STYLES = ("short", "long", "curly", "bald")
_INTERIOR: Colour = (0.2, 0.03, 0.05)
_TEETH: Colour = (0.96, 0.95, 0.9)
_SCLERA: Colour = (0.98, 0.98, 0.98)
_LINE: Colour = (0.1, 0.07, 0.07)
_LOWER_LIP = 1.15     # the lower lip is this much thicker than the upper


def _distance(a: Colour, b: Colour) -> float:
    return float(np.linalg.norm(np.subtract(a, b)))


@dataclass(frozen=True)
class Face:
    """One character; lengths are pixels of a `size` x `size` frame, colours RGB in [0, 1]."""
    size: int
    background: tuple[Colour, Colour]           # top and bottom of a vertical gradient
    background_name: str
    head: tuple[float, float, float, float]     # centre x, centre y, radius x, radius y
    skin: Colour
    skin_name: str
    hair_style: str                             # one of HAIR_STYLES
    hair: Colour
    hair_name: str
    shirt: Colour
    shirt_name: str
    eyes: tuple[float, float, float, float]     # centre y, half distance, radius x, radius y
    iris: Colour
    iris_name: str
    brows: bool
    mouth: tuple[float, float, float, float]    # centre x, centre y, half width, full opening height
    lip: Colour
    lip_name: str
    lip_thickness: float
    teeth: bool


def _named(rng: np.random.Generator, table: dict[str, Colour], accept=lambda c: True) -> tuple[str, Colour]:
    names = [n for n, c in table.items() if accept(c)]
    name = names[int(rng.integers(len(names)))]
    colour = np.clip(np.array(table[name]) + rng.uniform(-0.035, 0.035, 3), 0.0, 1.0)
    return name, tuple(float(v) for v in colour)


def random_face(rng: np.random.Generator, size: int = 128) -> Face:
    """A random character: the head fills 60-85 % of the frame height, the mouth is 30-45 % of the head
    width and opens 12-20 px at 128 px."""
    skin_name, skin = _named(rng, _SKINS)
    bg_name, bg = _named(rng, _BACKGROUNDS, lambda c: _distance(c, skin) > 0.3)
    bottom = tuple(float(v) for v in np.clip(np.array(bg) * rng.uniform(0.72, 0.9) + rng.uniform(-0.04, 0.04, 3), 0, 1))
    hair_style = HAIR_STYLES[int(rng.choice(4, p=[0.35, 0.3, 0.2, 0.15]))]
    hair_name, hair = _named(rng, {n: c for n, c in _HAIRS.items() if n != skin_name},
                             lambda c: _distance(c, skin) > 0.25)
    shirt_name, shirt = _named(rng, _SHIRTS, lambda c: _distance(c, bg) > 0.3)
    iris_name, iris = _named(rng, _EYES)
    lip_name, lip = _named(rng, _LIPS, lambda c: _distance(c, skin) > 0.3)

    s = size / 128
    ry = size * rng.uniform(0.3, 0.425)
    rx = ry * rng.uniform(0.78, 0.9)
    cx = size * (0.5 + rng.uniform(-0.05, 0.05))
    cy = size * (0.52 + rng.uniform(-0.03, 0.03))
    eyes = (cy - ry * rng.uniform(0.05, 0.15), rx * rng.uniform(0.36, 0.44), rx * rng.uniform(0.15, 0.19),
            ry * rng.uniform(0.1, 0.13))
    opening = float(np.clip(ry * rng.uniform(0.3, 0.4), 12 * s, 20 * s))
    mouth = (cx + rng.uniform(-0.02, 0.02) * rx, cy + ry * rng.uniform(0.47, 0.53), rx * rng.uniform(0.3, 0.45),
             opening)
    return Face(size, (bg, bottom), bg_name, (cx, cy, rx, ry), skin, skin_name, hair_style, hair, hair_name,
                shirt, shirt_name, eyes, iris, iris_name, bool(rng.random() < 0.7), mouth, lip, lip_name,
                s * rng.uniform(2.2, 3.2), bool(rng.random() < 0.5))


def _grid(top: int, left: int, bottom: int, right: int, scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Pixel-centre coordinates [rows, 1] and [1, cols] of a box, in units of the face's own frame."""
    y = (torch.arange(top, bottom, dtype=torch.float32) + 0.5) / scale
    x = (torch.arange(left, right, dtype=torch.float32) + 0.5) / scale
    return y[:, None], x[None, :]


def _ellipse(x, y, cx, cy, rx, ry, scale, wobble=None):
    """Anti-aliased coverage of an ellipse (first-order signed distance); `wobble(angle)` scales the radius."""
    u, v = (x - cx) / rx, (y - cy) / ry
    q = torch.sqrt(u * u + v * v)
    if wobble is not None:
        q = q / wobble(torch.atan2(v, u))
    grad = torch.sqrt((u / rx) ** 2 + (v / ry) ** 2) / q.clamp_min(1e-6)
    return (0.5 - (q - 1) / grad.clamp_min(1e-6) * scale).clamp(0, 1)


def _box(x, y, left, top, right, bottom, scale):
    inside = torch.minimum(torch.minimum(x - left, right - x), torch.minimum(y - top, bottom - y))
    return (0.5 + inside * scale).clamp(0, 1)


def _band(y, lo, hi, scale):
    """Coverage of each pixel row by the vertical interval [lo, hi] (exact box filter; hi < lo is empty)."""
    half = 0.5 / scale
    return ((torch.clamp(y + half, max=hi) - torch.clamp(y - half, min=lo)) * scale).clamp(0, 1)


def _paint(img, colour: Colour, alpha):
    return img + (torch.tensor(colour) - img) * alpha[..., None]


def _hair_front(face: Face, x, y, scale):
    """Coverage of the hair drawn over the head (zero for a bald head)."""
    cx, cy, rx, ry = face.head
    if face.hair_style == "bald":
        return torch.zeros(y.shape[0], x.shape[1])
    wobble = (lambda a: 1 + 0.045 * torch.sin(11 * a)) if face.hair_style == "curly" else None
    cap = _ellipse(x, y, cx, cy - 0.08 * ry, rx * 1.08, ry * 1.02, scale, wobble)
    hairline = cy - 0.5 * ry + 0.42 * ry * ((x - cx) / rx) ** 2
    return cap * ((hairline - y) * scale + 0.5).clamp(0, 1)


def _static(face: Face, size: int) -> torch.Tensor:
    """Everything but the eyes and the mouth: [size, size, 3]."""
    scale = size / face.size
    y, x = _grid(0, 0, size, size, scale)
    cx, cy, rx, ry = face.head
    top, bottom = torch.tensor(face.background[0]), torch.tensor(face.background[1])
    img = (top + (bottom - top) * (y / face.size)[..., None]).expand(size, size, 3)
    if face.hair_style == "long":
        back = torch.maximum(_ellipse(x, y, cx, cy - 0.08 * ry, rx * 1.25, ry * 1.05, scale),
                             _box(x, y, cx - 1.25 * rx, cy - 0.1 * ry, cx + 1.25 * rx, cy + 1.05 * ry, scale))
        img = _paint(img, face.hair, back)
    img = _paint(img, tuple(c * 0.82 for c in face.skin),
                 _box(x, y, cx - 0.36 * rx, cy + 0.4 * ry, cx + 0.36 * rx, face.size + 1, scale))
    img = _paint(img, face.shirt, _ellipse(x, y, cx, cy + 1.72 * ry, 1.9 * rx, 0.8 * ry, scale))
    ears = torch.maximum(_ellipse(x, y, cx - rx, cy + 0.02 * ry, 0.16 * rx, 0.22 * ry, scale),
                         _ellipse(x, y, cx + rx, cy + 0.02 * ry, 0.16 * rx, 0.22 * ry, scale))
    img = _paint(img, tuple(c * 0.9 for c in face.skin), ears)
    img = _paint(img, face.skin, _ellipse(x, y, cx, cy, rx, ry, scale))
    img = _paint(img, (1.0, 0.45, 0.5), 0.22 * torch.maximum(
        _ellipse(x, y, cx - 0.55 * rx, cy + 0.28 * ry, 0.17 * rx, 0.1 * ry, scale),
        _ellipse(x, y, cx + 0.55 * rx, cy + 0.28 * ry, 0.17 * rx, 0.1 * ry, scale)))
    img = _paint(img, tuple(c * 0.8 for c in face.skin),
                 _ellipse(x, y, cx, cy + 0.2 * ry, 0.09 * rx, 0.06 * ry, scale))
    ey, ed, erx, ery = face.eyes
    if face.brows:
        brow_colour = tuple(c * 0.6 for c in face.hair) if face.hair_style != "bald" else _LINE
        brows = torch.maximum(_ellipse(x, y, cx - ed, ey - 1.7 * ery, 1.2 * erx, 0.32 * ery, scale),
                              _ellipse(x, y, cx + ed, ey - 1.7 * ery, 1.2 * erx, 0.32 * ery, scale))
        img = _paint(img, brow_colour, brows)
    return _paint(img, face.hair, _hair_front(face, x, y, scale))


def _columns(x, cx, half_width, scale):
    """Per-column horizontal coverage of [cx - w, cx + w] and the profile sqrt(1 - (dx/w)^2)."""
    half_width = torch.as_tensor(half_width, dtype=torch.float32)
    dx = (x - cx) / half_width.clamp_min(1e-6)
    return ((half_width - (x - cx).abs()) * scale + 0.5).clamp(0, 1), (1 - dx * dx).clamp_min(0).sqrt()


def _lens(x, y, cx, cy, half_width, half_height, scale):
    """Coverage of an ellipse drawn column by column: exact for any height, including zero."""
    across, profile = _columns(x, cx, half_width, scale)
    h = half_height * profile
    return across * _band(y, cy - h, cy + h, scale)


def eye_box(face: Face, size: int) -> tuple[int, int, int, int]:
    scale = size / face.size
    cx = face.head[0]
    ey, ed, erx, ery = face.eyes
    return _clip_box(ey - ery - 2, cx - ed - erx - 2, ey + ery + 2, cx + ed + erx + 2, scale, size)


def mouth_box(face: Face, size: int | None = None) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), bottom/right exclusive: the pixels the mouth covers at full opening
    (lips included, one pixel of margin), at `size` (default: the face's own size)."""
    size = size or face.size
    mx, my, mw, opening = face.mouth
    lip = face.lip_thickness
    return _clip_box(my - opening / 2 - lip - 1, mx - mw - lip - 1, my + opening / 2 + _LOWER_LIP * lip + 1,
                     mx + mw + lip + 1, size / face.size, size)


def _clip_box(top, left, bottom, right, scale, size):
    return (max(int(np.floor(top * scale)), 0), max(int(np.floor(left * scale)), 0),
            min(int(np.ceil(bottom * scale)), size), min(int(np.ceil(right * scale)), size))


def _eyes(face: Face, crop: torch.Tensor, box, blink: torch.Tensor, scale: float) -> torch.Tensor:
    y, x = _grid(*box, scale)
    cx = face.head[0]
    ey, ed, erx, ery = face.eyes
    shut = blink[:, None, None]
    for ex in (cx - ed, cx + ed):
        open_ry = ery * (1 - shut)
        outline = _lens(x, y, ex, ey, erx + 1.0, open_ry + 0.9 * (1 - shut), scale)
        crop = _paint(crop, _LINE, outline)
        sclera = _lens(x, y, ex, ey, erx, open_ry, scale)
        crop = _paint(crop, _SCLERA, sclera)
        iris = _ellipse(x, y, ex, ey, 0.62 * ery, 0.62 * ery, scale) * sclera
        crop = _paint(crop, face.iris, iris)
        crop = _paint(crop, _LINE, _ellipse(x, y, ex, ey, 0.3 * ery, 0.3 * ery, scale) * sclera)
        lash = _columns(x, ex, erx + 1.0, scale)[0] * _band(y, ey - 0.6, ey + 0.6, scale)
        crop = _paint(crop, _LINE, lash * (2 * shut - 1).clamp(0, 1))
    return crop


def _mouth(face: Face, crop: torch.Tensor, box, openness: torch.Tensor, scale: float) -> torch.Tensor:
    y, x = _grid(*box, scale)
    mx, my, mw, opening = face.mouth
    o = openness[:, None, None]
    half_w = mw * (1 - 0.12 * o)                       # the corners draw in a little as the mouth opens
    lip_w = half_w + 0.5 * face.lip_thickness
    across, profile = _columns(x, mx, lip_w, scale)
    half_h = 0.5 * opening * o * _columns(x, mx, half_w, scale)[1]
    thick = face.lip_thickness * (0.35 + 0.65 * profile)
    crop = _paint(crop, face.lip, across * _band(y, my - half_h - thick, my + half_h + _LOWER_LIP * thick, scale))
    seam = _columns(x, mx, 0.96 * lip_w, scale)[0] * _band(y, my - 0.5, my + 0.5, scale)
    crop = _paint(crop, tuple(c * 0.75 for c in face.lip), seam)
    inside = _lens(x, y, mx, my, half_w, 0.5 * opening * o, scale)
    crop = _paint(crop, _INTERIOR, inside)
    if face.teeth:
        crop = _paint(crop, _TEETH, inside * _band(y, my - half_h, my - 0.7 * half_h, scale))
    return crop


def render(face: Face, openness: torch.Tensor, blink: torch.Tensor, size: int | None = None) -> torch.Tensor:
    """Frames [T, size, size, 3] float32 in [0, 1] for mouth openness [T] and eye closure [T], both in
    [0, 1]; `size` defaults to the face's own."""
    size = size or face.size
    scale = size / face.size
    openness = openness.float().clamp(0, 1)
    blink = blink.float().clamp(0, 1)
    base = _static(face, size)
    frames = base.expand(openness.shape[0], size, size, 3).contiguous()
    # the eye and mouth boxes are disjoint; each distinct value of a track is drawn once
    for box, draw, track in ((eye_box(face, size), _eyes, blink), (mouth_box(face, size), _mouth, openness)):
        top, left, bottom, right = box
        values, index = torch.unique(track, return_inverse=True)
        region = base[top:bottom, left:right].expand(len(values), bottom - top, right - left, 3)
        frames[:, top:bottom, left:right] = draw(face, region, box, values, scale)[index]
    return frames.clamp_(0, 1)


def face_mask(face: Face, size: int | None = None) -> torch.Tensor:
    """[size, size] float32 in [0, 1]: the visible face, i.e. the head ellipse (skin, eyes, brows, nose,
    mouth) minus the hair drawn over it; ears, neck and hair are not part of it."""
    size = size or face.size
    scale = size / face.size
    y, x = _grid(0, 0, size, size, scale)
    cx, cy, rx, ry = face.head
    return _ellipse(x, y, cx, cy, rx, ry, scale) * (1 - _hair_front(face, x, y, scale))


def caption(face: Face) -> str:
    """A one-sentence description of the rendered attributes."""
    hair = "a bald head" if face.hair_style == "bald" else f"{face.hair_style} {face.hair_name} hair"
    return (f"a person with {face.skin_name} skin, {hair}, {face.iris_name} eyes and {face.lip_name} lips, "
            f"wearing {_a(face.shirt_name)} shirt, in front of {_a(face.background_name)} background")


def _a(words: str) -> str:
    return ("an " if words[0] in "aeiou" else "a ") + words


def blinks(rng: np.random.Generator, frames: int, fps: int = FPS) -> torch.Tensor:
    """Eye closure [frames] in [0, 1]: three-frame blinks (half, fully, half closed) 2-5 s apart, the
    first within 3 s."""
    track = np.zeros(frames + 2, np.float32)        # one spare frame either side
    at = rng.uniform(0.2, 3.0)
    while at < frames / fps:
        k = int(at * fps) + 1
        track[k - 1:k + 2] = np.maximum(track[k - 1:k + 2], [0.5, 1.0, 0.5])
        at += rng.uniform(2.0, 5.0)
    return torch.from_numpy(track[1:-1].copy())

"""Optional face detection with insightface (models under ComfyUI's models/insightface)."""
from __future__ import annotations

import functools

import torch


class FaceDetectorUnavailable(RuntimeError):
    pass


@functools.lru_cache(maxsize=2)
def _app(root: str):
    try:
        from insightface.app import FaceAnalysis
    except ImportError:
        raise FaceDetectorUnavailable("insightface is not installed (pip install insightface onnxruntime)") from None
    try:
        app = FaceAnalysis(name="buffalo_l", root=root, allowed_modules=["detection"],
                           providers=["CPUExecutionProvider"])
        app.prepare(ctx_id=-1, det_size=(640, 640))
    except Exception as err:  # insightface raises assorted errors for missing model files
        raise FaceDetectorUnavailable(f"insightface models not found under {root}/models/buffalo_l ({err})") from None
    return app


def detect_face(image: torch.Tensor, root: str) -> tuple[float, float, float, float] | None:
    """Largest face in an IMAGE frame [H, W, 3] (0..1) as (top, left, bottom, right) pixels, or None."""
    bgr = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()[..., ::-1].copy()
    faces = _app(root).get(bgr)
    if not faces:
        return None
    x0, y0, x1, y1 = max(faces, key=lambda f: (f.bbox[2] - f.bbox[0]) * (f.bbox[3] - f.bbox[1])).bbox
    return float(y0), float(x0), float(y1), float(x1)


def box_mask(height: int, width: int, box: tuple[float, float, float, float] | None) -> torch.Tensor:
    """[H, W] float mask, 1 inside the box (empty without a box)."""
    mask = torch.zeros(height, width)
    if box is not None:
        top, left, bottom, right = (int(round(v)) for v in box)
        mask[max(top, 0): max(bottom, 0), max(left, 0): max(right, 0)] = 1.0
    return mask

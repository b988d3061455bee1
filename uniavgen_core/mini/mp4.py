"""Writing a clip (frames and speech) as an mp4 that any player opens."""
from __future__ import annotations

from pathlib import Path

import torch

from ..units import FPS, SAMPLE_RATE


def write_mp4(path: Path, frames: torch.Tensor, wave: torch.Tensor, fps: int = FPS, scale: int = 1):
    """frames [T, H, W, 3] in 0..1 (shown `scale` times larger) and a mono 24 kHz wave -> h264 + AAC."""
    import av
    import numpy as np

    pictures = torch.nn.functional.interpolate(frames.permute(0, 3, 1, 2), scale_factor=scale, mode="bilinear",
                                               align_corners=False).clamp(0, 1)
    pictures = (pictures.permute(0, 2, 3, 1) * 255).round().to(torch.uint8).numpy()
    with av.open(str(path), "w") as box:
        video = box.add_stream("libx264", rate=fps, options={"crf": "18"})
        video.width, video.height, video.pix_fmt = pictures.shape[2], pictures.shape[1], "yuv420p"
        audio = box.add_stream("aac", rate=SAMPLE_RATE, layout="mono")
        for picture in pictures:
            for packet in video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                box.mux(packet)
        samples = wave.clamp(-1, 1).numpy().astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = SAMPLE_RATE
        for packet in audio.encode(frame):
            box.mux(packet)
        for stream in (video, audio):
            for packet in stream.encode(None):
                box.mux(packet)

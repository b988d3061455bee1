"""Writing pictures and sound as an mp4 that any player opens (h264 + AAC), whole or a few pictures at a time, so
that a long video never has to be held in memory (PyAV)."""
from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import torch

from .units import FPS, SAMPLE_RATE


class Mp4Writer:
    """`add` pictures [T, H, W, 3] in 0..1 as they come (shown `scale` times larger), then `finish` with the sound
    ([channels, N] or mono [N] at `sample_rate`, 1 or 2 channels), cut to the pictures' length. metadata:
    container tags (a value that is not a string is stored as JSON), e.g. ComfyUI's prompt and workflow, which its
    frontend reads back from the file."""

    def __init__(self, path: str | Path, fps: int = FPS, scale: int = 1, crf: int = 18, metadata: dict | None = None,
                 sample_rate: int = SAMPLE_RATE, channels: int = 1):
        import av

        if channels not in (1, 2):
            raise ValueError(f"the sound has {channels} channels; an mp4 here carries mono or stereo: mix it down")
        self.box = av.open(str(path), "w", options={"movflags": "use_metadata_tags"})
        for key, value in (metadata or {}).items():
            self.box.metadata[key] = value if isinstance(value, str) else json.dumps(value)
        self.fps, self.scale, self.crf, self.pictures = fps, scale, crf, 0
        self.rate, self.layout = sample_rate, "mono" if channels == 1 else "stereo"
        self.video = self.audio = None

    def _streams(self, width: int, height: int) -> None:
        """Every stream is added before the first picture is muxed (the container's header lists them)."""
        self.video = self.box.add_stream("libx264", rate=self.fps, options={"crf": str(self.crf)})
        self.video.width, self.video.height, self.video.pix_fmt = width, height, "yuv420p"
        self.audio = self.box.add_stream("aac", rate=self.rate, layout=self.layout)

    def add(self, frames: torch.Tensor) -> None:
        import av

        pictures = frames.float().permute(0, 3, 1, 2)
        if self.scale != 1:
            pictures = torch.nn.functional.interpolate(pictures, scale_factor=self.scale, mode="bilinear",
                                                       align_corners=False)
        pictures = (pictures.clamp(0, 1).permute(0, 2, 3, 1) * 255).round().to(torch.uint8).cpu().numpy()
        if self.video is None:
            self._streams(pictures.shape[2], pictures.shape[1])
        for picture in pictures:
            for packet in self.video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")):
                self.box.mux(packet)
        self.pictures += pictures.shape[0]

    def abort(self) -> None:
        """Close and delete the unfinished file."""
        try:
            self.box.close()
        except Exception:       # a half-written container may not close cleanly; it is deleted either way
            pass
        Path(self.box.name).unlink(missing_ok=True)

    def finish(self, wave: torch.Tensor) -> None:
        import av
        import numpy as np

        try:
            if self.video is None:
                raise ValueError("no pictures were added: an mp4 needs at least one")
            for packet in self.video.encode(None):
                self.box.mux(packet)
            samples = wave.float().reshape(-1, wave.shape[-1])[:, : round(self.pictures / self.fps * self.rate)]
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples.clamp(-1, 1).cpu().numpy()),
                                               format="fltp", layout=self.layout)
            frame.sample_rate = self.rate
            # a start time lets the encoder mark its priming samples (1024 for AAC) for players to skip; without it
            # they are played, and the sound lags the pictures by 43 ms at 24 kHz
            frame.pts, frame.time_base = 0, Fraction(1, self.rate)
            for packet in [*self.audio.encode(frame), *self.audio.encode(None)]:
                self.box.mux(packet)
        finally:
            self.box.close()


def write_mp4(path: Path, frames: torch.Tensor, wave: torch.Tensor, fps: int = FPS, scale: int = 1):
    """frames [T, H, W, 3] in 0..1 (shown `scale` times larger) and a mono 24 kHz wave -> h264 + AAC."""
    writer = Mp4Writer(path, fps, scale)
    writer.add(frames)
    writer.finish(wave)

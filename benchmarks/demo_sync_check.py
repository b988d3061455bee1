"""A lip-sync check of finished clips that uses nothing of the pack's own metric: the motion of the picture's most
varying pixels against the energy of the clip's audio, read back from the mp4 files themselves.

    python benchmarks/demo_sync_check.py build/demo/avg.mp4 build/demo/a2v.mp4 build/demo/v2a.mp4

Per clip: r, the size of the Pearson correlation between how far the top `--top` fraction of pixels by temporal
variance (a moving mouth, or whatever moves most) are from their median picture and the log of the audio's RMS
over each frame interval (its size: whether the median picture is an open or a closed mouth decides the sign);
its null, the `--null-quantile` of the same figure with the audio moved circularly by every shift of at least
`--min-shift` frames (how high an unrelated alignment of this picture and this audio scores). A clip passes with
r >= --min-score and r >= null + --margin; the exit status is 1 when any clip fails. On the v1 demo clips it reads
AVG 0.18 (null 0.29), A2V 0.47 (0.28), V2A 0.83 (0.59).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from uniavgen_core.audio.levels import read_audio  # noqa: E402


def read_clip(path: Path) -> tuple[np.ndarray, float, np.ndarray, int]:
    """Grey frames [T, H, W] in [0, 1], frame rate, mono audio samples (channels averaged, as float) and their
    rate; both streams taken to start together, as the players do with files that mark their audio priming."""
    with av.open(str(path)) as box:
        if not box.streams.video or not box.streams.audio:
            raise ValueError(f"{path} needs both a video and an audio stream")
        vstream = box.streams.video[0]
        rate = vstream.average_rate or vstream.guessed_rate
        if not rate:
            raise ValueError(f"{path}: its video stream states no frame rate")
        frames = [f.to_ndarray(format="gray").astype(np.float32) / 255.0 for f in box.decode(vstream)]
    if len(frames) < 2:
        raise ValueError(f"{path} holds {len(frames)} picture(s); a clip needs at least 2")
    audio, audio_rate = read_audio(path)
    return np.stack(frames), float(rate), audio.mean(dim=0).double().numpy(), audio_rate


def frame_energy(audio: np.ndarray, rate: int, fps: float, count: int) -> np.ndarray:
    """RMS of the audio over each frame's interval [i / fps, (i + 1) / fps)."""
    edges = np.round(np.arange(count + 1) * rate / fps).astype(int)
    out = np.zeros(count)
    for i in range(count):
        part = audio[edges[i]:edges[i + 1]]
        out[i] = np.sqrt(np.mean(part ** 2)) if part.size else 0.0
    return out


def sync_score(frames: np.ndarray, fps: float, audio: np.ndarray, rate: int, top: float, min_shift: int,
               quantile: float) -> tuple[float, float]:
    """(r, null) of one clip, as the module's docstring defines them."""
    if len(frames) < 2 * min_shift + 2:
        raise ValueError(f"{len(frames)} frames are too few for shifts of {min_shift} frames")
    if len(audio) < round(len(frames) / fps * rate * 0.9):
        raise ValueError(f"the sound ({len(audio) / rate:.2f} s) ends well before the pictures "
                         f"({len(frames) / fps:.2f} s)")
    variance = frames.var(axis=0).ravel()
    keep = np.argsort(variance)[-max(16, int(top * variance.size)):]
    moving = frames.reshape(len(frames), -1)[:, keep]
    opening = np.abs(moving - np.median(moving, axis=0)).mean(axis=1)
    energy = np.log(frame_energy(audio, rate, fps, len(frames)) + 1e-3)
    if np.ptp(opening) == 0:
        raise ValueError("nothing moves in the picture")
    if np.ptp(energy) == 0:
        raise ValueError("the sound is silent")
    size_r = lambda shift: abs(float(np.corrcoef(opening, np.roll(energy, shift))[0, 1]))
    null = [size_r(k) for k in range(min_shift, len(opening) - min_shift + 1)]
    return size_r(0), float(np.quantile(null, quantile))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("clips", nargs="+", type=Path)
    parser.add_argument("--top", type=float, default=0.01, help="fraction of pixels kept by temporal variance")
    parser.add_argument("--min-shift", type=int, default=4, help="smallest circular shift of the null (frames)")
    parser.add_argument("--null-quantile", type=float, default=0.9)
    parser.add_argument("--min-score", type=float, default=0.3)
    parser.add_argument("--margin", type=float, default=0.1)
    args = parser.parse_args(argv)
    if not 0 < args.top <= 1 or args.min_shift < 1 or not 0 <= args.null_quantile <= 1:
        parser.error("--top must be in (0, 1], --min-shift at least 1, --null-quantile in [0, 1]")
    failed = False
    print("| clip | r | null | passes |\n|---|---|---|---|")
    for path in args.clips:
        try:
            if not path.is_file():
                raise ValueError("no such file")
            frames, fps, audio, rate = read_clip(path)
            r, null = sync_score(frames, fps, audio, rate, args.top, args.min_shift, args.null_quantile)
        except (ValueError, av.error.FFmpegError) as err:
            print(f"error: {path}: {err}", file=sys.stderr)
            return 2
        ok = r >= args.min_score and r >= null + args.margin
        failed |= not ok
        print(f"| {path.name} | {r:.2f} | {null:.2f} | {'yes' if ok else 'no'} |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

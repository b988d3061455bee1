"""The output levels of media files: what a listener gets.

    python -m uniavgen_core.cli.levels FILE [FILE ...]    # mp4, flac, wav: what a listener gets

For the first audio stream of each file: the peak, the RMS and active level (dBFS), the crest factor and
the share of clipped samples (uniavgen_core/audio/levels.py measures them).
"""
from __future__ import annotations

import sys

from ..audio.levels import measure, read_audio


def main(argv=None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    if not paths:
        print(__doc__.splitlines()[2].strip(), file=sys.stderr)
        return 2
    for path in paths:
        wave, rate = read_audio(path)
        print(f"{path}: {wave.shape[-1] / rate:.2f} s at {rate} Hz  {measure(wave).row()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

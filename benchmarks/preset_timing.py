"""Wall time of the named sampling presets against the release's, on the small model, in one run.

    python benchmarks/preset_timing.py [MODEL CODEC] [--clips 16] [--repeats 3] [--threads 2]

For AVG, A2V and V2A on held-out validation clips (the sampling table's), every preset in
uniavgen_core.sampling.presets.PRESETS samples the same clips from the same noise, one clip at a time as the
Sampler node does (a step cache decides for the batch it is given); the presets take turns (release, fast,
release, fast, ...) so that a change of the machine's load falls on all of them, and the median of the repeats
(each the time of all the clips) is reported with each preset's model evaluations per clip (their range where a
step cache makes them differ) and its time as a fraction of the release's. The sampling alone is timed (not the
decoding). Run it on a machine doing nothing else.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from uniavgen_core.demo import CODEC, MODEL  # noqa: E402
from uniavgen_core.mini.pipeline import MINI_SAMPLING, MiniPipeline  # noqa: E402
from uniavgen_core.sampling import sample  # noqa: E402
from uniavgen_core.sampling.presets import PRESETS  # noqa: E402
from uniavgen_core.training.evaluate import held_out  # noqa: E402
from uniavgen_core.training.sampling_table import SETUPS, count_range  # noqa: E402
from uniavgen_core.training.smoothness import job  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", nargs="?", default=str(MODEL))
    parser.add_argument("codec", nargs="?", default=str(CODEC))
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = MiniPipeline(args.model, args.codec)
    clips = held_out(args.clips, "validation")
    print(f"| task | preset | evaluations per clip | seconds (median of {args.repeats}) | of the release's |")
    print("|---|---|---|---|---|")
    for setup in SETUPS:
        requests = [job(pipe, setup, c, seed=i).request for i, c in enumerate(clips)]
        seconds, evaluations = {name: [] for name in PRESETS}, {}
        for _ in range(args.repeats):
            for name, preset in PRESETS.items():
                start = time.perf_counter()
                counts = [sample(pipe.model, [r], preset.apply(MINI_SAMPLING), device=pipe.device).evaluations
                          for r in requests]
                seconds[name].append(time.perf_counter() - start)
                evaluations[name] = count_range(counts)
        release = statistics.median(seconds["release"])
        for name in PRESETS:
            median = statistics.median(seconds[name])
            print(f"| {setup.upper()} | {name} | {evaluations[name]} | {median:.2f} | {median / release:.2f} |",
                  flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

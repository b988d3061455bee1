"""Where a small model's clips go wrong: how far its ODE is from converging, and which latent channels its
generated pictures get wrong, on held-out validation clips.

    python benchmarks/mini_diagnosis.py MODEL CODEC [--clips 4] [--cfg 1 1.5 3] [--out diagnosis.json]

convergence  |E(N) - E(2N)| / |E(2N)| for Euler at N = 12 ... 192 steps (AVG, the model's guidance and
             without any): a first-order solver halves it with every doubling once inside its asymptotic
             range; before that, no solver's order shows.
channels     A2V driven by each clip's own speech remakes the clip's pictures: per latent channel the
             generated spread against the data's, and the error weighted by the codec's pixel scale of the
             channel, relative to a still copy of the first latent frame, for each video guidance scale.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from uniavgen_core.mini.pipeline import MINI_SAMPLING, MiniPipeline  # noqa: E402
from uniavgen_core.sampling import sample  # noqa: E402
from uniavgen_core.training import smoothness  # noqa: E402
from uniavgen_core.training.evaluate import held_out  # noqa: E402

def step_counts(most: int) -> list[int]:
    """12, 24, 48, ... up to `most`."""
    return [12 * 2 ** i for i in range(16) if 12 * 2 ** i <= most]


def convergence(pipe: MiniPipeline, clips, params, steps: list[int]) -> dict:
    """{modality: [|E(N) - E(2N)| / |E(2N)| for N in steps[:-1]]} on the generated parts of AVG."""
    jobs = [smoothness.job(pipe, "avg", c, seed=i) for i, c in enumerate(clips)]
    runs = [sample(pipe.model, [j.request for j in jobs], dataclasses.replace(params, steps=n, schedule="shifted"))
            for n in steps]
    out = {}
    for m in ("video", "audio"):
        out[m] = [float((getattr(a, m) - getattr(b, m)).norm() / getattr(b, m).norm()) for a, b in zip(runs, runs[1:])]
    return out


def channels(pipe: MiniPipeline, clips, params) -> dict:
    """Per-channel spread and pixel-weighted error of A2V's generated latents against the clips' own."""
    jobs = [smoothness.job(pipe, "a2v", c, seed=i) for i, c in enumerate(clips)]
    truth = torch.stack([smoothness.clean_state(pipe, c)[0] for c in clips])
    made = sample(pipe.model, [j.request for j in jobs], params).video[:, :, 1:]
    real, still = truth[:, :, 1:], truth[:, :, :1].expand_as(truth[:, :, 1:])
    pixel = pipe.codec.channel_std.view(1, -1, 1, 1, 1)
    dims = (0, 2, 3, 4)
    return {"generated_std": made.std(dim=dims).tolist(), "data_std": real.std(dim=dims).tolist(),
            "pixel_error": ((made - real) * pixel).square().mean(dim=dims).sqrt().tolist(),
            "error_over_still": float(((made - real) * pixel).norm() / ((still - real) * pixel).norm())}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("codec")
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--cfg", type=float, nargs="+", default=[1.0, 1.5, 3.0], help="video guidance scales")
    parser.add_argument("--max-steps", type=int, default=192, help="the most Euler steps of the convergence check")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    steps = step_counts(args.max_steps)
    if len(steps) < 2 or args.clips < 1:
        parser.error("--max-steps must be at least 24 and --clips at least 1")
    torch.set_num_threads(1)
    pipe = MiniPipeline(args.model, args.codec)
    clips = held_out(args.clips, "validation")
    unguided = dataclasses.replace(MINI_SAMPLING, video_cfg=1.0, audio_cfg=1.0)
    result = {"steps": steps, "convergence": {"guided": convergence(pipe, clips, MINI_SAMPLING, steps),
                                              "unguided": convergence(pipe, clips, unguided, steps)},
              "channels": {str(c): channels(pipe, clips, dataclasses.replace(MINI_SAMPLING, video_cfg=c))
                           for c in args.cfg}}
    for name, rows in result["convergence"].items():
        for m, d in rows.items():
            print(f"Euler {name} {m}: |E(N) - E(2N)| for N = {', '.join(map(str, steps[:-1]))}: "
                  + ", ".join(f"{x:.4f}" for x in d))
    for cfg, entry in result["channels"].items():
        worst = sorted(range(len(entry["pixel_error"])), key=lambda c: -entry["pixel_error"][c])[:5]
        print(f"video guidance {cfg}: error / still copy {entry['error_over_still']:.2f}; largest pixel error in "
              + ", ".join(f"channel {c} (spread {entry['generated_std'][c]:.2f} vs {entry['data_std'][c]:.2f})"
                          for c in worst))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Train a UniAVGen model from scratch on synthetic talking faces.

    python -m uniavgen_core.train CONFIG.toml [--resume [CHECKPOINT]] [--steps N] [--export]

Fits the video codec and builds the training set when they are missing (both are cached),
trains with checkpoints in the config's `out` folder (`last.safetensors`; --resume continues
from it exactly), then exports the EMA weights and the codec to `out/export/` (after the last
step, or with --export wherever it stops: `--resume --steps 0 --export` exports a checkpoint).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch
from tqdm import tqdm

from .checkpoint.loading import TRAINED_FRAMES
from .training import data
from .training.trainer import TrainConfig, Trainer


def prepare(cfg: TrainConfig) -> None:
    """The codec and the training set, made when missing."""
    ds = cfg.dataset
    if not Path(ds.codec).is_file():
        with tqdm(total=ds.codec_clips, desc="fitting the video codec", unit="clip") as bar:
            data.fit_codec(ds, progress=bar.update)
    if not Path(ds.path).is_file():
        with tqdm(total=ds.clips, desc="building the training set", unit="clip") as bar:
            data.build(ds.path, ds.seeds(), ds.codec, ds.caption_dim, ds.frames, ds.size, ds.workers,
                       progress=bar.update)


def export(trainer: Trainer) -> Path:
    """out/export/NAME.safetensors (EMA weights) and NAME-video-codec.safetensors beside it."""
    cfg = trainer.config
    folder = Path(cfg.out).resolve() / "export"
    codec_name = f"{cfg.name}-video-codec.safetensors"
    model = folder / f"{cfg.name}.safetensors"
    for stale in (model, folder / codec_name):
        stale.unlink(missing_ok=True)          # the export folder only ever holds this run's export
    trainer.export(model, data.vocabulary_text(), {
        "uniavgen_video_codec": codec_name,
        "uniavgen_caption_encoder": {"kind": "hashed-words", "dim": cfg.dataset.caption_dim},
        TRAINED_FRAMES: cfg.dataset.frames,
        "uniavgen_trained_size": cfg.dataset.size,
    })
    shutil.copyfile(cfg.dataset.codec, folder / codec_name)
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="training config (TOML), e.g. configs/uniavgen_mini.toml")
    parser.add_argument("--resume", nargs="?", const="", default=None,
                        help="continue from a checkpoint (default: OUT/last.safetensors)")
    parser.add_argument("--steps", type=int, default=None, help="stop at this step (default: the config's)")
    parser.add_argument("--export", action="store_true",
                        help="export the weights at the end even before the configured last step")
    args = parser.parse_args(argv)
    try:
        cfg = TrainConfig.from_toml(args.config)
        prepare(cfg)
        trainer = Trainer(cfg, data.load(cfg.dataset.path))
        if args.resume is not None:
            trainer.resume(args.resume or Path(cfg.out) / "last.safetensors")
            print(f"resumed at step {trainer.step}", file=sys.stderr)
        n = sum(p.numel() for p in trainer.model.parameters())
        print(f"{cfg.name}: {n / 1e6:.2f} M parameters, {len(trainer.examples)} clips, device {trainer.device}",
              file=sys.stderr)
        with torch.enable_grad():
            trainer.run(until=args.steps)
        if trainer.step >= cfg.optim.steps or args.export:
            print(f"exported {export(trainer)}", file=sys.stderr)
    except (ValueError, FileNotFoundError, FileExistsError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())

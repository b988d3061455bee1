"""Train a UniAVGen model from scratch on synthetic talking faces.

    python -m uniavgen_core.cli.train CONFIG.toml [--resume [CHECKPOINT]] [--steps N] [--export]

Checks all it can before any long work: the config's values against their types and ranges, the
folders it writes, a cached training set or codec, the checkpoint to resume from, and the memory a
step and the training set need (a mistake ends as `error: ...`, exit status 2). Fits the video
codec and builds the training set when they are missing (both are cached), trains with checkpoints
in the config's `out` folder (`last.safetensors`; --resume continues from it exactly), then exports
the EMA weights and the codec to `out/export/` (after the last step, or with --export wherever it
stops: `--resume --steps 0 --export` exports a checkpoint).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

from ..mini.codecs.video_pca import PatchPCACodec
from ..training import budget, data
from ..training.trainer import MAX_STEPS, TrainConfig, Trainer, check_checkpoint, export_run, resolve_device
from .common import UsageError, guarded, output_folder


def preflight(cfg: TrainConfig, steps: int | None, resume: str | None, export: bool = False) -> int | None:
    """Everything a run can be refused for, checked before the codec fit, the training-set build or any
    step: --steps, that the model fits the data, the device, a cached set or codec of other settings, the
    checkpoint to resume from (read whole from its header; its step is returned), the memory one step, the
    training set and its build need, and last (the only checks that write) the output folders, made and
    written to once."""
    if steps is not None and not 0 <= steps <= MAX_STEPS:
        raise UsageError(f"--steps {steps}: must be from 0 to {MAX_STEPS} (the step to stop at)")
    cfg.check_sections_agree()
    device = resolve_device(cfg.device)
    out, ds = Path(cfg.out), cfg.dataset
    if (out / "last.safetensors").is_dir():
        raise UsageError(f"{out / 'last.safetensors'} is a folder; the trainer writes its checkpoint there: move it")
    for key, what in (("codec", "video codec"), ("path", "training set")):
        path = Path(getattr(ds, key))
        if path.exists() and not path.is_file():
            raise UsageError(f"[dataset] {key} = {path} is a folder, not a {what} file: give a file path")
    if Path(ds.codec).is_file():
        PatchPCACodec.load(ds.codec)
    cached = data.check_cached(ds)
    resumed = None
    if resume is not None:
        resumed = check_checkpoint(resume or out / "last.safetensors", cfg)["step"]
        if steps is not None and steps < resumed and not export:
            raise UsageError(f"--steps {steps} is below the checkpoint's step {resumed}, so nothing would be trained: "
                             f"give --steps {resumed + 1} or more, or add --export to export the checkpoint as it is")
    budget.check(cfg.model, ds, cfg.optim.batch_size, device, build=not cached,
                 free_disk=None if cached else budget.free_disk(Path(ds.path).parent))
    output_folder(out, "the output folder (out)")
    output_folder(out / "export", "the export folder (out/export)")
    for key, what in (("codec", "video codec"), ("path", "training set")):
        if not Path(getattr(ds, key)).exists():
            output_folder(Path(getattr(ds, key)).parent, f"the folder of the {what} ([dataset] {key})")
    return resumed


def run(args) -> int:
    cfg = TrainConfig.from_toml(args.config)
    preflight(cfg, args.steps, args.resume, args.export)
    data.prepare(cfg.dataset)
    trainer = Trainer(cfg, data.load(cfg.dataset.path))
    if args.resume is not None:
        trainer.resume(args.resume or Path(cfg.out) / "last.safetensors")
        print(f"resumed at step {trainer.step}", file=sys.stderr)
    n = sum(p.numel() for p in trainer.model.parameters())
    print(f"{cfg.name}: {n / 1e6:.2f} M parameters, {len(trainer.examples)} clips, device {trainer.device}",
          file=sys.stderr)
    try:
        with torch.enable_grad():
            trainer.run(until=args.steps)
    except FloatingPointError as err:           # the loss diverged: the message says what to do
        print(f"error: {err}", file=sys.stderr)
        return 1
    if trainer.step >= cfg.optim.steps or args.export:
        print(f"exported {export_run(trainer)}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.cli.train", description=__doc__.splitlines()[0])
    parser.add_argument("config", help="training config (TOML), e.g. configs/uniavgen_mini_v2d.toml")
    parser.add_argument("--resume", nargs="?", const="", default=None,
                        help="continue from a checkpoint (default: OUT/last.safetensors)")
    parser.add_argument("--steps", type=int, default=None, help="stop at this step (default: the config's)")
    parser.add_argument("--export", action="store_true",
                        help="export the weights at the end even before the configured last step")
    args = parser.parse_args(argv)
    return guarded(lambda: run(args))


if __name__ == "__main__":
    sys.exit(main())

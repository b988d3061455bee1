"""Training loop: AdamW with warmup + cosine decay, gradient clipping and accumulation, EMA,
safetensors checkpoints (optimizer state included) and exact resume.

Every random draw of step i comes from a generator seeded with (seed, i, micro-batch), so a
run resumed from a checkpoint continues exactly as the uninterrupted run would.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import tomllib
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..model.config import UniAVGenConfig
from ..model.dit import UniAVGenModel
from .data import DataConfig
from .objective import Example, MixConfig, build_batch, losses

EXPORT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class OptimConfig:
    steps: int = 3000
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.05     # cosine decays to lr * min_lr_ratio
    warmup: int = 200
    weight_decay: float = 0.01
    betas: tuple = (0.9, 0.99)
    clip: float = 1.0
    ema_decay: float = 0.999
    ema_start: int = 200           # EMA tracks the weights from this step on (copies them before)


@dataclass(frozen=True)
class TrainConfig:
    name: str = "UniAVGen-mini"    # the exported model's file name
    out: str = "build/mini/run"
    seed: int = 0
    device: str = "auto"           # auto: cuda if available (bf16 autocast there), else cpu
    threads: int = 0               # CPU threads (0: torch's default)
    log_every: int = 10
    checkpoint_every: int = 200
    export_format: str = "fp32"    # storage of the exported weights: fp32, fp16 or bf16 (computed in fp32 on CPU)
    dataset: DataConfig = field(default_factory=DataConfig)
    model: UniAVGenConfig = field(default_factory=UniAVGenConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        if self.export_format not in EXPORT_DTYPES:       # checked before training, not after it
            raise ValueError(f"export_format must be one of {sorted(EXPORT_DTYPES)}, got {self.export_format!r}")

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "TrainConfig":
        """A TOML file: top-level run keys, and [dataset], [model], [mix], [optim] tables.
        Relative paths are taken from the file's folder."""
        path = Path(path)
        try:
            raw = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"cannot read the training config {path}: {err}") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: dict, base: Path | None = None) -> "TrainConfig":
        raw = dict(raw)
        parts = {"dataset": DataConfig, "model": UniAVGenConfig, "mix": MixConfig, "optim": OptimConfig}
        values = {}
        for name, kind in parts.items():
            table = dict(raw.pop(name, {}))
            for key in ("path", "codec") if name == "dataset" else ():
                if key in table and base is not None and not Path(table[key]).is_absolute():
                    table[key] = str(base / table[key])
            known = {f.name for f in dataclasses.fields(kind)}
            unknown = set(table) - known
            if unknown:
                raise ValueError(f"[{name}] has unknown key(s) {sorted(unknown)}; known: {sorted(known)}")
            values[name] = kind(**table)
        known = {f.name for f in dataclasses.fields(cls)} - set(parts)
        unknown = set(raw) - known
        if unknown:
            raise ValueError(f"unknown top-level key(s) {sorted(unknown)}; known: {sorted(known)}")
        if "out" in raw and base is not None and not Path(raw["out"]).is_absolute():
            raw["out"] = str(base / raw["out"])
        return cls(**raw, **values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def init_weights(model: UniAVGenModel, seed: int) -> None:
    """From-scratch initialisation in the Wan style: Xavier matrices, zero biases, modulation
    tables ~ N(0, 1/dim), zero output heads and zero interaction outputs (the interactions start
    as identities, as the release initialises them)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("modulation"):
                p.copy_(torch.randn(p.shape, generator=gen) / p.shape[-1] ** 0.5)
            elif name.endswith("bias") or "grn." in name:
                p.zero_()
            elif "norm" in name or name.endswith("audio_padding"):
                continue                                   # norm gains 1, padding embedding 0
            elif p.dim() >= 2:
                fan_out, fan_in = p.shape[0], p[0].numel()
                bound = math.sqrt(6.0 / (fan_in + fan_out))
                p.copy_(torch.rand(p.shape, generator=gen) * 2 * bound - bound)
        for name, p in model.named_parameters():
            if name.startswith(("head.head.", "head_audio.head.")) or \
                    (name.startswith(("a2v_blocks.", "v2a_blocks.")) and ".o." in name):
                p.zero_()
        model.text_embedding.text_embed.weight.normal_(0, 0.02, generator=gen)


def learning_rate(step: int, opt: OptimConfig) -> float:
    if step < opt.warmup:
        return opt.lr * (step + 1) / opt.warmup
    progress = min(1.0, (step - opt.warmup) / max(1, opt.steps - opt.warmup))
    return opt.lr * (opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _step_generator(seed: int, step: int, micro: int) -> torch.Generator:
    return torch.Generator().manual_seed((seed * 1_000_003 + step) * 64 + micro)


class Trainer:
    def __init__(self, config: TrainConfig, examples: list[Example]):
        if not examples:
            raise ValueError("no training examples")
        self.config = config
        self.examples = examples
        if config.threads:
            torch.set_num_threads(config.threads)
        device = config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(device)
        self.model = UniAVGenModel(config.model)
        init_weights(self.model, config.seed)
        self.model.to(self.device).train()
        decay, no_decay = [], []
        for name, p in self.model.named_parameters():
            (decay if p.dim() >= 2 and "modulation" not in name else no_decay).append(p)
        opt = config.optim
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": opt.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}],
                                           lr=opt.lr, betas=tuple(opt.betas), foreach=False)
        self.ema = {k: v.detach().clone().float() for k, v in self.model.state_dict().items()}
        self.step = 0
        self.history: list[dict] = []

    # ------------------------------------------------------------------ one step
    def train_step(self) -> dict[str, float]:
        cfg, opt = self.config, self.config.optim
        lr = learning_rate(self.step, opt)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.zero_grad(set_to_none=True)
        sums: dict[str, float] = {}
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.device.type == "cuda")
        for micro in range(opt.grad_accum):
            gen = _step_generator(cfg.seed, self.step, micro)
            pick = torch.randint(0, len(self.examples), (opt.batch_size,), generator=gen).tolist()
            batch = build_batch([self.examples[i] for i in pick], gen, cfg.mix, cfg.model.text_len, self.device)
            with autocast:
                parts = losses(self.model, batch, cfg.mix)
            (parts["total"] / opt.grad_accum).backward()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / opt.grad_accum
        if not math.isfinite(sums["total"]):
            raise FloatingPointError(f"step {self.step}: the loss is {sums['total']}; lower optim.lr or "
                                     f"resume from the last checkpoint")
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), opt.clip)
        self.optimizer.step()
        self._update_ema()
        self.step += 1
        record = {"step": self.step, "lr": lr, "grad_norm": float(norm), **sums}
        self.history.append(record)
        return record

    @torch.no_grad()
    def _update_ema(self):
        opt = self.config.optim
        decay = 0.0 if self.step < opt.ema_start else opt.ema_decay
        for k, v in self.model.state_dict().items():
            self.ema[k].mul_(decay).add_(v.detach().float(), alpha=1 - decay)

    # ------------------------------------------------------------------ loop
    def run(self, until: int | None = None) -> None:
        """Train to step `until` (default: the configured steps), checkpointing on the way."""
        cfg = self.config
        until = cfg.optim.steps if until is None else until
        bar = _progress(self.step, until)
        out = Path(cfg.out)
        try:
            while self.step < until:
                record = self.train_step()
                bar.update(1)
                if self.step % cfg.log_every == 0 or self.step == until:
                    recent = self.history[-cfg.log_every:]
                    mean = lambda k: sum(r.get(k, 0.0) for r in recent) / len(recent)
                    bar.set_postfix_str(f"video {mean('video'):.3f} audio {mean('audio'):.3f} "
                                        f"fam {mean('fam'):.3f} lr {record['lr']:.2e}", refresh=False)
                if self.step % cfg.checkpoint_every == 0 or self.step == until:
                    self.save(out / "last.safetensors")
        finally:
            bar.close()

    # ------------------------------------------------------------------ checkpoints
    def state_tensors(self) -> dict[str, torch.Tensor]:
        tensors = {f"model/{k}": v.detach().float().cpu().contiguous() for k, v in self.model.state_dict().items()}
        tensors.update({f"ema/{k}": v.cpu().contiguous() for k, v in self.ema.items()})
        names = {id(p): n for n, p in self.model.named_parameters()}
        for p, state in self.optimizer.state.items():
            for key, value in state.items():
                tensors[f"optim/{key}/{names[id(p)]}"] = torch.as_tensor(value).detach().float().cpu().contiguous()
        return tensors

    def save(self, path: str | os.PathLike) -> Path:
        """Checkpoint (model, EMA, optimizer state, step, history) as safetensors, written
        to a temporary file first so an interrupted save never destroys the previous one."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".partial")
        meta = {"uniavgen_train_config": json.dumps(self.config.to_dict()), "step": str(self.step),
                "history": json.dumps(self.history), "uniavgen_config": json.dumps(self.config.model.to_dict())}
        save_file(self.state_tensors(), str(tmp), metadata=meta)
        os.replace(tmp, path)
        return path

    def resume(self, path: str | os.PathLike) -> None:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}")
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if "step" not in meta:
                raise ValueError(f"{path} is not a training checkpoint of this trainer (no step in its metadata)")
            saved = json.loads(meta["uniavgen_config"])
            if saved != json.loads(json.dumps(self.config.model.to_dict())):
                raise ValueError(f"{path} was trained with another model configuration; resume with the same config")
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        state = {k[len("model/"):]: v for k, v in tensors.items() if k.startswith("model/")}
        self.model.load_state_dict(state, strict=True)
        self.ema = {k[len("ema/"):]: v.float() for k, v in tensors.items() if k.startswith("ema/")}
        by_name = dict(self.model.named_parameters())
        for key, value in tensors.items():
            if key.startswith("optim/"):
                _, slot, name = key.split("/", 2)
                p = by_name[name]
                value = value.to(p.device)
                self.optimizer.state.setdefault(p, {})[slot] = value if slot != "step" else value.cpu()
        self.step = int(meta["step"])
        self.history = json.loads(meta.get("history", "[]"))

    def export(self, path: str | os.PathLike, vocabulary: str, extra: dict | None = None) -> Path:
        """The EMA weights as a self-contained model file stored as `export_format`: configuration,
        speech vocabulary and `extra` metadata inside. Never overwrites an existing file."""
        path = Path(path)
        fmt = self.config.export_format
        if path.exists():
            raise FileExistsError(f"{path} exists; move it away or choose another name")
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"uniavgen_config": json.dumps(self.config.model.to_dict()), "uniavgen_vocab": vocabulary,
                "uniavgen_format": fmt, "uniavgen_training_step": str(self.step),
                **{k: v if isinstance(v, str) else json.dumps(v) for k, v in (extra or {}).items()}}
        tmp = path.with_name(path.name + ".partial")
        save_file({k: v.to(EXPORT_DTYPES[fmt]).contiguous() for k, v in self.ema.items()}, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return path


def _progress(start: int, total: int):
    from tqdm import tqdm
    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, mininterval=2.0)

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
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import tomllib
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from ..checkpoint.loading import TRAINED_FRAMES
from ..model.config import INTERACTION_STACKS, UniAVGenConfig
from ..model.dit import UniAVGenModel
from ..mini.codecs.video_pca import PatchPCACodec
from ..model.fields import FieldError, check_fields, ranged, settle, shown
from ..synthetic.sentences import VOCAB
from ..units import LATENT_CHANNELS, N_MELS
from .data import MAX_SEED, PATH, DataConfig, vocabulary_text
from .objective import Example, MixConfig, build_batch, channel_weights, losses

EXPORT_DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
MAX_STEPS = 100_000_000        # optimizer steps of one run
MAX_BATCH = 1 << 16            # clips of one batch (the memory check usually allows far fewer)
DEVICES = r"auto|cpu|cuda(:[0-9]{1,2})?"
_FILE_NAME = r"(?!\.{1,2}$)[^/\\\x00]{1,200}"


@dataclass(frozen=True)
class OptimConfig:
    steps: int = ranged(3000, low=1, high=MAX_STEPS)
    batch_size: int = ranged(16, low=1, high=MAX_BATCH)
    grad_accum: int = ranged(1, low=1, high=1024)
    lr: float = ranged(1e-3, low=0, high=1, above=True)
    min_lr_ratio: float = ranged(0.05, low=0, high=1)     # cosine decays to lr * min_lr_ratio
    warmup: int = ranged(200, low=0, high=MAX_STEPS)
    weight_decay: float = ranged(0.01, low=0, high=1)
    betas: tuple = ranged((0.9, 0.99), item="float", length=2, low=0, high=1, below=True)
    clip: float = ranged(1.0, low=0, above=True)
    ema_decay: float = ranged(0.999, low=0, high=1, below=True)
    ema_start: int = ranged(200, low=0, high=MAX_STEPS)   # EMA tracks the weights from this step on (copies before)

    def __post_init__(self):
        settle(self, "[optim] ")


SECTIONS = {"dataset": DataConfig, "model": UniAVGenConfig, "mix": MixConfig, "optim": OptimConfig}


@dataclass(frozen=True)
class TrainConfig:
    name: str = ranged("UniAVGen-mini", pattern=_FILE_NAME,       # the exported model's file name
                       what='a file name without slashes, e.g. "UniAVGen-mini"')
    out: str = ranged("build/mini/run", pattern=PATH, what="a folder path")
    seed: int = ranged(0, low=0, high=MAX_SEED)
    device: str = ranged("auto", pattern=DEVICES,      # auto: cuda if available (bf16 autocast there), else cpu
                         what='"auto", "cpu", "cuda" or "cuda:N"')
    threads: int = ranged(0, low=0, high=1024)         # CPU threads (0: torch's default)
    log_every: int = ranged(10, low=1, high=MAX_STEPS)
    checkpoint_every: int = ranged(200, low=1, high=MAX_STEPS)
    # storage of the exported weights: fp32, fp16 or bf16 (computed in fp32 on CPU); checked before training
    export_format: str = ranged("fp32", choices=tuple(EXPORT_DTYPES))
    dataset: DataConfig = field(default_factory=DataConfig)
    model: UniAVGenConfig = field(default_factory=UniAVGenConfig)
    mix: MixConfig = field(default_factory=MixConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)

    def __post_init__(self):
        settle(self)
        for name, kind in SECTIONS.items():
            if not isinstance(getattr(self, name), kind):
                raise ValueError(f"[{name}] must be a {kind.__name__}, got {shown(getattr(self, name))}")

    def check_sections_agree(self):
        """What a training set built from [dataset] fixes about the model: latent and mel widths, the 2x2
        patches the face targets are pooled for, the caption width and the speech vocabulary (checked
        before a set is built for the model; a Trainer given examples of its own does not need it)."""
        m, ds = self.model, self.dataset
        fixed = {"in_dim": LATENT_CHANNELS, "out_dim": LATENT_CHANNELS, "in_audio_dim": N_MELS,
                 "out_dim_audio": N_MELS, "patch_size": (1, 2, 2), "text_dim": ds.caption_dim}
        for key, value in fixed.items():
            if getattr(m, key) != value:
                why = "[dataset] caption_dim" if key == "text_dim" else "the synthetic training data"
                raise ValueError(f"[model] {key} = {shown(getattr(m, key))}: must be {shown(value)} to match {why}")
        vocab = len(VOCAB)
        if m.speech_vocab_size < vocab:
            raise ValueError(f"[model] speech_vocab_size = {m.speech_vocab_size}: must be at least {vocab}, the "
                             f"synthetic speech vocabulary's size")
        if self.mix.space_id >= m.speech_vocab_size:
            raise ValueError(f"[mix] space_id = {self.mix.space_id}: must be below [model] speech_vocab_size "
                             f"({m.speech_vocab_size})")

    @classmethod
    def from_toml(cls, path: str | os.PathLike) -> "TrainConfig":
        """A TOML file: top-level run keys, and [dataset], [model], [mix], [optim] tables.
        Relative paths are taken from the file's folder."""
        path = Path(path)
        if path.is_dir():
            raise ValueError(f"the training config {path} is a folder; give a .toml file")
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"cannot read the training config {path}: {err}") from None
        return cls.from_dict(raw, base=path.parent)

    @classmethod
    def from_dict(cls, raw: Mapping, base: Path | None = None) -> "TrainConfig":
        """Every value is checked against its field's type and range first (FieldError names the first
        wrong one), then each section's rules between its fields (see also check_sections_agree)."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"a training config is a table of settings, got {shown(raw)}")
        raw = dict(raw)
        values = {}
        for name, kind in SECTIONS.items():
            table = raw.pop(name, {})
            if not isinstance(table, Mapping):
                raise ValueError(f"[{name}] must be a table of settings, got {shown(table)}")
            table = check_fields(kind, _known(kind, table, f"[{name}] has"), f"[{name}] ")
            if name == "dataset":
                _resolve(table, ("path", "codec"), base)
            try:
                values[name] = kind(**table)
            except FieldError:
                raise
            except ValueError as err:                      # a rule between the section's fields
                raise ValueError(f"[{name}] {err}") from None
        top = check_fields(cls, _known(cls, raw, "the top level has", skip=set(values)), "")
        _resolve(top, ("out",), base)
        return cls(**top, **values)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _known(kind, table: Mapping, where: str, skip=frozenset()) -> dict:
    known = {f.name for f in dataclasses.fields(kind)} - set(skip)
    unknown = [k for k in table if k not in known]
    if unknown:
        raise ValueError(f"{where} unknown key(s) {sorted(map(str, unknown))}; known: {sorted(known)}")
    return dict(table)


def _resolve(table: dict, keys, base: Path | None) -> None:
    """Relative paths are taken from the config file's folder."""
    for key in keys:
        if key in table and base is not None and not Path(table[key]).is_absolute():
            table[key] = str(base / table[key])


def resolve_device(name: str) -> torch.device:
    """The configured device, refused when it is not there: "auto" is cuda when a GPU is, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if (device.index or 0) >= count:
            gpus = f"{count} CUDA GPU{'s' if count > 1 else ''}" if count else "no CUDA GPU"
            raise ValueError(f"device = {shown(name)}: this machine has {gpus}; set device = \"cpu\" or \"auto\"")
    return device


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
                    (name.startswith(tuple(f"{s}." for s in INTERACTION_STACKS)) and ".o." in name):
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
        self.device = resolve_device(config.device)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.model = UniAVGenModel(config.model)
        self.video_channels = None
        if config.mix.video_channel_power:      # the codec's channel scales weigh the video loss
            std = PatchPCACodec.load(config.dataset.codec).channel_std
            self.video_channels = channel_weights(std, config.mix.video_channel_power).to(self.device)
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
                parts = losses(self.model, batch, cfg.mix, self.video_channels)
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
        """Continue from a checkpoint of save(): checked whole (check_checkpoint, then every tensor finite)
        before anything of this trainer changes."""
        path = Path(path)
        meta = check_checkpoint(path, self.config)
        try:
            with safe_open(str(path), framework="pt") as f:
                tensors = {k: f.get_tensor(k) for k in f.keys()}
        except (SafetensorError, OSError) as err:
            raise CheckpointDamaged(f"{path} cannot be read ({err}); {_ANOTHER}") from None
        bad = next((k for k, v in tensors.items() if not bool(torch.isfinite(v).all())), None)
        if bad is not None:
            raise CheckpointDamaged(f"{path}: {bad} holds NaN or infinite values; {_ANOTHER}")
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
        self.step = meta["step"]
        self.history = meta["history"]

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


def export_run(trainer: Trainer) -> Path:
    """A run's export in its `out` folder: export/NAME.safetensors (the EMA weights) and
    NAME-video-codec.safetensors beside it."""
    cfg = trainer.config
    folder = Path(cfg.out).resolve() / "export"
    codec_name = f"{cfg.name}-video-codec.safetensors"
    model = folder / f"{cfg.name}.safetensors"
    for stale in (model, folder / codec_name):
        stale.unlink(missing_ok=True)          # the export folder only ever holds this run's export
    trainer.export(model, vocabulary_text(), {
        "uniavgen_video_codec": codec_name,
        "uniavgen_caption_encoder": {"kind": "hashed-words", "dim": cfg.dataset.caption_dim},
        TRAINED_FRAMES: cfg.dataset.frames,
        "uniavgen_trained_size": cfg.dataset.size,
    })
    shutil.copyfile(cfg.dataset.codec, folder / codec_name)
    return model


_ANOTHER = "resume from another checkpoint, or start afresh without --resume"
OPTIMIZER_SLOTS = ("exp_avg", "exp_avg_sq", "step")


class CheckpointDamaged(ValueError):
    """A training checkpoint that cannot be resumed from, with why."""


def check_checkpoint(path: str | os.PathLike, config: TrainConfig) -> dict:
    """A training checkpoint's step and history, read from its header alone after checking that it is a
    whole checkpoint of this trainer for `config`: readable, with a step, the same model configuration,
    the model and EMA tensors of that model at their shapes, and complete optimizer state (each
    parameter's moments and step, or none for a parameter that never had a gradient)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no checkpoint at {path}")
    if not path.is_file():
        raise CheckpointDamaged(f"the checkpoint {path} is not a file")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            shapes = {k: (tuple(f.get_slice(k).get_shape()), f.get_slice(k).get_dtype()) for k in f.keys()}
    except (SafetensorError, OSError) as err:
        raise CheckpointDamaged(f"{path} is not a readable checkpoint ({err}); it may have been cut short or "
                                f"overwritten: {_ANOTHER}") from None
    if "step" not in meta:
        raise CheckpointDamaged(f"{path} is not a training checkpoint of this trainer (no step in its metadata)")
    try:
        step, history, saved = int(meta["step"]), json.loads(meta.get("history", "[]")), \
            json.loads(meta.get("uniavgen_config", "null"))
    except ValueError:
        raise CheckpointDamaged(f"{path}: its step, history or model configuration is unreadable; {_ANOTHER}") \
            from None
    if step < 0 or not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise CheckpointDamaged(f"{path}: step {step} or its history is not possible; {_ANOTHER}")
    if saved != json.loads(json.dumps(config.model.to_dict())):
        raise ValueError(f"{path} was trained with another model configuration; resume with the same config")
    with torch.device("meta"):
        params = {n: tuple(p.shape) for n, p in UniAVGenModel(config.model).named_parameters()}
    want = {f"{part}/{n}": shape for n, shape in params.items() for part in ("model", "ema")}
    for name in {k.split("/", 2)[2] for k in shapes if k.startswith("optim/") and k.count("/") >= 2} & set(params):
        want.update({f"optim/{slot}/{name}": () if slot == "step" else params[name] for slot in OPTIMIZER_SLOTS})
    problems = [f"missing {k}" for k in sorted(set(want) - set(shapes))]
    problems += [f"unexpected {k}" for k in sorted(set(shapes) - set(want))]
    problems += [f"{k} has shape {list(shapes[k][0])}, the model needs {list(v)}" for k, v in want.items()
                 if k in shapes and shapes[k][0] != v]
    problems += [f"{k} holds {shapes[k][1]} values" for k in want if k in shapes and shapes[k][1] != "F32"]
    if problems:
        more = f" and {len(problems) - 3} more" if len(problems) > 3 else ""
        raise CheckpointDamaged(f"{path} does not hold this trainer's state: {'; '.join(problems[:3])}{more}; "
                                f"{_ANOTHER}")
    return {"step": step, "history": history}


def _progress(start: int, total: int):
    from tqdm import tqdm
    return tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, mininterval=2.0)

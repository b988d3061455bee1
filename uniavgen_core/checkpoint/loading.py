"""Load the official checkpoint (Hugging Face folder or one .safetensors file) strictly.

The model is built on the meta device and every tensor is read lazily from the safetensors
files and assigned, so peak memory is about one copy of the model. Nothing is ever
unpickled: only safetensors files are accepted.
"""
from __future__ import annotations

import contextlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path, PurePosixPath, PureWindowsPath

import torch
from safetensors import safe_open

from ..model import fp8
from ..model.config import STACKS, UniAVGenConfig
from ..model.dit import UniAVGenModel
from ..units import LATENT_CHANNELS, latent_frames

INDEX_NAME = "diffusion_pytorch_model.safetensors.index.json"
PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt", ".pkl")
# Prefixes other tools put in front of the official names (ComfyUI, DDP, torch.compile).
KNOWN_PREFIXES = ("model.diffusion_model.", "diffusion_model.", "module.", "_orig_mod.", "model.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded, with a readable explanation of why."""


def checkpoint_files(path: str | os.PathLike) -> tuple[list[Path], dict | None]:
    """The safetensors files of a checkpoint and its official config.json (or None)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: put the UniAVGen folder (with {INDEX_NAME} and its "
                              f"shards) or a single .safetensors file there")
    if not (path.is_file() or path.is_dir()):
        raise CheckpointError(f"{path} is neither a regular file nor a folder (a pipe or a device?); point the loader "
                              f"at the UniAVGen folder or a .safetensors file")
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES:
            raise CheckpointError(f"{path.name} is a pickle file; UniAVGen only loads .safetensors (pickles can run "
                                  f"code). Use the official safetensors release or convert it first.")
        if path.suffix != ".safetensors":
            raise CheckpointError(f"{path.name} is not a .safetensors file")
        config = path.with_name("config.json")
        return [path], _read_json(config) if config.is_file() else None
    config = _read_json(path / "config.json") if (path / "config.json").is_file() else None
    index = path / INDEX_NAME
    if index.is_file():
        names = _shard_names(index)
        missing = [n for n in names if not (path / n).is_file()]
        if missing:
            raise CheckpointError(f"{path} is incomplete: {len(missing)} shard(s) named in {INDEX_NAME} are missing "
                                  f"({', '.join(missing[:4])}); finish the download")
        return [path / n for n in names], config
    files = sorted(path.glob("*.safetensors"))
    if not files:
        pickles = [p.name for p in path.iterdir() if p.suffix in PICKLE_SUFFIXES]
        hint = f" (found only pickle files: {', '.join(pickles[:3])}; they are not loaded)" if pickles else ""
        raise CheckpointError(f"{path} holds no .safetensors files{hint}")
    return files, config


def _shard_names(index: Path) -> list[str]:
    """The shard files an index names. Each must be a .safetensors file named inside the model's own folder
    (no absolute path, no '..'): an index can never make the loader open a file elsewhere."""
    raw = _read_json(index)
    weight_map = raw.get("weight_map") if isinstance(raw, dict) else None
    if not isinstance(weight_map, dict) or not weight_map or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise CheckpointError(f"{index} is not a valid index: it must hold a \"weight_map\" from tensor names to "
                              f"shard file names; re-download it")
    names = sorted(set(weight_map.values()))
    for name in names:
        parts = PurePosixPath(name.replace("\\", "/")).parts
        if (not name.endswith(".safetensors") or "\x00" in name or PurePosixPath(name).is_absolute()
                or PureWindowsPath(name).drive or ".." in parts or len(name) > 1024):
            raise CheckpointError(f"{index} names the shard {name[:200]!r}: shards must be .safetensors files inside "
                                  f"{index.parent}; this index is damaged or was edited")
    return names


# fp8 bit patterns that are not finite numbers, as (mask, value): e4m3fn has only NaN (s1111111), e5m2 has
# infinities and NaN (s11111xx), the "fnuz" kinds have one NaN (10000000)
_FP8_NON_FINITE = {getattr(torch, name): pattern for name, pattern in (
    ("float8_e4m3fn", (0x7F, 0x7F)), ("float8_e5m2", (0x7C, 0x7C)), ("float8_e4m3fnuz", (0xFF, 0x80)),
    ("float8_e5m2fnuz", (0xFF, 0x80))) if hasattr(torch, name)}


def check_tensor(name: str, tensor: torch.Tensor, source: str) -> None:
    """Weights are floating point and finite: a damaged or foreign file is refused while it is read,
    instead of making every output NaN. fp8 is checked on its bits (no float copy of the tensor)."""
    if not tensor.is_floating_point():
        raise CheckpointError(f"{source}: {name} holds {str(tensor.dtype).replace('torch.', '')} values, but "
                              f"UniAVGen weights are floating point; the file is damaged or not a UniAVGen model")
    if tensor.dtype.itemsize == 1:
        mask, value = _FP8_NON_FINITE.get(tensor.dtype, (0x7F, 0x7F))
        bad = bool(((tensor.view(torch.uint8) & mask) == value).any())
    else:
        bad = not bool(torch.isfinite(tensor).all())
    if bad:
        raise CheckpointError(f"{source}: {name} contains NaN or infinite values; the file is damaged "
                              f"(re-download or re-convert it)")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path}: {err}") from None


def file_metadata(files: list[Path]) -> dict:
    """The safetensors metadata of a single-file checkpoint (our converter stores the config,
    format and speech vocabulary there); {} for shards or files without it."""
    if len(files) != 1:
        return {}
    try:
        with safe_open(files[0], framework="pt") as handle:
            return handle.metadata() or {}
    except Exception:  # unreadable headers are reported by read_shapes
        return {}


TRAINED_FRAMES = "uniavgen_trained_frames"   # metadata key: the clip length (video frames) a model was trained on
RELEASE_TRAINED_FRAMES = 81                   # the release was trained on 5.0625 s clips


def trained_frames(metadata: dict) -> int:
    """The clip length in video frames a model was trained on: stored by our trainer, else the release's."""
    raw = metadata.get(TRAINED_FRAMES) or RELEASE_TRAINED_FRAMES
    try:
        frames = int(raw)
        latent_frames(frames)
    except (TypeError, ValueError):
        raise CheckpointError(f"the file's {TRAINED_FRAMES} = {str(raw)[:40]!r} is not a clip length (4k+1 video "
                              f"frames); the file is damaged") from None
    return frames


def embedded_config(metadata: dict, source: str) -> UniAVGenConfig:
    """The complete configuration a single-file checkpoint carries (written by our converter and
    trainer): it holds what tensor shapes cannot tell, such as head counts and the A2V window."""
    try:
        values = json.loads(metadata["uniavgen_config"])
        if not isinstance(values, dict):
            raise ValueError(f"a JSON object was expected, got {type(values).__name__}")
        return UniAVGenConfig.from_dict(values)
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{source}: the configuration stored in the file is invalid ({err})") from None


def embedded_vocab(path: str | os.PathLike) -> str | None:
    """The speech vocabulary stored in a converted single-file checkpoint, if any."""
    path = Path(path)
    return file_metadata([path]).get("uniavgen_vocab") if path.is_file() else None


def read_shapes(files: list[Path]) -> dict[str, tuple]:
    """{key: shape} without reading any tensor data."""
    shapes = {}
    for f in files:
        try:
            with safe_open(f, framework="pt") as handle:
                for key in handle.keys():
                    shapes[key] = tuple(handle.get_slice(key).get_shape())
        except Exception as err:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{f.name} is not a readable safetensors file ({err}); re-download it") from None
    return shapes


def _strip_prefix(keys) -> str:
    for prefix in KNOWN_PREFIXES:
        if keys and all(k.startswith(prefix) for k in keys):
            return prefix
    return ""


def identify_foreign(shapes: dict) -> str | None:
    """Name a common wrong input recognised by its keys, or None."""
    keys = shapes.keys()
    has = lambda pattern: any(re.search(pattern, k) for k in keys)
    if any(has(rf"^{stack}\.") for stack in STACKS[1:]):      # the audio branch or an interaction
        return None
    if has(r"(^|\.)encoder\.block\.\d+\.layer\.") or has(r"^shared\.weight$") or (
            has(r"^token_embedding\.") and has(r"^blocks\.\d+\.attn\.")):
        return "a text encoder (umT5/T5), not the UniAVGen model: load it with ComfyUI's CLIPLoader (type wan)"
    if has(r"^(encoder|decoder)\.(conv|down|up|mid|head)") or has(r"^(encoder|decoder)\.") and has(r"^conv[12]\."):
        return "a VAE, not the UniAVGen model: load it with ComfyUI's VAELoader"
    if has(r"^(ups|resblocks|conv_pre|conv_post)\.") or has(r"activation_post\."):
        return "a vocoder (BigVGAN), not the UniAVGen model"
    if "patch_embedding.weight" in shapes and has(r"^blocks\.\d+\.self_attn\."):
        in_dim = shapes["patch_embedding.weight"][1]
        if in_dim == LATENT_CHANNELS:
            return ("a plain Wan2.2-TI2V-5B video model (no audio branch), not UniAVGen: download the UniAVGen "
                    f"checkpoint (MCG-NJU/UniAVGen), which contains {', '.join(STACKS[1:-1])} and {STACKS[-1]}")
        return (f"a Wan2.1/Wan2.2-14B video model (latent channels {in_dim}), not UniAVGen: download the UniAVGen "
                f"checkpoint (MCG-NJU/UniAVGen)")
    return None


_INDEXED = re.compile(rf"^(.*?(?:{'|'.join(STACKS)}|text_blocks))\.(\d+)\.(.+)$")


def summarise_keys(keys) -> str:
    """Summarise keys by block index: 'blocks.{0..29}.ffn.0.weight, head.head.bias', largest groups first."""
    groups: dict[tuple, list[int]] = {}
    for key in keys:
        m = _INDEXED.match(key)
        name = (m.group(1), m.group(3)) if m else (key, None)
        groups.setdefault(name, []).append(int(m.group(2)) if m else 0)
    parts = []
    for (head, tail), idx in sorted(groups.items(), key=lambda kv: -len(kv[1])):
        parts.append(head if tail is None else f"{head}.{_span(sorted(idx))}.{tail}")
    return ", ".join(parts[:8]) + (f", and {len(parts) - 8} more" if len(parts) > 8 else "")


def _span(idx: list[int]) -> str:
    if len(idx) == 1:
        return str(idx[0])
    if idx == list(range(idx[0], idx[-1] + 1)):
        return f"{{{idx[0]}..{idx[-1]}}}"
    return "{" + ",".join(map(str, idx[:6])) + (",..." if len(idx) > 6 else "") + "}"


def check_keys(model_shapes: dict, file_shapes: dict, source: str) -> None:
    """Raise a CheckpointError listing missing, unexpected and mis-shaped keys."""
    missing = [k for k in model_shapes if k not in file_shapes]
    unexpected = [k for k in file_shapes if k not in model_shapes]
    mismatched = [f"{k}: file {list(file_shapes[k])} vs model {list(model_shapes[k])}"
                  for k in model_shapes if k in file_shapes and tuple(file_shapes[k]) != tuple(model_shapes[k])]
    if not (missing or unexpected or mismatched):
        return
    lines = [f"{source} does not match the UniAVGen model:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): {summarise_keys(missing)}")
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): {summarise_keys(unexpected)}")
    if mismatched:
        lines.append(f"  shape mismatches ({len(mismatched)}): " + "; ".join(mismatched[:5])
                     + (f"; and {len(mismatched) - 5} more" if len(mismatched) > 5 else ""))
    if any(k.startswith("text_embedding.0.") for k in unexpected):
        lines.append("  text_embedding.0.* is the upstream Wan name of the caption MLP; UniAVGen names it "
                     "text_embedding_video.* - this file was converted with the wrong names")
    lines.append("  The file is incomplete, converted with other key names, or a different model; "
                 "use the official MCG-NJU/UniAVGen release.")
    raise CheckpointError("\n".join(lines))


@dataclass
class Checkpoint:
    """What a checkpoint holds, read from its headers and checked against the model it describes."""
    files: list[Path]
    prefix: str                     # stripped from every key in the files
    shapes: dict                    # stripped key -> shape, fp8 scales included
    weights: dict                   # the same without the fp8 scales
    scaled: set                     # layers (key without ".weight") stored as scaled fp8
    config: UniAVGenConfig
    metadata: dict
    source: str


def inspect_checkpoint(path: str | os.PathLike, config: UniAVGenConfig | None = None, ops=None,
                       verify_keys: bool = True) -> Checkpoint:
    """Read a checkpoint's headers, recognise foreign models, work out the configuration (given, embedded,
    else from the shapes with an official config.json honoured) and, with verify_keys, check the weights'
    keys and shapes against it (load_model checks against the model it builds instead). Reads no tensor
    data."""
    files, config_json = checkpoint_files(path)
    source = str(path)
    metadata = file_metadata(files)
    if config is None and "uniavgen_config" in metadata:
        config = embedded_config(metadata, source)
    shapes = read_shapes(files)
    prefix = _strip_prefix(list(shapes))
    shapes = {k[len(prefix):]: v for k, v in shapes.items()}
    foreign = identify_foreign(shapes)
    if foreign:
        raise CheckpointError(f"{source} is {foreign}.")
    weights = {k: v for k, v in shapes.items() if not k.endswith(fp8.SCALE_SUFFIX)}
    scaled = {fp8.layer_of(k) for k in shapes if k.endswith(fp8.SCALE_SUFFIX)}
    orphans = sorted(s for s in scaled if s + ".weight" not in weights)
    if orphans:
        raise CheckpointError(f"{source}: fp8 scales without their weights ({summarise_keys(orphans)}); "
                              f"the file is damaged")
    if config is None:
        try:
            config = UniAVGenConfig.from_shapes(weights, hints=config_json)
        except KeyError as err:
            check_keys(key_shapes(UniAVGenConfig.official(), ops), weights, source)
            raise CheckpointError(f"{source}: cannot infer the model size, key {err} is missing") from None
        except (ValueError, TypeError) as err:
            raise CheckpointError(f"{source}: inconsistent model configuration ({err})") from None
    if verify_keys:
        check_keys(key_shapes(config), weights, source)
    return Checkpoint(files, prefix, shapes, weights, scaled, config, metadata, source)


def load_model(path: str | os.PathLike, *, dtype: torch.dtype | None = None, compute_dtype: torch.dtype | None = None,
               device: str | torch.device = "cpu", ops=None, config: UniAVGenConfig | None = None) -> UniAVGenModel:
    """Load UniAVGen strictly from an official folder (index json + shards) or one .safetensors.

    dtype: storage dtype of the weights (None keeps the file's). compute_dtype: activation dtype
    (default: dtype, or bfloat16 for 8-bit weights, or the file's). The configuration comes from
    `config`, else from the file (see inspect_checkpoint). Every tensor is checked as it is read.
    """
    ckpt = inspect_checkpoint(path, config, ops, verify_keys=False)
    shapes, scaled, source = ckpt.shapes, ckpt.scaled, ckpt.source
    with torch.device("meta"):
        model = UniAVGenModel(ckpt.config, ops=ops)
    keep_fp8 = dtype is None
    if keep_fp8:
        fp8.attach_scales(model, scaled)
    model_shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    # Layer classes that carry a scale on every Linear (ComfyUI's scaled-fp8 ops) get 1 where the
    # file stores the weight unquantised, or where the weights are dequantised while loading.
    unit_scales = [k for k in model_shapes if k.endswith(fp8.SCALE_SUFFIX) and not (keep_fp8 and k in shapes)]
    check_keys({k: v for k, v in model_shapes.items() if k not in unit_scales}, shapes if keep_fp8 else ckpt.weights,
               source)

    state = {k: torch.ones((), device=device) for k in unit_scales}
    with TensorReader(ckpt, device=device, dequantise_to=None if keep_fp8 else dtype) as reader:
        for name in reader.where:
            tensor = reader.get(name)
            state[name] = tensor if dtype is None else tensor.to(dtype)
    model.load_state_dict(state, strict=True, assign=True)
    stored = state["patch_embedding.weight"].dtype
    # fp8 storage (scaled or not) computes in bf16 unless asked otherwise
    model.compute_dtype = compute_dtype or dtype or (torch.bfloat16 if stored.itemsize == 1 or scaled else stored)
    return model.eval().requires_grad_(False)


class TensorReader:
    """The tensors of a checkpoint by stripped key, each checked (check_tensor) as it is read.
    dequantise_to: scaled fp8 weights come back dequantised to this dtype and their scales are not listed;
    None gives the stored tensors, scales included. Use as a context manager."""

    def __init__(self, ckpt: Checkpoint, device: str | torch.device = "cpu", dequantise_to: torch.dtype | None = None):
        self.ckpt, self.device, self.dequantise_to = ckpt, str(device), dequantise_to
        self._stack = contextlib.ExitStack()
        self.where: dict[str, tuple] = {}           # stripped key -> (open file, key in it), in file order

    def __enter__(self) -> "TensorReader":
        for f in self.ckpt.files:
            handle = self._stack.enter_context(safe_open(f, framework="pt", device=self.device))
            for key in handle.keys():
                name = key[len(self.ckpt.prefix):]
                if not (self.dequantise_to is not None and name.endswith(fp8.SCALE_SUFFIX)):
                    self.where[name] = (handle, key)
        return self

    def __exit__(self, *exc):
        self._stack.close()

    def get(self, name: str) -> torch.Tensor:
        handle, key = self.where[name]
        tensor = handle.get_tensor(key)
        check_tensor(key, tensor, self.ckpt.source)
        if self.dequantise_to is not None and name.endswith(".weight") and fp8.layer_of(name) in self.ckpt.scaled:
            scale = handle.get_tensor(fp8.scale_key(key))
            check_tensor(fp8.scale_key(key), scale, self.ckpt.source)
            tensor = fp8.dequantise(tensor, scale, self.dequantise_to)
        return tensor


def is_scaled_fp8(path: str | os.PathLike) -> bool:
    files, _ = checkpoint_files(path)
    return any(k.endswith(fp8.SCALE_SUFFIX) for k in read_shapes(files))


def key_shapes(config: UniAVGenConfig, ops=None) -> dict[str, tuple]:
    """{state-dict key: shape} of a model of `config` built with `ops`, on the meta device."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in UniAVGenModel(config, ops=ops).state_dict().items()}


def official_key_shapes() -> dict[str, list[int]]:
    """{state-dict key: shape} of the released configuration, built on the meta device."""
    return {k: list(v) for k, v in key_shapes(UniAVGenConfig.official()).items()}


DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


def pick_dtype(choice: str, device: torch.device) -> torch.dtype:
    """A weight precision by name; "auto": fp32 on the CPU, bf16 on GPUs that have it, else fp16."""
    if choice != "auto":
        return DTYPES[choice]
    if device.type == "cpu":
        return torch.float32
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        return torch.float16
    return torch.bfloat16


def open_model(path: str | os.PathLike, weight_dtype: str, device: torch.device, store: torch.device | None = None,
               ops=None, fp8_ops=None) -> UniAVGenModel:
    """The model of `path` to compute on `device`, its weights stored on `store` (default: device). weight_dtype
    "auto" keeps a scaled-fp8 file's weights in fp8 (dequantised per layer by fp8_ops, else by the pack's own
    layers); otherwise the weights are cast to pick_dtype(weight_dtype, device), in layers from `ops`."""
    store = device if store is None else store
    if weight_dtype == "auto" and is_scaled_fp8(path):
        return load_model(path, compute_dtype=pick_dtype("auto", device), device=store, ops=fp8_ops)
    return load_model(path, dtype=pick_dtype(weight_dtype, device), device=store, ops=ops)

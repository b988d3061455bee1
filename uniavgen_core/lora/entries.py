"""The entries of a LoRA file, checked one by one before anything reaches ComfyUI's patcher.

Applied, per model Linear: a low-rank pair (PEFT `.lora_A.weight` / `.lora_B.weight`, also under
the adapter name `.default`, or kohya `.lora_down.weight` / `.lora_up.weight`) with an optional
`.alpha` and DoRA `.dora_scale`; a full difference `.diff` of the weight; `.diff_b` of the bias.
They are handed on as `<model layer>.lora_A.weight`, `.lora_B.weight`, `.alpha`, `.dora_scale`,
`.diff` and `.diff_b`, the names ComfyUI's `comfy.lora.load_lora` reads. Every other kind
(LoHa, LoKr, OFT, `.lora_mid`, `.reshape_weight`, `.set_weight`, ...) is left out with the reason.

A kept entry is a floating-point tensor of the layer's shape whose values are finite in the
float32 ComfyUI computes in; an alpha is one finite real number. Each tensor, the low-rank product
and the largest change the entries make at the given strength must fit the weight's dtype (ComfyUI
computes patches in it when VRAM is low), and the change must stay within 1000 times the layer's
largest weight.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cache, partial
from typing import Callable, Mapping

import torch

from uniavgen_core.model import fp8


class LoraError(ValueError):
    pass


@dataclass(frozen=True)
class Layer:
    """What the checks need of one model Linear."""
    out_features: int
    in_features: int
    bias: bool = False
    dtype: torch.dtype = torch.float32              # the stored weight's: the patched weight lands in it
    peak: Callable[[], float | None] | None = field(default=None, compare=False)   # its largest |weight|


def _weight_peak(module: torch.nn.Module) -> float | None:
    weight = module.weight.detach()
    if weight.is_meta:
        return None
    peak = float(_computed(weight).abs().amax())
    scale = getattr(module, fp8.SCALE, None)
    return peak if scale is None or scale.is_meta else peak * float(scale)


def linear_layers(net: torch.nn.Module) -> dict[str, Layer]:
    """{name: Layer} for every Linear of `net` (ComfyUI's casting and scaled-fp8 Linears included)."""
    return {name: Layer(m.out_features, m.in_features, m.bias is not None, m.weight.dtype, partial(_weight_peak, m))
            for name, m in net.named_modules() if isinstance(m, torch.nn.Linear)}


DOWN, UP, ALPHA, DORA, DIFF, DIFF_B = ".lora_A.weight", ".lora_B.weight", ".alpha", ".dora_scale", ".diff", ".diff_b"
# The suffixes applied, after the layer name -> the suffix handed on to ComfyUI
APPLIED = {DOWN: DOWN, ".lora_A.default.weight": DOWN, ".lora_down.weight": DOWN,
           UP: UP, ".lora_B.default.weight": UP, ".lora_up.weight": UP,
           ALPHA: ALPHA, DORA: DORA, DIFF: DIFF, DIFF_B: DIFF_B}
_PARTNER = {".lora_A.weight": ".lora_B.weight", ".lora_A.default.weight": ".lora_B.default.weight",
            ".lora_down.weight": ".lora_up.weight"}
_PARTNER.update({b: a for a, b in _PARTNER.items()})
# The kinds recognised but not applied (suffix pattern -> what they are)
NOT_APPLIED = [(re.compile(f"(?:{pattern})$"), what) for pattern, what in (
    (r"\.lora_mid\.weight", "lora_mid, a convolution LoRA's middle factor"),
    (r"\.reshape_weight", "reshape_weight, a request to reshape the model's weight"),
    (r"\.hada_(w1_a|w1_b|w2_a|w2_b|t1|t2)", "LoHa"),
    (r"\.lokr_(w1|w2|w1_a|w1_b|w2_a|w2_b|t2)", "LoKr"),
    (r"\.(oft_blocks|rescale)", "OFT / BOFT"),
    (r"\.(a1|a2|b1|b2)\.weight", "GLoRA"),
    (r"\.(w_norm|b_norm)", "a norm layer's difference"),
    (r"\.set_weight", "set_weight, a replacement weight"),
    (r"(_lora\.(up|down)|\.lora\.(up|down)|\.lora_linear_layer\.(up|down))\.weight|\.lora_[AB]",
     "a LoRA spelling UniAVGen does not read"),
)]
NOT_LORA = "not a LoRA entry"


def split_key(key: str) -> tuple[str, str] | None:
    """(layer, suffix) of an entry of a kind named above, applied or not; None for anything else."""
    for suffix in APPLIED:
        if key.endswith(suffix) and len(key) > len(suffix):
            return key[: -len(suffix)], suffix
    for pattern, _ in NOT_APPLIED:
        found = pattern.search(key)
        if found and found.start() > 0:
            return key[: found.start()], key[found.start():]
    return None


def group(keys, source: str) -> tuple[dict[str, dict[str, str]], dict[str, list[str]]]:
    """The keys of the kinds applied by LoRA layer ({layer: {suffix handed on: key}}), and the others
    by why they are left out."""
    groups: dict[str, dict[str, str]] = {}
    ignored: dict[str, list[str]] = {}
    for key in keys:
        split = split_key(key)
        if split is None or split[1] not in APPLIED:
            why = NOT_LORA if split is None else next(f"{what}, not applied by UniAVGen"
                                                      for pattern, what in NOT_APPLIED if pattern.match(split[1]))
            ignored.setdefault(why, []).append(key)
            continue
        name, suffix = split
        entries = groups.setdefault(name, {})
        if APPLIED[suffix] in entries:
            raise LoraError(f"{source}: {entries[APPLIED[suffix]]} and {key} are the same entry of {name} under two "
                            f"names; the file is damaged or merges two LoRAs")
        entries[APPLIED[suffix]] = key
    return groups, ignored


# ComfyUI computes a patched weight in float32 and stores it in the weight's dtype, or, when VRAM is low, computes
# in that dtype (float16, bfloat16) from the start: float16 overflows at 65504, bfloat16 near float32's limit.
# fp8 storage saturates instead (the relative check covers it).
_LIMITS = {dtype: torch.finfo(dtype).max for dtype in (torch.float16, torch.bfloat16, torch.float32)}
_SMALL = 1.0           # a change below this is not compared with the layer's weights
_RATIO = 1000.0        # a change beyond this many times the layer's largest weight is refused
_ROWS = 1024           # rows of up @ down computed at a time when the bound is not enough


def _computed(t: torch.Tensor) -> torch.Tensor:
    """`t` as ComfyUI computes with it: float16, bfloat16 and float32 as they are, other floats in float32."""
    return t if t.dtype in _LIMITS else t.float()


def _stored(layer: Layer) -> torch.dtype:
    """The dtype whose range a patch of `layer` must fit."""
    return layer.dtype if layer.dtype in _LIMITS else torch.float32


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).replace("torch.", "")


def _tensor(lora: Mapping, key: str, source: str) -> torch.Tensor:
    value = lora[key]
    if not isinstance(value, torch.Tensor):
        raise LoraError(f"{source}: {key} is a {type(value).__name__}, not a tensor; the file is damaged")
    return value


def _floats(lora: Mapping, key: str, source: str) -> torch.Tensor:
    t = _tensor(lora, key, source)
    if not t.is_floating_point():
        raise LoraError(f"{source}: {key} holds {_dtype_name(t.dtype)} values, but LoRA weights are "
                        f"floating point; the file is damaged or not a LoRA")
    if not bool(torch.isfinite(_computed(t)).all()):
        beyond = "" if t.dtype in _LIMITS else " (or values beyond float32, which ComfyUI computes in)"
        raise LoraError(f"{source}: {key} contains NaN or infinite values{beyond}; the LoRA file is damaged: "
                        f"download it again or use another")
    return t


def _alpha(lora: Mapping, key: str, source: str) -> float:
    t = _tensor(lora, key, source)
    if t.numel() != 1 or t.dtype == torch.bool or t.is_complex():
        raise LoraError(f"{source}: {key} is {_dtype_name(t.dtype)} of shape {list(t.shape)}; an "
                        f"alpha is one real number: the file is damaged")
    value = t.double().item()
    if value != value or abs(value) == float("inf"):
        raise LoraError(f"{source}: {key} is {value}; an alpha is a finite number: the file is damaged")
    return value


def _product_bound(up: torch.Tensor, down: torch.Tensor) -> float:
    """A bound of max |up @ down|."""
    # |(up @ down)[i, j]| <= |up[i, :]| |down[:, j]| (Cauchy-Schwarz): the largest row norm of up times the
    # largest column norm of down bounds every entry, reading the factors once instead of an out x in product
    return float(torch.linalg.vector_norm(up.double(), dim=1).amax()) \
        * float(torch.linalg.vector_norm(down.double(), dim=0).amax())


def _product_peak(up: torch.Tensor, down: torch.Tensor) -> float:
    """max |up @ down| in float32, as ComfyUI computes it (an overflow there is inf here too), a block of rows at
    a time."""
    down32, peak = down.float(), torch.zeros(())
    for rows in up.float().split(_ROWS):
        peak = torch.maximum(peak, (rows @ down32).abs().amax())
    return float(peak)


def _check_change(value: float, what: str, layer: Layer, source: str, strength: float, relative: bool = True,
                  exact: Callable[[], float] | None = None):
    """Refuse a change of up to `value` to `what` that overflows the weight's dtype or dwarfs its weights. When
    `value` is a bound, `exact()` gives the true value, computed only if the bound would be refused."""
    dtype = _stored(layer)

    def refusal(value: float) -> str | None:
        if not value <= _LIMITS[dtype]:
            return f"more than {_dtype_name(dtype)} weights hold ({_LIMITS[dtype]:.5g}): sampling would give NaN"
        peak = layer.peak() if relative and value > _SMALL and layer.peak is not None else None
        if peak is not None and value > _RATIO * peak:
            return f"more than {_RATIO:g} times its largest weight ({peak:.3g}): the output would be noise"
        return None
    why = refusal(value)
    if why and exact is not None:
        value = exact()
        why = refusal(value)
    if why:
        raise LoraError(f"{source} at strength {strength:g} would change {what} by up to {value:.3g}, {why}. Lower "
                        f"the strength; if it is already low, the LoRA is damaged")


def check_layer(lora: Mapping, name: str, keys: dict[str, str], target: str, layer: Layer, source: str,
                strength: float):
    """The entries of LoRA layer `name` ({suffix handed on: key}) checked against the model's layer `target`:
    ({suffix handed on: tensor} to hand on, [(key, why it is left out)], None or (shape in the LoRA, shape
    in the model) when an entry has another model's shape). Damaged entries raise LoraError."""
    kept, left_out = {}, []
    out_f, in_f = layer.out_features, layer.in_features
    pair = [keys[s] for s in (DOWN, UP) if s in keys]
    if len(pair) == 1:
        suffix = pair[0][len(name):]
        raise LoraError(f"{source}: {name} has {suffix[1:]} but no {_PARTNER[suffix][1:]} (the other half of its "
                        f"low-rank pair); the file is incomplete or damaged")
    if pair:
        down, up = _floats(lora, keys[DOWN], source), _floats(lora, keys[UP], source)
        labels = [keys[s][len(name) + 1:].split(".")[0] for s in (DOWN, UP)]
        if down.dim() != 2 or up.dim() != 2:
            raise LoraError(f"{source}: {name}'s {labels[0]} and {labels[1]} are {list(down.shape)} and "
                            f"{list(up.shape)}; a Linear layer's are matrices [rank, in] and [out, rank] (a "
                            f"convolution LoRA?)")
        if (up.shape[0], down.shape[1]) != (out_f, in_f):
            return {}, left_out, ((up.shape[0], down.shape[1]), (out_f, in_f))
        rank = down.shape[0]
        if up.shape[1] != rank:
            raise LoraError(f"{source}: {name}: {labels[0]} has rank {rank} but {labels[1]} rank {up.shape[1]} "
                            f"({list(down.shape)} and {list(up.shape)}); the file is damaged")
        if rank == 0:
            raise LoraError(f"{source}: {name} has rank 0 (empty {labels[0]} and {labels[1]}); the file is damaged")
        kept[DOWN], kept[UP] = down, up
    for suffix in (ALPHA, DORA):
        if suffix in keys and not pair:
            left_out.append((keys[suffix], f"{suffix[1:]} without a low-rank pair"))
    scale = 1.0                                   # ComfyUI scales up @ down by alpha / rank when alpha is given
    if ALPHA in keys and pair:
        alpha = _alpha(lora, keys[ALPHA], source)
        kept[ALPHA], scale = torch.tensor(alpha, dtype=torch.float64), alpha / rank
    if DORA in keys and pair:
        # ComfyUI's weight_decompose takes magnitudes per output row when dora_scale.shape[0] == out, else
        # per input column, and multiplies the weight by them in place: [out, 1] or [1, in] only
        kept[DORA] = _floats(lora, keys[DORA], source)
        if tuple(kept[DORA].shape) not in ((out_f, 1), (1, in_f)):
            raise LoraError(f"{source}: {keys[DORA]} is {list(kept[DORA].shape)}, but DoRA magnitudes of {target} "
                            f"([{out_f}, {in_f}]) are [{out_f}, 1] or [1, {in_f}]; the file is damaged")
    if DIFF in keys:
        if pair:
            raise LoraError(f"{source}: {name} has both a low-rank pair and a full difference (.diff), and ComfyUI "
                            f"applies only one of them; the file is damaged or merges two LoRAs")
        kept[DIFF] = _floats(lora, keys[DIFF], source)
        if tuple(kept[DIFF].shape) != (out_f, in_f):
            return {}, left_out, (tuple(kept[DIFF].shape), (out_f, in_f))
    if DIFF_B in keys:
        if not layer.bias:
            left_out.append((keys[DIFF_B], "the model's layer has no bias"))
        else:
            kept[DIFF_B] = _floats(lora, keys[DIFF_B], source)
            if tuple(kept[DIFF_B].shape) != (out_f,):
                return {}, left_out, (tuple(kept[DIFF_B].shape), (out_f,))

    _check_magnitudes(kept, keys, name, target, layer, source, strength, scale)
    return kept, left_out, None


def _check_magnitudes(kept: dict, keys: dict[str, str], name: str, target: str, layer: Layer, source: str,
                      strength: float, scale: float):
    """Every kept tensor, the low-rank product and the change at `strength` fit the weight's dtype, and the
    change does not dwarf the layer's weights."""
    dtype = _stored(layer)
    limit = _LIMITS[dtype]
    fits = f"more than {_dtype_name(dtype)} holds ({limit:.5g}), in which ComfyUI computes this layer's patches " \
        f"when VRAM is low; the file is damaged"
    peaks = {suffix: float(_computed(t).abs().amax()) for suffix, t in kept.items() if suffix != ALPHA}
    for suffix, peak in peaks.items():
        if not peak <= limit:
            raise LoraError(f"{source}: {keys[suffix]} holds values up to {peak:.3g}, {fits}")
    check = partial(_check_change, layer=layer, source=source, strength=strength)
    if DOWN in kept:
        factor, exact = abs(strength * scale), cache(partial(_product_peak, kept[UP], kept[DOWN]))
        product = _product_bound(kept[UP], kept[DOWN])
        if not product <= limit:
            product = exact()
            if not product <= limit:
                raise LoraError(f"{source}: {name}'s low-rank product reaches {product:.3g}, {fits}")
        check(factor * product, f"{target}.weight", exact=lambda: factor * exact())
    if DORA in kept:
        # DoRA's weight is W + s (m (W + alpha/rank up @ down) / |W + ...| - W): the low-rank change above and
        # the magnitudes m here are checked apart, an estimate rather than a bound of the result
        check(abs(strength) * peaks[DORA], f"{target}.weight")
    if DIFF in kept:
        check(abs(strength) * peaks[DIFF], f"{target}.weight")
    if DIFF_B in kept:
        check(abs(strength) * peaks[DIFF_B], f"{target}.bias", relative=False)

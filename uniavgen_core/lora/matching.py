"""Which model layer each entry of a LoRA file targets, and whether the file was made for this
model at all (a readable refusal with what it seems to be)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import torch

from .layouts import LAYOUTS

# The suffixes of one LoRA entry, after its layer name.
_SUFFIXES = (".lora_A.weight", ".lora_B.weight", ".lora_down.weight", ".lora_up.weight", ".lora_mid.weight",
             ".alpha", ".dora_scale", ".diff", ".diff_b", ".lora_A.default.weight", ".lora_B.default.weight")

_FAMILIES = [
    (r"(^|_|\.)(down_blocks|up_blocks|mid_block|input_blocks|output_blocks)[._]|^lora_te\d?_",
     "a Stable Diffusion LoRA"),
    (r"(^|_|\.)(double_blocks|single_blocks|single_transformer_blocks)[._]", "a Flux or HunyuanVideo LoRA"),
    (r"(^|_|\.)transformer_blocks[._]\d+[._]attn[._]add_", "an SD3 or LTX-Video style LoRA"),
]


class LoraError(ValueError):
    pass


@dataclass
class LoraReport:
    """What a LoRA file does to the model."""
    targets: dict[str, str]                 # LoRA layer name -> model layer name
    ignored: list[str] = field(default_factory=list)   # LoRA layer names that match nothing
    rank: int = 0

    def summary(self) -> str:
        groups: dict[str, int] = {}
        for layer in self.targets.values():
            head = layer.split(".")[0]
            groups[head] = groups.get(head, 0) + 1
        parts = ", ".join(f"{n} in {g}" for g, n in sorted(groups.items()))
        text = f"LoRA rank {self.rank}: {len(self.targets)} layers ({parts})"
        if self.ignored:
            text += (f"; {len(self.ignored)} entries ignored (no such layer in this model): "
                     + ", ".join(self.ignored[:4]) + (" ..." if len(self.ignored) > 4 else ""))
        return text


def layer_name(key: str) -> str | None:
    """The layer a LoRA tensor key belongs to (None for keys that are not LoRA tensors)."""
    for suffix in _SUFFIXES:
        if key.endswith(suffix):
            return key[: -len(suffix)]
    return None


def _down_up(lora: dict[str, torch.Tensor], name: str) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    down = lora.get(f"{name}.lora_A.weight", lora.get(f"{name}.lora_down.weight"))
    up = lora.get(f"{name}.lora_B.weight", lora.get(f"{name}.lora_up.weight"))
    return down, up


def inspect(lora: dict[str, torch.Tensor], layer_shapes: dict[str, tuple[int, int]], source: str) -> LoraReport:
    """Map the LoRA's layers onto the model's Linears ({layer: (out, in)}); refuse a LoRA made
    for another model with what it seems to be."""
    names = sorted({n for n in map(layer_name, lora) if n is not None})
    if not names:
        raise LoraError(f"{source} has no LoRA tensors (no .lora_A/.lora_B, .lora_down/.lora_up or .diff keys)")
    resolvers = [layout(layer_shapes) for layout in LAYOUTS.values()]
    targets, ignored, wrong, ranks = {}, [], [], set()
    for name in names:
        layer = next((found for found in (resolve(name) for resolve in resolvers) if found is not None), None)
        if layer is None:
            ignored.append(name)
            continue
        down, up = _down_up(lora, name)
        if down is not None and up is not None:
            out_f, in_f = layer_shapes[layer]
            ranks.add(down.shape[0])
            if down.dim() != 2 or up.dim() != 2 or down.shape[1] != in_f or up.shape[0] != out_f \
                    or up.shape[1] != down.shape[0]:
                wrong.append((layer, (up.shape[0], down.shape[-1]), (out_f, in_f)))
                continue
        targets[name] = layer
    if wrong:
        layer, theirs, ours = wrong[0]
        hint = " (5120 wide: a Wan 14B LoRA)" if any(5120 in w[1] for w in wrong) else ""
        raise LoraError(f"{source} was made for another model{hint}: {len(wrong)} layers have other shapes, e.g. "
                        f"{layer} is {list(theirs)} in the LoRA and {list(ours)} in the model. UniAVGen takes LoRAs "
                        f"made for UniAVGen or, for its video branch, Wan2.2-TI2V-5B")
    if not targets:
        family = next((what for pattern, what in _FAMILIES if any(re.search(pattern, n) for n in names)), None)
        raise LoraError(f"{source} matches no layer of UniAVGen" + (f": it looks like {family}" if family else "")
                        + f" (first entries: {', '.join(names[:3])}). UniAVGen takes LoRAs made for UniAVGen "
                        f"or, for its video branch, Wan2.2-TI2V-5B")
    return LoraReport(targets, ignored, max(ranks) if ranks else 0)

"""Which model layer each LoRA layer targets, its entries checked (entries.py), and whether the file
was made for this model at all (a readable refusal with what it seems to be)."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping

import torch

from .entries import DIFF, DIFF_B, DORA, DOWN, NOT_LORA, Layer, LoraError, check_layer, group
from .layouts import LAYOUTS

NO_LAYER = "no such layer in this model"
_TAKES = "UniAVGen takes LoRAs made for UniAVGen or, for its video branch, Wan2.2-TI2V-5B"

_FAMILIES = [
    (r"(^|_|\.)(down_blocks|up_blocks|mid_block|input_blocks|output_blocks)[._]|^lora_te\d?_",
     "a Stable Diffusion LoRA"),
    (r"(^|_|\.)(double_blocks|single_blocks|single_transformer_blocks)[._]", "a Flux or HunyuanVideo LoRA"),
    (r"(^|_|\.)transformer_blocks[._]\d+[._]attn[._]add_", "an SD3 or LTX-Video style LoRA"),
]


def _ignored_text(ignored: dict[str, list[str]]) -> str:
    return "; ".join(f"{len(names)} entries ignored ({why}): " + ", ".join(names[:4])
                     + (" ..." if len(names) > 4 else "") for why, names in ignored.items())


@dataclass
class LoraReport:
    """What a LoRA file does to the model."""
    targets: dict[str, str]                 # LoRA layer name -> the model layer it patches
    entries: dict[str, torch.Tensor]        # the checked entries as `<model layer><suffix>`, ComfyUI's names
    ignored: dict[str, list[str]] = field(default_factory=dict)    # why -> the LoRA layers or entries left out

    @property
    def ranks(self) -> list[int]:
        return sorted({t.shape[0] for key, t in self.entries.items() if key.endswith(DOWN)})

    def summary(self) -> str:
        groups: dict[str, int] = {}
        for layer in self.targets.values():
            head = layer.split(".")[0]
            groups[head] = groups.get(head, 0) + 1
        parts = ", ".join(f"{n} in {g}" for g, n in sorted(groups.items()))
        ranks = self.ranks
        kinds = [f"rank{'s' if len(ranks) > 1 else ''} {', '.join(map(str, ranks))}"] if ranks else []
        kinds += [what for suffix, what in ((DORA, "DoRA"), (DIFF, "full differences"), (DIFF_B, "bias differences"))
                  if any(key.endswith(suffix) for key in self.entries)]
        text = f"LoRA {', '.join(kinds)}: {len(self.targets)} layers patched ({parts})"
        return text + (f"; {_ignored_text(self.ignored)}" if self.ignored else "")


def inspect(lora: Mapping[str, torch.Tensor], layers: Mapping[str, Layer], source: str,
            strength: float = 1.0) -> LoraReport:
    """Check a LoRA entry by entry against the model's Linears ({name: Layer}, see linear_layers) at
    `strength`: the entries to hand ComfyUI, the model layer each LoRA layer patches, and what was left
    out and why. Refuses a LoRA made for another model with what it seems to be, damaged entries by name,
    and changes that would overflow the weights or dwarf them."""
    groups, ignored = group(lora.keys(), source)
    resolvers = [layout(layers) for layout in LAYOUTS.values()]
    targets, entries, wrong, patched_by = {}, {}, [], {}
    for name in sorted(groups):
        target = next((found for found in (resolve(name) for resolve in resolvers) if found is not None), None)
        if target is None:
            ignored.setdefault(NO_LAYER, []).append(name)
            continue
        if target in patched_by:
            raise LoraError(f"{source}: {patched_by[target]} and {name} both patch {target}, and ComfyUI applies "
                            f"only one of them; the file is damaged or merges two LoRAs")
        patched_by[target] = name
        kept, left_out, mismatch = check_layer(lora, name, groups[name], target, layers[target], source, strength)
        for key, why in left_out:
            ignored.setdefault(why, []).append(key)
        if mismatch is not None:
            wrong.append((target, *mismatch))
        elif kept:
            targets[name] = target
            entries.update({target + suffix: t for suffix, t in kept.items()})
    if wrong:
        target, theirs, ours = wrong[0]
        hint = " (5120 wide: a Wan 14B LoRA)" if any(5120 in w[1] for w in wrong) else ""
        raise LoraError(f"{source} was made for another model{hint}: {len(wrong)} layers have other shapes, e.g. "
                        f"{target} is {list(theirs)} in the LoRA and {list(ours)} in the model. {_TAKES}")
    if not targets:
        if not groups and set(ignored) <= {NOT_LORA}:
            raise LoraError(f"{source} has no LoRA tensors (no .lora_A/.lora_B, .lora_down/.lora_up or .diff keys)")
        family = next((what for pattern, what in _FAMILIES if any(re.search(pattern, k) for k in lora)), None)
        raise LoraError(f"{source} applies to no layer of UniAVGen" + (f": it looks like {family}" if family else "")
                        + f" ({_ignored_text(ignored)}). {_TAKES}")
    return LoraReport(targets, entries, ignored)

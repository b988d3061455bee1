"""The registry of LoRA naming layouts.

A layout is a function that takes the model's Linear layer names and returns a resolver: LoRA
layer name -> model layer name, or None when the name is not of this layout. A new layout (another
trainer's names) is one file with a function decorated `@register("name")`, imported by
`lora/__init__.py`."""
from __future__ import annotations

from typing import Callable, Iterable

Resolver = Callable[[str], "str | None"]
LAYOUTS: dict[str, Callable[[Iterable[str]], Resolver]] = {}

# Prefixes trainers put before the model's own layer names.
PREFIXES = ("", "diffusion_model.", "transformer.", "model.", "base_model.model.")


def register(name: str):
    def add(layout: Callable[[Iterable[str]], Resolver]):
        LAYOUTS[name] = layout
        return layout
    return add


def strip_prefix(name: str) -> str:
    """`name` without a known trainer prefix."""
    return next((name[len(p):] for p in PREFIXES[1:] if name.startswith(p)), name)

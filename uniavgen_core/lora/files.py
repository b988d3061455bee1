"""A .safetensors LoRA read lazily: the keys come from its header and a tensor is read only when
the checks keep its entry, so ignored entries are never loaded, however large they say they are."""
from __future__ import annotations

from collections.abc import Mapping
from contextlib import contextmanager
from typing import Iterator

import torch
from safetensors import safe_open

from .entries import LoraError


class _Entries(Mapping):
    def __init__(self, handle, source: str):
        self._handle, self._source, self._keys = handle, source, dict.fromkeys(handle.keys())

    def __getitem__(self, key: str) -> torch.Tensor:
        if key not in self._keys:
            raise KeyError(key)
        try:
            return self._handle.get_tensor(key)
        except Exception as err:  # safetensors raises its own error types
            raise LoraError(f"{self._source}: {key} cannot be read ({err}); the file is damaged") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


@contextmanager
def open_lora(path, source: str) -> Iterator[Mapping[str, torch.Tensor]]:
    """The LoRA file at `path` as {key: tensor}, each tensor read on access (usable inside the block;
    the tensors read stay valid after it)."""
    try:
        handle = safe_open(str(path), framework="pt")
    except Exception as err:  # safetensors raises its own error types for corrupt headers
        raise LoraError(f"{source} is not a readable .safetensors LoRA ({err})") from None
    with handle:
        yield _Entries(handle, source)

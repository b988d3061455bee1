"""Block swap: the weights of N layer pairs (video block, audio block and the interaction blocks
of that layer) stay in CPU memory and visit the compute device only while their layer runs.
On CUDA they are pinned and the next swapped layer is copied on a side stream while the
current one computes, so the copy hides behind the compute.

The swapped modules ignore `.to()` / `.cuda()` from then on, so a memory manager that moves the
whole model (ComfyUI's ModelPatcher) moves only the resident part; `resident_bytes` is what it
should be told the model weighs. Weight patches written in place (LoRA) land in the CPU copies.
"""
from __future__ import annotations

import types

import torch


def _stay(module, fn, recurse=True):
    """`nn.Module._apply` of a swapped module: its tensors stay where the block swap keeps them."""
    return module


class BlockSwap:
    def __init__(self, model, count: int, device):
        cfg = model.config
        if not 0 <= count <= cfg.num_layers:
            raise ValueError(f"block swap of {count} layer pairs: choose 0..{cfg.num_layers}")
        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None
        self.layers = list(range(cfg.num_layers - count, cfg.num_layers))
        self.host: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
        self.pinned_modules: list[torch.nn.Module] = []
        for layer in self.layers:
            modules = model.layer_pair(layer)
            tensors = [t for m in modules for t in list(m.parameters()) + list(m.buffers())]
            for sub in (s for m in modules for s in m.modules()):
                sub._apply = types.MethodType(_stay, sub)
                self.pinned_modules.append(sub)
            self.host[layer] = []
            for t in tensors:
                home = t.data.to("cpu")
                if self.cuda:
                    home = home.pin_memory()
                t.data = home
                self.host[layer].append((t, home))
        self.ready: dict[int, tuple] = {}

    @property
    def host_bytes(self) -> int:
        """Bytes of the swapped weights (kept in CPU memory)."""
        return sum(home.numel() * home.element_size() for pairs in self.host.values() for _, home in pairs)

    def resident_bytes(self, model: torch.nn.Module) -> int:
        """Bytes of `model`'s weights that live on the compute device."""
        total = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
        return total - self.host_bytes

    def next_after(self, layer: int) -> int | None:
        return next((i for i in self.layers if i > layer), None)

    def prefetch(self, layer: int | None) -> None:
        if layer is None or layer not in self.host or layer in self.ready:
            return
        if self.cuda:
            with torch.cuda.stream(self.stream):
                copies = [home.to(self.device, non_blocking=True) for _, home in self.host[layer]]
                event = torch.cuda.Event()
                event.record(self.stream)
        else:
            copies, event = [home.to(self.device) for _, home in self.host[layer]], None
        self.ready[layer] = (event, copies)

    def acquire(self, layer: int) -> None:
        """Weights of `layer` on the device (waiting for their copy), and the next layer's on the way."""
        if layer not in self.host:
            return
        self.prefetch(layer)
        event, copies = self.ready.pop(layer)
        if event is not None:
            torch.cuda.current_stream(self.device).wait_event(event)
        for (tensor, _), copy in zip(self.host[layer], copies):
            tensor.data = copy
        self.prefetch(self.next_after(layer))

    def release(self, layer: int) -> None:
        """Back to the CPU copies; the device copies are freed once the compute using them is done.
        After the last swapped layer, the first one is fetched again for the next step, so its
        copy overlaps the output head, the sampler's update and the next step's embeddings."""
        if layer not in self.host:
            return
        for tensor, home in self.host[layer]:
            if self.cuda:
                tensor.data.record_stream(torch.cuda.current_stream(self.device))
            tensor.data = home
        if self.cuda and layer == self.layers[-1]:
            self.prefetch(self.layers[0])

    def close(self) -> None:
        """Stop swapping: the weights stay on their CPU copies, and `.to()` moves them again."""
        self.park()
        for module in self.pinned_modules:
            del module._apply
        self.pinned_modules.clear()

    def park(self) -> None:
        """All swapped weights back on their CPU copies (after something moved the whole model)."""
        self.ready.clear()
        for pairs in self.host.values():
            for tensor, home in pairs:
                tensor.data = home

"""Predicted GPU memory of one sampling step, computed on the meta device (no GPU, no weights).

    python benchmarks/memory_estimate.py [--shape official] [--modes resident,fp8,fp8+swap30]

The forward runs on meta tensors under a dispatch mode that follows every tensor the step
creates and frees, and records the most bytes alive at once. Attention is counted as a fused
kernel (its output only), as SDPA's flash/cuDNN kernels and FlashAttention behave, and the
caption keeps all its rows, as on CUDA. Resident weights are added from the model,
and block swap adds the two layer pairs in flight (the running one and the prefetched one).
CUDA workspaces and allocator fragmentation are not included: this is a floor for the measured
peak, to be read next to `bench.py --device cuda`.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import torch
from torch.multiprocessing.reductions import StorageWeakRef
from torch.utils._python_dispatch import TorchDispatchMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import bench  # noqa: E402
from uniavgen_core.model import attention  # noqa: E402
from uniavgen_core.model.fp8 import FP8  # noqa: E402
from uniavgen_core.model import dit as model_module  # noqa: E402
from uniavgen_core.model.dit import UniAVGenModel  # noqa: E402

GIB = 2 ** 30


class LiveBytes(TorchDispatchMode):
    """The peak of bytes held by tensors created inside the mode (weights excluded)."""

    def __init__(self, exclude: set[int]):
        super().__init__()
        self.exclude, self.live, self.peak = exclude, {}, 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                if storage._cdata not in self.exclude:
                    self.live.setdefault(storage._cdata, (StorageWeakRef(storage), storage.nbytes()))
        self.live = {k: v for k, v in self.live.items() if not v[0].expired()}
        self.peak = max(self.peak, sum(size for _, size in self.live.values()))
        return out


def meta_model(config, fp8: bool) -> UniAVGenModel:
    """bf16 on meta; with fp8 the matrices the converter quantises are e4m3fn with a scale."""
    with torch.device("meta"):
        model = UniAVGenModel(config).to(torch.bfloat16)
    if fp8:
        for name in bench.quantised_modules(model):
            weight = model.get_submodule(name).weight
            weight.data = torch.empty(weight.shape, dtype=FP8, device="meta")
    model.compute_dtype = torch.bfloat16
    return model.eval().requires_grad_(False)


def layer_bytes(model: UniAVGenModel) -> list[int]:
    """Bytes of each layer pair as block swap moves it (both blocks and their interaction blocks)."""
    return [sum(t.nbytes for m in model.layer_pair(layer) for t in list(m.parameters()) + list(m.buffers()))
            for layer in range(model.config.num_layers)]


def estimate(shape: dict, mode: str) -> dict:
    _, fp8, swap = bench.parse_mode(mode)
    model = meta_model(shape["config"], fp8)
    tensors = list(model.parameters()) + list(model.buffers())
    sizes = layer_bytes(model)
    swapped = sizes[len(sizes) - swap:] if swap else []
    resident = sum(t.nbytes for t in tensors) - sum(swapped)
    in_flight = sum(sorted(swapped)[-2:])
    inputs = bench.step_inputs(model, shape, torch.device("meta"))
    fused, bias = attention.BACKENDS["sdpa"], model_module.caption_bias
    attention.BACKENDS["sdpa"] = dataclasses.replace(fused, kernel=lambda q, k, v, key_mask=None: torch.empty_like(q))
    model_module.caption_bias = lambda *args: None
    try:
        with LiveBytes({t.untyped_storage()._cdata for t in tensors}) as tracker:
            model(*inputs)
    finally:
        attention.BACKENDS["sdpa"], model_module.caption_bias = fused, bias
    return dict(mode=mode, resident=resident, in_flight=in_flight, activations=tracker.peak,
                total=resident + in_flight + tracker.peak)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(bench.SHAPES), default="official")
    parser.add_argument("--modes", default="resident,fp8,swap30,fp8+swap30")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    print(f"Predicted GPU memory of one step (cond+null batched, bf16 compute), shape `{args.shape}`\n")
    print("| mode | resident weights | swapped layers in flight | activations (peak) | total |")
    print("|---|---|---|---|---|")
    for mode in args.modes.split(","):
        r = estimate(bench.SHAPES[args.shape], mode)
        print(f"| {r['mode']} | {r['resident'] / GIB:.2f} GiB | {r['in_flight'] / GIB:.2f} GiB | "
              f"{r['activations'] / GIB:.2f} GiB | {r['total'] / GIB:.2f} GiB |")


if __name__ == "__main__":
    main()

"""Double of comfy.lora (ComfyUI 0.3.64) for the kinds the pack hands on: load_lora reads `.alpha`
(`.item()`), `.dora_scale`, a low-rank pair (`.lora_up.weight` / `.lora_down.weight` or
`.lora_B.weight` / `.lora_A.weight`), `.diff` and `.diff_b` for every entry of `to_load` ({LoRA
layer name: model key}) as ComfyUI does, and logs the keys it did not read as ComfyUI does. Each
call is recorded in `calls` (the file dict and `to_load`, as given). calculate_weight applies the
patches with ComfyUI's formulas (low rank scaled by alpha / rank, DoRA's weight_decompose, diff)."""
import logging

import torch

calls = []           # (lora, to_load) per load_lora call, for assertions


def load_lora(lora, to_load, log_missing=True):
    calls.append((dict(lora), dict(to_load)))
    patches, loaded = {}, set()
    for x, key in to_load.items():
        alpha = dora_scale = None
        if f"{x}.alpha" in lora:
            alpha = lora[f"{x}.alpha"].item()
            loaded.add(f"{x}.alpha")
        if f"{x}.dora_scale" in lora:
            dora_scale = lora[f"{x}.dora_scale"]
            loaded.add(f"{x}.dora_scale")
        for up, down in ((f"{x}.lora_up.weight", f"{x}.lora_down.weight"),
                         (f"{x}.lora_B.weight", f"{x}.lora_A.weight")):
            if up in lora:
                # ComfyUI's LoRAAdapter.weights: (up, down, alpha, mid, dora_scale, reshape)
                patches[key] = ("lora", (lora[up], lora[down], alpha, None, dora_scale, None))
                loaded.update((up, down))
                break
        if f"{x}.diff" in lora:
            patches[key] = ("diff", (lora[f"{x}.diff"],))
            loaded.add(f"{x}.diff")
        if f"{x}.diff_b" in lora:
            patches[f"{key[:-len('.weight')]}.bias"] = ("diff", (lora[f"{x}.diff_b"],))
            loaded.add(f"{x}.diff_b")
    if log_missing:
        for x in lora:
            if x not in loaded:
                logging.warning("lora key not loaded: {}".format(x))
    return patches


def _decompose(dora_scale, weight, lora_diff, alpha, strength):
    """ComfyUI's weight_decompose: the magnitudes per output row (normed on the weight before the
    change) when dora_scale.shape[0] is the weight's, else per input column (normed after it)."""
    lora_diff = lora_diff * alpha
    weight_calc = weight + lora_diff
    if dora_scale.shape[0] == weight_calc.shape[0]:
        norm = weight.norm(dim=1, keepdim=True)
    else:
        norm = weight_calc.norm(dim=0, keepdim=True)
    weight_calc = weight_calc * (dora_scale / (norm + torch.finfo(weight.dtype).eps))
    return weight + strength * (weight_calc - weight)


def calculate_weight(patches, weight, key, intermediate_dtype=torch.float32, original_weights=None):
    """`weight` with the patches ((strength, patch, strength_model, offset, function) each) applied."""
    for strength, (kind, v), strength_model, _, _ in patches:
        weight = weight * strength_model
        if kind == "lora":
            up, down, alpha, _, dora_scale, _ = v
            scale = 1.0 if alpha is None else alpha / down.shape[0]
            diff = (up.to(intermediate_dtype) @ down.to(intermediate_dtype)).reshape(weight.shape)
            if dora_scale is None:
                weight = weight + strength * scale * diff
            else:
                weight = _decompose(dora_scale.to(intermediate_dtype), weight, diff, scale, strength)
        elif v[0].shape == weight.shape:
            weight = weight + strength * v[0].to(weight.dtype)
        else:
            logging.warning("WARNING SHAPE MISMATCH {} WEIGHT NOT MERGED {} != {}".format(key, v[0].shape,
                                                                                        weight.shape))
    return weight

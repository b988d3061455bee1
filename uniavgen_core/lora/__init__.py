"""LoRA files for UniAVGen: which model layer each LoRA entry targets, whether the file was made
for this model at all, and each entry checked before anything reaches ComfyUI.

Accepted names, for any Linear of the model (`blocks.3.self_attn.q`, `audio_blocks.0.ffn.2`,
`a2v_blocks.1.k`, ...):
* the model's own names, bare or under `diffusion_model.`, `transformer.`, `model.` or
  `base_model.model.`;
* the same with dots as underscores under `lora_unet_` / `lora_transformer_` (kohya, musubi-tuner);
* Wan2.2-TI2V-5B LoRAs in the diffusers layout (`blocks.N.attn1.to_q`, `attn2`, `ffn.net.0.proj`,
  `condition_embedder.*`, `proj_out`): the video branch has Wan's layout, so they apply to it.

Applied kinds (entries.py): low-rank pairs, PEFT (`.lora_A.weight` / `.lora_B.weight`, also
`.lora_A.default.weight`) or kohya (`.lora_down.weight` / `.lora_up.weight`), with an optional
`.alpha` and DoRA `.dora_scale`; full differences `.diff` (weight) and `.diff_b` (bias). Each is
checked (floating point, finite, the layer's shape, ranks that agree, a change the weights' dtype
holds) and handed on under the names ComfyUI reads. Other kinds (LoHa, LoKr, OFT, `.lora_mid`,
`.reshape_weight`, `.set_weight`, ...), entries of layers the model lacks and non-LoRA keys are
listed as ignored with the reason. A half pair, mismatched ranks, a bad alpha, NaN or infinite
values, or a change that overflows the weights are refused by name; a file whose layers have
other shapes (Wan 14B is 5120 wide, the video branch 3072) or that applies to nothing (Stable
Diffusion, Flux, LoHa only, ...) is refused with what it seems to be.
"""
from . import native, wan_diffusers  # noqa: F401  (the built-in layouts register themselves)
from .entries import Layer, LoraError, linear_layers, split_key
from .files import open_lora
from .matching import LoraReport, inspect
from .layouts import LAYOUTS, register
from .native import aliases

__all__ = ["Layer", "LoraError", "LoraReport", "inspect", "linear_layers", "open_lora", "split_key", "LAYOUTS",
           "register", "aliases"]

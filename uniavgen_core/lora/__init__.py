"""LoRA files for UniAVGen: which model layer each LoRA entry targets, and whether the file was
made for this model at all.

Accepted names, for any Linear of the model (`blocks.3.self_attn.q`, `audio_blocks.0.ffn.2`,
`a2v_blocks.1.k`, ...):
* the model's own names, bare or under `diffusion_model.`, `transformer.`, `model.` or
  `base_model.model.`, with PEFT (`.lora_A` / `.lora_B`) or kohya (`.lora_down` / `.lora_up`,
  `.alpha`) tensors;
* the same with dots as underscores under `lora_unet_` / `lora_transformer_` (kohya, musubi-tuner);
* Wan2.2-TI2V-5B LoRAs in the diffusers layout (`blocks.N.attn1.to_q`, `attn2`, `ffn.net.0.proj`,
  `condition_embedder.*`, `proj_out`): the video branch has Wan's layout, so they apply to it.

A file whose matched layers have other shapes (Wan 14B is 5120 wide, the video branch 3072) or
that matches nothing (Stable Diffusion, Flux, ...) is refused with what it seems to be.
"""
from . import native, wan_diffusers  # noqa: F401  (the built-in layouts register themselves)
from .matching import LoraError, LoraReport, inspect, layer_name
from .layouts import LAYOUTS, register
from .native import aliases

__all__ = ["LoraError", "LoraReport", "inspect", "layer_name", "LAYOUTS", "register", "aliases"]

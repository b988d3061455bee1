"""UniAVGen's own layer names, bare or under a trainer prefix, and the kohya / musubi-tuner
spelling with dots as underscores under `lora_unet_` / `lora_transformer_`."""
from __future__ import annotations

from .layouts import PREFIXES, register

UNDERSCORE_PREFIXES = ("lora_unet_", "lora_transformer_")


def aliases(model_layers) -> dict[str, str]:
    """Every accepted name of this layout -> the model layer it targets."""
    out = {}
    for layer in model_layers:
        for prefix in PREFIXES:
            out[prefix + layer] = layer
        for prefix in UNDERSCORE_PREFIXES:
            out[prefix + layer.replace(".", "_")] = layer
    return out


@register("uniavgen")
def uniavgen_names(model_layers):
    return aliases(model_layers).get

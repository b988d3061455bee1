"""The LoRA loader: low-rank patches handed to ComfyUI's ModelPatcher, which applies them when
the model is loaded for sampling and removes them when another model (or none) needs the
weights, so no patched copy of the model is kept. Only the entries the pack has checked reach
ComfyUI, under the names it reads (uniavgen_core.lora)."""
from uniavgen_core.lora import LoraError, inspect, linear_layers, open_lora
from uniavgen_core.model import fp8

from . import folders, host
from .common import CATEGORY, with_messages


APPLIED = "uniavgen_loras"                 # model_options key: the LoRAs applied, for messages


class UniAVGenLoraLoader:
    DESCRIPTION = ("Applies a LoRA to the UniAVGen model: one made for UniAVGen (its own layer names), or a "
                   "Wan2.2-TI2V-5B LoRA (ComfyUI or diffusers names), which acts on the video branch. Chain "
                   "several loaders to combine LoRAs. Applies low-rank (PEFT, kohya, DoRA) and full-difference "
                   "entries, checked one by one; reports what was patched and what was ignored and why; refuses "
                   "LoRAs of other models and damaged ones.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("UNIAVGEN_MODEL",)
    RETURN_NAMES = ("model",)
    FUNCTION = "apply"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("UNIAVGEN_MODEL", {"tooltip": "From UniAVGen Model Loader (or another LoRA loader)."}),
            "lora_name": (folders.lora_choices(), {"tooltip": "A .safetensors LoRA in models/loras."}),
            "strength": ("FLOAT", {"default": 1.0, "min": -4.0, "max": 4.0, "step": 0.05, "tooltip":
                         "How strongly the LoRA acts: 0 leaves the model as it is, 1 as trained, negative "
                         "values push the other way."}),
        }}

    @classmethod
    def VALIDATE_INPUTS(cls, lora_name):
        if lora_name is None or lora_name in folders.lora_choices():
            return True
        return f"LoRA {lora_name!r} is not in models/loras: put the .safetensors file there and refresh"

    def apply(self, model, lora_name, strength):
        if strength != strength or abs(strength) == float("inf"):
            raise ValueError(f"LoRA strength {strength} is not a number: give a value such as 1.0")
        path = folders.resolve(lora_name, (folders.LORA_KEY,), "LoRA")
        net = model.model.diffusion_model
        with open_lora(path, lora_name) as lora:
            report = inspect(lora, linear_layers(net), lora_name, strength)
        if any(getattr(m, fp8.SCALE, None) is not None and not hasattr(m, "convert_weight") for m in net.modules()):
            raise LoraError("this fp8 model was loaded with the pack's own layers (this ComfyUI has no scaled-fp8 "
                            "layers), which cannot take LoRA patches: update ComfyUI, or load a bf16 model")
        if strength == 0:
            return with_messages((model,), [f"strength 0: {lora_name} not applied"])
        to_load = {layer: f"diffusion_model.{layer}.weight" for layer in report.targets.values()}
        patches = host.module("comfy.lora").load_lora(report.entries, to_load)
        patched = model.clone()
        patched.add_patches(patches, strength)
        # named by the sampler if a step overflows (model_options travel with every clone)
        patched.model_options[APPLIED] = [*model.model_options.get(APPLIED, []), f"{lora_name} at {strength:g}"]
        return with_messages((patched,), [f"{lora_name}: {report.summary()}"])

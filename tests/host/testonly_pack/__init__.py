"""Test-only ComfyUI nodes for the real-host run (never shipped in the pack).

UniAVGenTestTextEncoder stands in for the 5.7B umT5 encoder: CONDITIONING shaped like
CLIPTextEncode's ([1, 512, width], zero rows past the prompt), deterministic in the text."""
import hashlib

import torch


class UniAVGenTestTextEncoder:
    CATEGORY = "UniAVGen/testing"
    DESCRIPTION = "Test stand-in for umT5: deterministic features of the tiny model's width."
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "text": ("STRING", {"multiline": True, "default": "", "tooltip": "Prompt text."}),
            "width": ("INT", {"default": 64, "min": 1, "max": 4096, "tooltip": "Feature width (caption width)."}),
        }}

    def encode(self, text, width):
        seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
        rows = min(len(text.split()) + 1, 512)
        features = torch.zeros(1, 512, width)
        features[0, :rows] = torch.randn(rows, width, generator=torch.Generator().manual_seed(seed))
        return ([[features, {"pooled_output": None}]],)


class UniAVGenTestDescribeModel:
    """Which classes the UniAVGen model's layers are (to check they come from comfy.ops)."""
    CATEGORY = "UniAVGen/testing"
    DESCRIPTION = "Test: lists the layer classes of a UniAVGen model."
    RETURN_TYPES = ()
    OUTPUT_NODE = True
    FUNCTION = "describe"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("UNIAVGEN_MODEL", {"tooltip": "The model to describe."})}}

    def describe(self, model):
        net = model.model.diffusion_model
        kinds = {}
        for module in net.modules():
            if isinstance(module, torch.nn.Linear):
                name = f"{type(module).__module__}.{type(module).__qualname__} {module.weight.dtype}"
                kinds[name] = kinds.get(name, 0) + 1
        return {"ui": {"text": [f"{n} x{k}" for n, k in sorted(kinds.items())]}}


NODE_CLASS_MAPPINGS = {"UniAVGenTestTextEncoder": UniAVGenTestTextEncoder,
                       "UniAVGenTestDescribeModel": UniAVGenTestDescribeModel}

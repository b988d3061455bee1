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


NODE_CLASS_MAPPINGS = {"UniAVGenTestTextEncoder": UniAVGenTestTextEncoder}

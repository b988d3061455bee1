"""Double of comfy.lora.load_lora: {model key: the LoRA's (up, down, alpha)} for every entry of
`to_load` ({LoRA layer name: model key}) found in the file, as ComfyUI pairs them."""


def load_lora(lora, to_load, log_missing=True):
    patches = {}
    for name, model_key in to_load.items():
        up = lora.get(f"{name}.lora_B.weight", lora.get(f"{name}.lora_up.weight"))
        down = lora.get(f"{name}.lora_A.weight", lora.get(f"{name}.lora_down.weight"))
        if up is not None and down is not None:
            alpha = lora.get(f"{name}.alpha")
            patches[model_key] = ("lora", (up, down, None if alpha is None else float(alpha)))
    return patches

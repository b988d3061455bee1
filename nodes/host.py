"""The ComfyUI modules the nodes use, imported when a node runs (never at import of the core)."""
import importlib


def module(name: str):
    return importlib.import_module(name)


def folder_paths():
    return module("folder_paths")


def mm():
    return module("comfy.model_management")


def progress_bar(total: int):
    return module("comfy.utils").ProgressBar(total)


def model_patcher(model, load_device, offload_device):
    return module("comfy.model_patcher").ModelPatcher(model, load_device=load_device, offload_device=offload_device)


def wan22_format():
    return module("comfy.latent_formats").Wan22()


def cast_ops():
    """ComfyUI's casting layers: weights stay wherever the memory manager put them."""
    return module("comfy.ops").manual_cast


def previewer(device):
    try:
        return module("latent_preview").get_previewer(device, wan22_format())
    except Exception:  # previews are optional: a host without them just shows none
        return None

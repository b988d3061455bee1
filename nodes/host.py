"""The ComfyUI modules the nodes use, imported when a node runs (never at import of the core)."""
import importlib

from uniavgen_core.sampling import NUM_TIMESTEPS


def module(name: str):
    return importlib.import_module(name)


def folder_paths():
    return module("folder_paths")


def mm():
    return module("comfy.model_management")


def progress_bar(total: int):
    return module("comfy.utils").ProgressBar(total)


def model_patcher(model, load_device, offload_device, size=0, weight_inplace_update=False):
    return module("comfy.model_patcher").ModelPatcher(model, load_device=load_device, offload_device=offload_device,
                                                      size=size, weight_inplace_update=weight_inplace_update)


def wan22_format():
    return module("comfy.latent_formats").Wan22()


def cast_ops():
    """ComfyUI's casting layers: weights stay wherever the memory manager put them."""
    return module("comfy.ops").manual_cast


def scaled_fp8_ops():
    """ComfyUI's casting layers for scaled-fp8 weights (`scale_weight` per Linear, the pack's own
    fp8 format), so the memory manager can partially load them and LoRA patches apply to them;
    None on a ComfyUI without them."""
    make = getattr(module("comfy.ops"), "scaled_fp8_ops", None)
    return None if make is None else make(fp8_matrix_mult=False, scale_input=False)


def previewer(device):
    try:
        return module("latent_preview").get_previewer(device, wan22_format())
    except Exception:  # previews are optional: a host without them just shows none
        return None


def flow_model_sampling(shift: float):
    """ComfyUI's model sampling of a rectified-flow model at `shift` (the kind its samplers test for: the data
    prediction x - sigma v, noise scaled as sigma noise + (1 - sigma) x0, timestep 1000 sigma)."""
    sampling = module("comfy.model_sampling")
    kind = type("UniAVGenModelSampling", (sampling.ModelSamplingDiscreteFlow, sampling.CONST), {})
    made = kind()
    made.set_parameters(shift=shift, multiplier=NUM_TIMESTEPS)
    return made

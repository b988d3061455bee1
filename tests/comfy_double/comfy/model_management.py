"""Double of comfy.model_management: CPU devices, a recorded load_models_gpu, interrupts."""
import torch

loaded = []          # (patchers, memory_required) per call, for assertions
_interrupted = False


class InterruptProcessingException(Exception):
    pass


def get_torch_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    """Recorded; a model loaded before is detached first without unpatching (ComfyUI drops it as a clone of
    itself, then loads it again)."""
    for model in models:
        if any(model in held for held, _ in loaded) and hasattr(model, "detach"):
            model.detach(unpatch_all=False)
    loaded.append((list(models), memory_required))


def unload_all_models():
    """As ComfyUI's: every loaded model is detached (ModelPatcher.detach runs its ON_DETACH callbacks)."""
    while loaded:
        for patcher in loaded.pop()[0]:
            patcher.detach()


def module_size(module):
    return sum(t.numel() * t.element_size() for t in module.state_dict().values())


def soft_empty_cache(force=False):
    pass


def interrupt_current_processing(value=True):
    global _interrupted
    _interrupted = value


def processing_interrupted():
    return _interrupted


def throw_exception_if_processing_interrupted():
    global _interrupted
    if _interrupted:
        _interrupted = False
        raise InterruptProcessingException()

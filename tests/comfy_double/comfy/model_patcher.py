"""Double of comfy.model_patcher.ModelPatcher (the constructor and what the pack reads)."""
import copy

from . import model_management
from .patcher_extension import CallbacksMP


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.size = size or model_management.module_size(model)
        self.weight_inplace_update = weight_inplace_update
        self.patches = {}
        self.model_options = {"transformer_options": {}}
        self.callbacks = {}

    def add_callback(self, call_type, callback):
        self.callbacks.setdefault(call_type, []).append(callback)

    def detach(self, unpatch_all=True):
        for callback in self.callbacks.get(CallbacksMP.ON_DETACH, []):
            callback(self, unpatch_all)
        return self.model

    def clone(self):
        twin = ModelPatcher(self.model, self.load_device, self.offload_device, self.size, self.weight_inplace_update)
        twin.patches = {k: list(v) for k, v in self.patches.items()}
        twin.model_options = copy.deepcopy(self.model_options)
        return twin

    def add_patches(self, patches, strength_patch=1.0, strength_model=1.0):
        """As ComfyUI: patches for keys of the model's state dict are kept, others dropped."""
        keys = set(self.model.state_dict())
        added = [k for k in patches if k in keys]
        for k in added:
            self.patches.setdefault(k, []).append((strength_patch, patches[k], strength_model, None, None))
        return added

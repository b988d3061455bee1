"""Double of comfy.model_patcher.ModelPatcher (the constructor and what the pack reads)."""
from . import model_management


class ModelPatcher:
    def __init__(self, model, load_device, offload_device, size=0, weight_inplace_update=False):
        self.model, self.load_device, self.offload_device = model, load_device, offload_device
        self.size = size or model_management.module_size(model)

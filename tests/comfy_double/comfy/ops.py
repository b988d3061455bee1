"""Double of comfy.ops.manual_cast: layers that cast weights to the input and say so."""
from uniavgen_core import ops as _ops


class manual_cast:
    class Linear(_ops.Linear):
        comfy_cast_weights = True

    class Conv1d(_ops.Conv1d):
        comfy_cast_weights = True

    class Conv3d(_ops.Conv3d):
        comfy_cast_weights = True

    class LayerNorm(_ops.LayerNorm):
        comfy_cast_weights = True

    class Embedding(_ops.Embedding):
        comfy_cast_weights = True

"""Double of comfy.ops.manual_cast: layers that cast weights to the input and say so."""
from uniavgen_core.model import ops as _ops


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


def scaled_fp8_ops(fp8_matrix_mult=False, scale_input=False, override_dtype=None):
    """Double of comfy.ops.scaled_fp8_ops: every Linear carries a float32 `scale_weight`
    parameter (1 until loaded) and computes with weight * scale."""
    import torch

    class scaled_fp8_op(manual_cast):
        class Linear(manual_cast.Linear):
            def reset_parameters(self):
                self.scale_weight = torch.nn.Parameter(torch.ones((), device=self.weight.device), requires_grad=False)
                self.scale_input = None

    return scaled_fp8_op

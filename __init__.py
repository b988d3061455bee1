"""ComfyUI-UniAVGen: ComfyUI entry point.

ComfyUI imports this package from custom_nodes/ and reads the two mappings
below. Nothing here imports ComfyUI itself.
"""

from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

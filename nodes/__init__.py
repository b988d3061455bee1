"""ComfyUI node adapters for UniAVGen.

Empty for now: the node adapters arrive with the node-pack issue. The mappings
exist so that ComfyUI can load the pack without errors in the meantime.
"""

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]

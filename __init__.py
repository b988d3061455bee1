"""ComfyUI-UniAVGen: the ComfyUI entry point.

ComfyUI imports this folder as a package and reads the two mappings below. The model code lives
in `uniavgen_core` (plain PyTorch, no ComfyUI imports) next to this file.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    # appended, not prepended: our `nodes` package must never shadow ComfyUI's own `nodes` module
    sys.path.append(_HERE)

if __package__:
    from .nodes import (NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS,  # noqa: E402
                        install_example_inputs, register_folders)

    try:
        register_folders()
        install_example_inputs()
    except ImportError:  # imported outside ComfyUI (no folder_paths): nothing to register
        pass
else:
    # imported as a lone file, not as ComfyUI's package: pytest does so in a checkout whose folder
    # name is not a Python name (ComfyUI-UniAVGen); there is nothing to register then
    NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = {}, {}

# the frontend extension that shows the nodes' messages on the nodes
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]

"""Double of comfy.patcher_extension: the callback names the pack uses."""


class CallbacksMP:
    ON_DETACH = "on_detach_after"

"""Double of comfy.utils.ProgressBar (records every update)."""
updates = []


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total = total

    def update_absolute(self, value, total=None, preview=None):
        updates.append((value, total if total is not None else self.total, preview))

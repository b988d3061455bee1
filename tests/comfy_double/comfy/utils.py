"""Double of comfy.utils.ProgressBar (records every update)."""
updates = []


class ProgressBar:
    def __init__(self, total, node_id=None):
        self.total, self.current = total, 0

    def update_absolute(self, value, total=None, preview=None):
        self.current = value
        updates.append((value, total if total is not None else self.total, preview))

    def update(self, value):
        self.update_absolute(self.current + value, self.total)

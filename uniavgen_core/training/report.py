"""The training curve of a checkpoint as a picture (the command line: python -m uniavgen_core.cli.report)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import safe_open


def history(checkpoint: str | Path) -> list[dict]:
    with safe_open(str(checkpoint), framework="pt") as f:
        meta = f.metadata() or {}
    if "history" not in meta:
        raise ValueError(f"{checkpoint} is not a training checkpoint (no history in its metadata)")
    return json.loads(meta["history"])


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average (shorter at the ends)."""
    kernel = np.ones(window)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones_like(values), kernel, "same")


def plot(records: list[dict], out: str | Path, window: int = 50) -> Path:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = np.array([r["step"] for r in records])
    fig, (loss_ax, lr_ax) = plt.subplots(2, 1, figsize=(8, 6), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    for key, label in (("video", "video flow loss"), ("audio", "audio flow loss"), ("fam", "face-mask BCE")):
        values = np.array([r.get(key, np.nan) for r in records], dtype=float)
        if np.isfinite(values).any():
            loss_ax.plot(steps, values, alpha=0.15)
            loss_ax.plot(steps, smooth(values, window), label=f"{label} (mean of {window} steps)",
                         color=loss_ax.lines[-1].get_color())
    loss_ax.set_yscale("log")
    loss_ax.set_ylabel("loss")
    loss_ax.legend(fontsize=8)
    loss_ax.grid(alpha=0.3)
    lr_ax.plot(steps, [r["lr"] for r in records])
    lr_ax.set_ylabel("learning rate")
    lr_ax.set_xlabel("step")
    lr_ax.grid(alpha=0.3)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90)
    plt.close(fig)
    return out

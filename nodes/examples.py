"""The example inputs the shipped workflows load (example_inputs/, made by the synthetic
generator) are copied into ComfyUI's input folder when missing there, so that every workflow
runs on a fresh ComfyUI. A file the user has under the same name is never replaced."""
import shutil
from pathlib import Path

from . import host
from .common import log

EXAMPLES = Path(__file__).resolve().parents[1] / "example_inputs"


def install() -> list[Path]:
    """Copies the missing example inputs; returns what was copied."""
    inputs = Path(host.folder_paths().get_input_directory())
    copied = []
    for source in sorted(EXAMPLES.iterdir()):
        target = inputs / source.name
        if source.is_file() and not target.exists():
            inputs.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
            copied.append(target)
    if copied:
        log.info("UniAVGen: example inputs copied to %s: %s", inputs, ", ".join(p.name for p in copied))
    return copied

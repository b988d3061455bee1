"""The example inputs the shipped workflows load (example_inputs/, made by the synthetic
generator) are copied into ComfyUI's input folder when missing there, so that every workflow
runs on a fresh ComfyUI. A convenience, never a risk: nothing the user has under the same name
is replaced, nothing is written through a symbolic link (not even a dangling one), and a folder
that cannot take the files (read-only, a file in its place) is reported once in the log while the
pack loads as usual."""
import os
from pathlib import Path

from . import host
from .common import log

EXAMPLES = Path(__file__).resolve().parents[1] / "example_inputs"
# create only: fails on any existing entry (a link included, dangling or not) and never follows one
CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def copy_new(source: Path, target: Path) -> None:
    """Writes source's bytes to a new file at target; a partial file is removed on failure."""
    fd = os.open(target, CREATE, 0o644)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(source.read_bytes())
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def install() -> list[Path]:
    """Copies the missing example inputs; returns what was copied. Never raises for the state of
    the input folder: what could not be copied is said once in the log."""
    try:
        inputs = Path(host.folder_paths().get_input_directory())
        if not inputs.is_dir():
            inputs.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        log.warning("UniAVGen: example inputs not copied: the input folder cannot hold them (%s); the templates "
                    "need uniavgen_face.png and friends there, which you can copy from %s", err, EXAMPLES)
        return []
    copied, skipped = [], []
    for source in sorted(p for p in EXAMPLES.iterdir() if p.is_file()):
        target = inputs / source.name
        if os.path.lexists(target):
            if target.is_symlink() and not target.exists():
                skipped.append(f"{source.name} (a broken link of that name is there; it is left as it is)")
            continue
        try:
            copy_new(source, target)
            copied.append(target)
        except OSError as err:
            skipped.append(f"{source.name} ({err.strerror or err})")
    if copied:
        log.info("UniAVGen: example inputs copied to %s: %s", inputs, ", ".join(p.name for p in copied))
    if skipped:
        log.warning("UniAVGen: example inputs not copied to %s: %s. The templates load them; copy them from %s "
                    "if you want to run the templates as shipped", inputs, "; ".join(skipped), EXAMPLES)
    return copied

"""Model folders: `models/uniavgen` and `models/uniavgen_codecs` registered safely, each with the
pack's own `models_builtin/<key>` (the shipped small model and its codec) after it; choices listed,
choices resolved inside their folders only (a choice can never name a path outside them)."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from uniavgen_core.checkpoint.loading import INDEX_NAME

from . import host

KEY = "uniavgen"
CODEC_KEY = "uniavgen_codecs"
DIT_KEYS = (KEY, "diffusion_models")
LORA_KEY = "loras"
VOCAB_NAME = "vocab.txt"
BUILTIN = Path(__file__).resolve().parents[1] / "models_builtin"


def register() -> None:
    """models/uniavgen (any model extension) and models/uniavgen_codecs (.safetensors), each followed
    by models_builtin/<key>. A yaml entry may have created a key already, with an empty extension
    set that would list every file (ComfyUI's folder_paths): its folders are kept, the extensions set."""
    fp = host.folder_paths()
    for key, extensions in ((KEY, fp.supported_pt_extensions), (CODEC_KEY, {".safetensors"})):
        paths = list(fp.folder_names_and_paths.get(key, ([], set()))[0])
        for folder in (os.path.join(fp.models_dir, key), str(BUILTIN / key)):
            if folder not in paths:
                paths.append(folder)
        fp.folder_names_and_paths[key] = (paths, set(extensions))


def roots(key: str) -> list[Path]:
    try:
        return [Path(p) for p in host.folder_paths().get_folder_paths(key)]
    except KeyError:
        return []


def _walk(keys) -> list[tuple[Path, Path, tuple[str, ...]]]:
    """(root, folder relative to root, file names) for every folder under the roots of `keys`.

    Links are followed, except a link back to a folder above it (a loop). The result is cached
    until a listed folder's modification time changes
    (adding, removing or renaming a file or folder changes its folder's), so the node menus do
    not walk the model tree several times per request. A listing with a folder changed in the
    last seconds is not cached: a second change within the file system's timestamp granularity
    would go unseen (git's "racy" timestamps)."""
    folders = tuple(str(root) for key in keys for root in roots(key))
    cached = _LISTINGS.get(folders)
    if cached is not None and all(_mtime(f) == stamp for f, stamp in cached[0].items()):
        return cached[1]
    stamps, entries = {f: _mtime(f) for f in folders}, []
    for root in map(Path, folders):
        above: dict[str, frozenset] = {}        # folder -> real paths of it and the folders above it
        for folder, dirs, files in os.walk(root, followlinks=True):
            real, parent = os.path.realpath(folder), above.get(os.path.dirname(folder), frozenset())
            if real in parent:                  # a link back to a folder above: a loop
                dirs[:] = []
                continue
            above[folder] = parent | {real}
            stamps[folder] = _mtime(folder)
            dirs[:] = sorted(d for d in dirs if not d.startswith("."))
            entries.append((root, Path(folder).relative_to(root), tuple(files)))
    recent = time.time_ns() - RACY_NS
    if all(stamp is None or stamp < recent for stamp in stamps.values()):
        _LISTINGS[folders] = (stamps, entries)
    return entries


_LISTINGS: dict[tuple[str, ...], tuple[dict[str, int | None], list]] = {}
RACY_NS = 2_000_000_000


def _mtime(folder: str) -> int | None:
    try:
        return os.stat(folder).st_mtime_ns
    except OSError:
        return None


def _is_vocoder_folder(folder: Path, files) -> bool:
    if "config.json" not in files or INDEX_NAME in files:
        return False
    try:
        return "upsample_rates" in json.loads((folder / "config.json").read_text())
    except (OSError, ValueError):
        return False


def dit_choices() -> list[str]:
    """Official folders (by their index json, shown as 'Folder/') and single .safetensors files."""
    choices = set()
    for root, rel, files in _walk(DIT_KEYS):
        if INDEX_NAME in files:
            choices.add(rel.as_posix() + "/")
        elif not _is_vocoder_folder(root / rel, files):
            choices.update((rel / f).as_posix() for f in files if f.endswith(".safetensors"))
    return sorted(choices)


def vocoder_choices() -> list[str]:
    """Folders under models/uniavgen holding a BigVGAN config.json and .safetensors weights."""
    return sorted(rel.as_posix() + "/" for root, rel, files in _walk((KEY,))
                  if _is_vocoder_folder(root / rel, files) and any(f.endswith(".safetensors") for f in files))


def codec_choices() -> list[str]:
    """.safetensors files under the video codec folders."""
    return sorted({(rel / f).as_posix() for _, rel, files in _walk((CODEC_KEY,)) for f in files
                   if f.endswith(".safetensors")})


def lora_choices() -> list[str]:
    """.safetensors files under ComfyUI's models/loras folders."""
    return sorted({(rel / f).as_posix() for _, rel, files in _walk((LORA_KEY,)) for f in files
                   if f.endswith(".safetensors")})


def resolve(choice: str, keys: tuple[str, ...], what: str) -> Path:
    """The path of a listed choice, inside one of the folders of `keys`."""
    if (not isinstance(choice, str) or not choice or "\x00" in choice or len(choice) > 4096
            or any(len(part.encode("utf-8", "surrogatepass")) > 255 for part in choice.split("/"))):
        raise ValueError(f"{what}: {str(choice)[:80]!r} is not a name from the model list")
    relative = Path(choice.rstrip("/"))
    if relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"{what}: {choice!r} is not a name from the model list")
    searched = []
    for key in keys:
        for root in roots(key):
            searched.append(str(root))
            # The name is relative and has no '..': it names a path inside the folder. Links the
            # user placed there (a shared model store) are followed wherever they point.
            candidate = root / relative
            if candidate.exists():
                return candidate
    raise FileNotFoundError(f"{what} {choice!r} not found in {', '.join(searched) or 'any model folder'}; "
                            f"put it there (see the README's model table) and refresh the browser")


def vocab_for(model_path: Path) -> Path:
    """vocab.txt next to the model, else in models/uniavgen."""
    here = model_path if model_path.is_dir() else model_path.parent
    candidates = [here / VOCAB_NAME] + [root / VOCAB_NAME for root in roots(KEY)]
    for c in candidates:
        if c.is_file():
            return c
    raise FileNotFoundError(f"the speech vocabulary {VOCAB_NAME} was not found (looked in "
                            f"{', '.join(str(c.parent) for c in candidates)}); put the official UniAVGen "
                            f"vocab.txt next to the model")

"""Model folders: `models/uniavgen` registered safely, choices listed, choices resolved inside
their folder only (a choice can never name a path outside the model folders)."""
from __future__ import annotations

import os
from pathlib import Path

from uniavgen_core.loading import INDEX_NAME

from . import host

KEY = "uniavgen"
DIT_KEYS = (KEY, "diffusion_models")
VOCAB_NAME = "vocab.txt"


def register() -> None:
    """Add models/uniavgen with the model extensions. A yaml entry may have created the key
    already, with an empty extension set that would list every file (COMFYUI_HOST.md §3)."""
    fp = host.folder_paths()
    default = os.path.join(fp.models_dir, KEY)
    paths = list(fp.folder_names_and_paths.get(KEY, ([], set()))[0])
    if default not in paths:
        paths.append(default)
    fp.folder_names_and_paths[KEY] = (paths, set(fp.supported_pt_extensions))


def roots(key: str) -> list[Path]:
    try:
        return [Path(p) for p in host.folder_paths().get_folder_paths(key)]
    except KeyError:
        return []


def dit_choices() -> list[str]:
    """Official folders (by their index json, shown as 'Folder/') and single .safetensors files."""
    fp = host.folder_paths()
    choices = []
    for key in DIT_KEYS:
        try:
            files = fp.get_filename_list(key)
        except KeyError:
            continue
        folders = {str(Path(f).parent) for f in files if Path(f).name == INDEX_NAME}
        for f in files:
            parent = str(Path(f).parent)
            if Path(f).name == INDEX_NAME:
                choices.append(parent.replace(os.sep, "/") + "/")
            elif f.endswith(".safetensors") and parent not in folders:
                choices.append(f.replace(os.sep, "/"))
    return sorted(set(choices))


def vocoder_choices() -> list[str]:
    """Folders under models/uniavgen holding a Hugging Face config.json and .safetensors weights."""
    choices = set()
    for root in roots(KEY):
        for folder, _, files in os.walk(root, followlinks=True):
            if "config.json" in files and INDEX_NAME not in files and any(f.endswith(".safetensors") for f in files):
                choices.add(Path(folder).relative_to(root).as_posix() + "/")
    return sorted(choices)


def resolve(choice: str, keys: tuple[str, ...], what: str) -> Path:
    """The path of a listed choice, inside one of the folders of `keys`."""
    relative = Path(choice.rstrip("/"))
    if not choice or relative.is_absolute() or ".." in relative.parts:
        raise ValueError(f"{what}: {choice!r} is not a name from the model list")
    searched = []
    for key in keys:
        for root in roots(key):
            searched.append(str(root))
            candidate = (root / relative).resolve()
            if candidate.is_relative_to(root.resolve()) and candidate.exists():
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

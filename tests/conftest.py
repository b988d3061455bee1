import string
from pathlib import Path

import pytest
import torch

from helpers import NO_VOCAB, golden_root, release_vocab


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return golden_root() / "public"


@pytest.fixture(scope="session")
def vocab_path() -> Path:
    """The release's speech vocabulary, for the tests of its exact ids; they skip without it."""
    path = release_vocab()
    if path is None:
        pytest.skip(NO_VOCAB)
    return path


@pytest.fixture(scope="session")
def speech_vocab(tmp_path_factory) -> Path:
    """A vocab.txt to put beside the tiny golden model: the release's when present, else a stand-in that
    spells English as the release's does (space, letters of both cases, digits, ',.?!-; one token a
    line, the space first), whose ids all fit the tiny model's table."""
    path = release_vocab()
    if path is not None:
        return path
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(" " + string.ascii_letters + string.digits + "',.?!-") + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="session", autouse=True)
def no_grad():
    torch.set_grad_enabled(False)


@pytest.fixture(scope="session")
def tiny_state(golden_dir) -> dict:
    """The tiny golden model's tensors as one state dict (tests copy before changing them)."""
    from safetensors.torch import load_file

    from uniavgen_core.checkpoint.loading import checkpoint_files
    state = {}
    for f in checkpoint_files(golden_dir)[0]:
        state.update(load_file(f))
    return state


@pytest.fixture(scope="session")
def tiny_model(golden_dir):
    from uniavgen_core.checkpoint.loading import load_model
    return load_model(golden_dir, dtype=torch.float32)


@pytest.fixture(scope="session")
def fp8_checkpoint(golden_dir, speech_vocab, tmp_path_factory) -> Path:
    from uniavgen_core.checkpoint.convert import convert
    return convert(golden_dir, tmp_path_factory.mktemp("fp8") / "fp8.safetensors", "fp8", vocab=speech_vocab)

from pathlib import Path

import pytest
import torch

from helpers import golden_root


@pytest.fixture(scope="session")
def golden_dir() -> Path:
    return golden_root() / "public"


@pytest.fixture(scope="session")
def vocab_path() -> Path:
    path = golden_root().parent / "reference" / "vocab.txt"
    if not path.is_file():
        pytest.fail(f"vocab.txt not found at {path}", pytrace=False)
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
def fp8_checkpoint(golden_dir, vocab_path, tmp_path_factory) -> Path:
    from uniavgen_core.checkpoint.convert import convert
    return convert(golden_dir, tmp_path_factory.mktemp("fp8") / "fp8.safetensors", "fp8", vocab=vocab_path)

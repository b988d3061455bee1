import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


def golden_root() -> Path:
    root = Path(os.environ.get("UNIAVGEN_GOLDEN", REPO.parent / "shared" / "golden"))
    if not (root / "public" / "golden.json").is_file():
        pytest.fail(f"golden vectors not found at {root} (expected public/golden.json there); "
                    f"put the shared folder beside the repo or set UNIAVGEN_GOLDEN=/path/to/golden", pytrace=False)
    return root


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

    from uniavgen_core.loading import checkpoint_files
    state = {}
    for f in checkpoint_files(golden_dir)[0]:
        state.update(load_file(f))
    return state


@pytest.fixture(scope="session")
def tiny_model(golden_dir):
    from uniavgen_core.loading import load_model
    return load_model(golden_dir, dtype=torch.float32)


@pytest.fixture(scope="session")
def fp8_checkpoint(golden_dir, vocab_path, tmp_path_factory) -> Path:
    from uniavgen_core.convert import convert
    return convert(golden_dir, tmp_path_factory.mktemp("fp8") / "fp8.safetensors", "fp8", vocab=vocab_path)


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).norm() / ref.double().norm())

"""Shared test helpers: where the repository and the golden vectors are, a relative error, random requests
for the tiny golden model, test audio and a tiny vocoder."""
import math
import os
from pathlib import Path

import torch

from uniavgen_core.model.conditioning import Condition
from uniavgen_core.sampling import Request, Task

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden"          # shipped test data: public/ as the official code wrote it


def golden_root() -> Path:
    """The golden folder (public/ inside): UNIAVGEN_GOLDEN when set, else the copy in tests/data."""
    import pytest                           # helpers also serve the host test, which has no pytest
    root = Path(os.environ.get("UNIAVGEN_GOLDEN") or GOLDEN)
    if not (root / "public" / "golden.json").is_file():
        pytest.fail(f"golden vectors not found at {root} (expected public/golden.json there); "
                    f"unset UNIAVGEN_GOLDEN to use the copy in tests/data/golden", pytrace=False)
    return root


def release_vocab() -> Path | None:
    """The release's speech vocabulary (vocab.txt), which the repository does not ship (it has no licence):
    UNIAVGEN_VOCAB, else reference/vocab.txt beside the golden folder UNIAVGEN_GOLDEN names, else beside a
    shared folder next to the repository; None when none of them has it."""
    candidates = [os.environ.get("UNIAVGEN_VOCAB")]
    if os.environ.get("UNIAVGEN_GOLDEN"):
        candidates.append(Path(os.environ["UNIAVGEN_GOLDEN"]).parent / "reference" / "vocab.txt")
    candidates.append(REPO.parent / "shared" / "reference" / "vocab.txt")
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


NO_VOCAB = ("needs the release's vocab.txt, which is not shipped (it has no licence): "
            "set UNIAVGEN_VOCAB=/path/to/vocab.txt to run it")


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).norm() / ref.double().norm())


def random_ids(gen, length, pad_to=10):
    ids = torch.randint(0, 2545, (length,), generator=gen)
    return torch.cat([ids, torch.full((max(0, pad_to - length),), -1)])


def random_request(task: Task, seed: int, frames=4, h=4, w=6, mel=70, text_len=14, ref_len=0, cond_len=0,
                   caption_len=9, text_dim=64) -> Request:
    gen = torch.Generator().manual_seed(seed)
    ref = torch.randn(48, 1, h, w, generator=gen)
    cond_latent = torch.randn(48, frames, h, w, generator=gen) if task == Task.V2A else ref
    ref_mel = torch.randn(ref_len, 80, generator=gen) if ref_len else None
    cond_mel = torch.randn(cond_len, 80, generator=gen) if cond_len else None
    make = lambda ids, cap: Condition(ids, cap, ref, cond_latent, ref_mel, cond_mel)
    return Request(task,
                   make(random_ids(gen, text_len), torch.randn(caption_len, text_dim, generator=gen)),
                   make(random_ids(gen, 1), torch.randn(2, text_dim, generator=gen)),
                   latent_frames=frames, mel_frames=mel, seed=seed)


def tone(seconds=1.0, rate=24000, channels=1, freq=220.0, batch=1, amplitude=0.4):
    """An AUDIO dict holding a sine."""
    t = torch.arange(round(seconds * rate)) / rate
    wave = amplitude * torch.sin(2 * math.pi * freq * t)
    return {"waveform": wave.expand(batch, channels, -1).clone(), "sample_rate": rate}


def save_tiny_vocoder(folder, loud=False):
    """A tiny random BigVGAN in the Hugging Face folder layout; `loud`: weights large enough for a
    non-trivial waveform."""
    import transformers
    torch.manual_seed(0)
    model = transformers.Qwen2_5OmniToken2WavBigVGANModel(
        transformers.Qwen2_5OmniBigVGANConfig(upsample_initial_channel=64))
    if loud:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    return folder

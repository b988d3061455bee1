"""Strict loading and the message for every kind of wrong input."""
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save_file

from helpers import REPO
from helpers import random_request
from uniavgen_core.model.config import UniAVGenConfig
from uniavgen_core.checkpoint.loading import CheckpointError, key_shapes, load_model
from uniavgen_core.sampling import SamplingParams, Task, sample


def write(tmp_path, state, name="model.safetensors"):
    path = tmp_path / name
    save_file({k: v.contiguous() for k, v in state.items()}, path)
    return path


def test_single_file_equals_sharded_folder(tiny_state, tiny_model, tmp_path):
    model = load_model(write(tmp_path, tiny_state), dtype=torch.float32)
    req = [random_request(Task.AVG, 7)]
    a, b = sample(model, req, SamplingParams(steps=2)), sample(tiny_model, req, SamplingParams(steps=2))
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)


def test_known_key_prefixes_are_stripped(tiny_state, tmp_path):
    prefixed = {"model.diffusion_model." + k: v for k, v in tiny_state.items()}
    model = load_model(write(tmp_path, prefixed))
    assert model.config.dim == 96


def test_model_is_built_without_a_second_copy(tiny_state, tmp_path):
    model = load_model(write(tmp_path, tiny_state))
    assert all(p.device.type == "cpu" for p in model.parameters())
    assert not any(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("drop, add, reshape, expect", [
    (["blocks.3.ffn.0.weight"], {}, None, r"missing keys \(1\): blocks\.3\.ffn\.0\.weight"),
    ([], {"extra.weight": torch.zeros(3)}, None, r"unexpected keys \(1\): extra\.weight"),
    ([], {}, ("blocks.0.modulation", (1, 6, 95)), r"shape mismatches \(1\): blocks\.0\.modulation: file \[1, 6, 95\]"),
])
def test_strict_report(tiny_state, tmp_path, drop, add, reshape, expect):
    state = {k: v for k, v in tiny_state.items() if k not in drop}
    state.update(add)
    if reshape:
        state[reshape[0]] = torch.zeros(reshape[1])
    with pytest.raises(CheckpointError, match=expect):
        load_model(write(tmp_path, state))


def test_upstream_caption_mlp_names_are_explained(tiny_state, tmp_path):
    state = {k.replace("text_embedding_video.", "text_embedding."): v for k, v in tiny_state.items()}
    with pytest.raises(CheckpointError, match="upstream Wan name of the caption MLP"):
        load_model(write(tmp_path, state))


def test_missing_interaction_blocks_are_reported_not_silently_zeroed(tiny_state, tmp_path):
    state = {k: v for k, v in tiny_state.items() if not k.startswith("v2a_blocks.")}
    with pytest.raises(CheckpointError, match=r"missing keys \(150\): v2a_blocks\.\{0\.\.14\}\.q\.weight"):
        load_model(write(tmp_path, state))


def _wan_like(in_dim, dim=64):
    return {"patch_embedding.weight": torch.zeros(dim, in_dim, 1, 2, 2), "patch_embedding.bias": torch.zeros(dim),
            "blocks.0.self_attn.q.weight": torch.zeros(dim, dim), "text_embedding.0.weight": torch.zeros(dim, 32)}


@pytest.mark.parametrize("state, expect", [
    (_wan_like(48), "plain Wan2.2-TI2V-5B video model"),
    (_wan_like(16), r"Wan2\.1/Wan2\.2-14B video model \(latent channels 16\)"),
    (_wan_like(36), r"latent channels 36"),
    ({"encoder.conv1.weight": torch.zeros(4, 3, 3, 3, 3), "decoder.conv1.weight": torch.zeros(4, 4, 3, 3, 3),
      "conv1.weight": torch.zeros(4, 4, 1, 1, 1)}, "a VAE.*VAELoader"),
    ({"encoder.block.0.layer.0.SelfAttention.q.weight": torch.zeros(4, 4), "shared.weight": torch.zeros(9, 4)},
     "text encoder.*CLIPLoader"),
    ({"token_embedding.weight": torch.zeros(9, 4), "blocks.0.attn.q.weight": torch.zeros(4, 4)}, "text encoder"),
    ({"conv_pre.weight": torch.zeros(4, 80, 7), "ups.0.weight": torch.zeros(4, 4, 4)}, "vocoder"),
])
def test_wrong_models_are_recognised(tmp_path, state, expect):
    with pytest.raises(CheckpointError, match=expect):
        load_model(write(tmp_path, state))


def test_path_problems(tmp_path, golden_dir):
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_model(tmp_path / "nope")
    pickle = tmp_path / "model.pt"
    pickle.write_bytes(b"not even read")
    with pytest.raises(CheckpointError, match="pickle file; UniAVGen only loads .safetensors"):
        load_model(pickle)
    with pytest.raises(CheckpointError, match="found only pickle files: model.pt"):
        load_model(tmp_path)
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_model(broken)


def test_incomplete_download_names_the_missing_shard(golden_dir, tmp_path):
    for f in golden_dir.iterdir():
        if f.name != "diffusion_pytorch_model-00002-of-00002.safetensors":
            shutil.copy(f, tmp_path / f.name)
    with pytest.raises(CheckpointError, match="1 shard.*00002-of-00002.*finish the download"):
        load_model(tmp_path)


PEAK_SCRIPT = """
import resource, sys, torch
from uniavgen_core.checkpoint.loading import load_model
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = load_model(sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024, sum(p.numel() * p.element_size() for p in model.parameters()))
"""


def test_loading_peak_memory_is_about_one_model(tmp_path):
    """A 7B model must not need twice its size in RAM: build on meta, assign tensors read lazily."""
    cfg = UniAVGenConfig(dim=512, ffn_dim=2048, num_heads=4, audio_dim=256, audio_ffn_dim=1024, audio_num_heads=2,
                         text_dim=512, num_layers=16, interaction_layers=tuple(range(0, 16, 2)))
    path = write(tmp_path, {k: torch.ones(s) for k, s in key_shapes(cfg).items()})
    proc = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(path)], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    peak, size = map(int, proc.stdout.split())
    assert size > 200e6
    assert peak < 1.3 * size, f"loading {size / 1e6:.0f} MB raised peak RSS by {peak / 1e6:.0f} MB"


@pytest.mark.parametrize("dtype", [d for d in ("float8_e4m3fn", "float8_e5m2", "float8_e4m3fnuz", "float8_e5m2fnuz")
                                   if hasattr(torch, d)])
def test_every_non_finite_fp8_value_is_refused_and_every_finite_one_taken(dtype):
    """All 256 bit patterns of each fp8 kind: the bit test agrees with what the value is as a float."""
    from uniavgen_core.checkpoint.loading import CheckpointError, check_tensor
    kind = getattr(torch, dtype)
    for bits in range(256):
        tensor = torch.tensor([0, bits], dtype=torch.uint8).view(kind)
        finite = bool(torch.isfinite(tensor.float()).all())
        if finite:
            check_tensor("w", tensor, "f.safetensors")
        else:
            with pytest.raises(CheckpointError, match="NaN or infinite"):
                check_tensor("w", tensor, "f.safetensors")

"""One-file conversion (bf16 / scaled fp8) and loading it back."""
import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from helpers import REPO, rel_l2
from helpers import random_request
from uniavgen_core.checkpoint.convert import convert
from uniavgen_core.model.fp8 import quantise
from uniavgen_core.checkpoint.loading import embedded_vocab, is_scaled_fp8, load_model
from uniavgen_core.sampling import SamplingParams, Task, sample
from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer

PARAMS = SamplingParams(steps=3)


@pytest.fixture(scope="module")
def files(golden_dir, speech_vocab, tmp_path_factory, fp8_checkpoint):
    out = tmp_path_factory.mktemp("converted")
    return {"bf16": convert(golden_dir, out / "uniavgen_bf16.safetensors", "bf16", vocab=speech_vocab),
            "fp8": fp8_checkpoint}


def test_quantise_round_trip():
    w = torch.randn(64, 32)
    q, scale = quantise(w)
    assert q.dtype == torch.float8_e4m3fn and scale.dim() == 0
    assert rel_l2(q.float() * scale, w) < 0.05


def test_bf16_file_is_self_contained_and_identical(files, golden_dir, tiny_model, speech_vocab):
    path = files["bf16"]
    meta = safe_open(path, framework="pt").metadata()
    assert json.loads(meta["uniavgen_config"])["num_heads"] == 3 and meta["uniavgen_format"] == "bf16"
    assert SpeechTokenizer.from_text(embedded_vocab(path)).vocab == SpeechTokenizer.from_file(speech_vocab).vocab
    model = load_model(path, dtype=torch.float32)                      # no config.json next to it
    req = [random_request(Task.RAVG, 9, ref_len=12)]
    a, b = sample(model, req, PARAMS), sample(tiny_model, req, PARAMS)
    assert torch.equal(a.video, b.video) and torch.equal(a.audio, b.audio)


def test_fp8_file_is_smaller_stays_fp8_and_is_close(files, tiny_model):
    path = files["fp8"]
    assert is_scaled_fp8(path) and not is_scaled_fp8(files["bf16"])
    assert path.stat().st_size < 0.8 * files["bf16"].stat().st_size
    model = load_model(path, compute_dtype=torch.float32)
    q = model.blocks[0].self_attn.q
    assert q.weight.dtype == torch.float8_e4m3fn and q.scale_weight.dtype == torch.float32
    assert model.head.head.weight.dtype == torch.bfloat16             # heads are not quantised
    req = [random_request(Task.AVG, 10)]
    fp8, ref = sample(model, req, PARAMS), sample(tiny_model, req, PARAMS)
    err_v, err_a = rel_l2(fp8.video, ref.video), rel_l2(fp8.audio, ref.audio)
    print(f"fp8 vs float32: video {err_v:.4f}, audio {err_a:.4f}")
    assert err_v < 0.05 and err_a < 0.05
    dequantised = load_model(path, dtype=torch.float32)               # asking for a dtype dequantises
    assert dequantised.blocks[0].self_attn.q.weight.dtype == torch.float32
    assert not hasattr(dequantised.blocks[0].self_attn.q, "scale_weight")
    same = sample(dequantised, req, PARAMS)
    assert rel_l2(same.video, fp8.video) < 1e-5


def test_cli_refuses_to_overwrite(files):
    proc = subprocess.run([sys.executable, "-m", "uniavgen_core.convert", str(files["bf16"].parent),
                           str(files["bf16"])], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_converting_a_converted_file_keeps_its_vocabulary(files, tmp_path):
    """A converted file carries its vocabulary; converting it again (no vocab.txt beside it) keeps it."""
    again = convert(files["fp8"], tmp_path / "again_bf16.safetensors", "bf16")
    assert not (files["fp8"].parent / "vocab.txt").exists()
    assert embedded_vocab(again) == embedded_vocab(files["fp8"]) is not None

"""One-file conversion (bf16 / scaled fp8) and loading it back."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open

from helpers import REPO, rel_l2
from helpers import random_request
from uniavgen_core.cli import convert as convert_cli
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
    proc = subprocess.run([sys.executable, "-m", "uniavgen_core.cli.convert", str(files["bf16"].parent),
                           str(files["bf16"])], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "already exists" in proc.stderr


def test_converting_a_converted_file_keeps_its_vocabulary(files, tmp_path):
    """A converted file carries its vocabulary; converting it again (no vocab.txt beside it) keeps it."""
    again = convert(files["fp8"], tmp_path / "again_bf16.safetensors", "bf16")
    assert not (files["fp8"].parent / "vocab.txt").exists()
    assert embedded_vocab(again) == embedded_vocab(files["fp8"]) is not None


# ------------------------------------------------------------------------ checked before the conversion

def cli(capsys, *argv) -> tuple[int, str]:
    code = convert_cli.main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, err


def test_a_dangling_link_as_the_output_is_named_and_never_written_through(golden_dir, tmp_path, capsys):
    target = tmp_path / "elsewhere" / "model.safetensors"
    link = tmp_path / "out.safetensors"
    link.symlink_to(target)
    code, err = cli(capsys, golden_dir, link)
    assert code == 2 and "is a dangling symbolic link (to " in err and "will not write through it" in err
    assert "already exists" not in err and not target.exists() and not target.parent.exists()
    mine = tmp_path / "mine.safetensors"
    mine.write_bytes(b"the user's file")
    link.unlink()
    link.symlink_to(mine)
    code, err = cli(capsys, golden_dir, link)
    assert code == 2 and "already exists" in err and mine.read_bytes() == b"the user's file"


@pytest.mark.parametrize("case", ["no source", "no vocabulary", "no folder", "folder is a file", "not safetensors",
                                  "source not a checkpoint"])
def test_arguments_are_checked_before_the_conversion(golden_dir, tmp_path, capsys, case):
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    src, dst, extra = golden_dir, tmp_path / "out.safetensors", []
    expect = {"no source": "the source", "no vocabulary": "the vocabulary (--vocab)", "no folder": "does not exist",
              "folder is a file": "is a file: give a folder", "not safetensors": "must be a .safetensors file",
              "source not a checkpoint": "is not a .safetensors file"}[case]
    if case == "no source":
        src = tmp_path / "missing"
    elif case == "no vocabulary":
        extra = ["--vocab", tmp_path / "vocab.txt"]
    elif case == "no folder":
        dst = tmp_path / "nowhere" / "out.safetensors"
    elif case == "folder is a file":
        dst = blocker / "out.safetensors"
    elif case == "not safetensors":
        dst = tmp_path / "out.bin"
    else:
        src = blocker
    code, err = cli(capsys, src, dst, *extra)
    assert code == 2 and err.startswith("error: ") and expect in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"] and blocker.read_text() == "mine"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions that apply")
def test_an_unreadable_source_is_named(golden_dir, tmp_path, capsys):
    src = tmp_path / "model.safetensors"
    shutil.copy(next(golden_dir.glob("*.safetensors")), src)
    src.chmod(0)
    try:
        code, err = cli(capsys, src, tmp_path / "out.safetensors")
    finally:
        src.chmod(0o644)
    assert code == 2 and "cannot be read" in err and not (tmp_path / "out.safetensors").exists()

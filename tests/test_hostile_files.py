"""Damaged, foreign and malicious checkpoint files: each is refused with a message, quickly, and nothing
outside the model's folder is opened."""
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import REPO, read_only
from uniavgen_core.checkpoint.convert import ConversionError, convert
from uniavgen_core.checkpoint.loading import INDEX_NAME, CheckpointError, TensorReader, load_model


def sharded_copy(golden_dir, dest):
    dest.mkdir()
    for f in golden_dir.iterdir():
        if f.name.endswith(".safetensors") or f.name in (INDEX_NAME, "config.json"):
            shutil.copy(f, dest / f.name)
    return dest


@pytest.mark.parametrize("shard", ["../outside.safetensors", "/tmp/outside.safetensors",
                                   "sub/../../outside.safetensors", "C:\\outside.safetensors",
                                   "..\\outside.safetensors", "model.bin", "a\x00.safetensors"])
def test_index_cannot_point_outside_the_folder(golden_dir, tmp_path, shard):
    model = sharded_copy(golden_dir, tmp_path / "model")
    save_file({"x": torch.zeros(1)}, tmp_path / "outside.safetensors")      # a real file the index aims at
    index = json.loads((model / INDEX_NAME).read_text())
    first = next(iter(index["weight_map"]))
    index["weight_map"][first] = shard
    (model / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="shards must be .safetensors files inside"):
        load_model(model)


@pytest.mark.parametrize("index", [[], {"weight_map": ["a.safetensors"]}, {"weight_map": {"k": 3}}, {"weight_map": {}},
                                   {"no_map": 1}, "text"])
def test_malformed_index_is_refused(golden_dir, tmp_path, index):
    model = sharded_copy(golden_dir, tmp_path / "model")
    (model / INDEX_NAME).write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="not a valid index"):
        load_model(model)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes on this system")
def test_a_pipe_is_not_read(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="neither a regular file nor a folder"):
        load_model(fifo)


@pytest.mark.parametrize("key", ["blocks.100000000.ffn.0.weight", "audio_blocks.300.ffn.0.weight",
                                 "a2v_blocks.999999.o.weight", "blocks.40.norm3.weight"])
def test_block_indices_far_past_the_model_are_refused_at_once(tiny_state, tmp_path, key):
    state = dict(tiny_state)
    state[key] = torch.zeros(4)
    path = tmp_path / "model.safetensors"
    save_file(state, path)
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match="blocks"):
        load_model(path)
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize("field, value", [("num_heads", "3"), ("num_heads", 0), ("num_heads", True), ("eps", "x"),
                                          ("text_len", -5), ("window_size", "global")])
def test_config_json_with_wrong_types_is_named(golden_dir, tmp_path, field, value):
    model = sharded_copy(golden_dir, tmp_path / "model")
    config = json.loads((model / "config.json").read_text()) if (model / "config.json").is_file() else {}
    config[field] = value
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=field):
        load_model(model)


@pytest.mark.parametrize("which", [0, 7, -1])
@pytest.mark.parametrize("bad", ["nan", "inf", "int"])
def test_non_finite_or_integer_weights_are_refused(tiny_state, tmp_path, which, bad):
    state = dict(tiny_state)
    key = sorted(k for k, v in state.items() if v.is_floating_point())[which]
    tensor = state[key].clone()
    if bad == "int":
        tensor = tensor.to(torch.int32)
    else:
        tensor.view(-1)[tensor.numel() // 2] = float(bad)
    state[key] = tensor
    path = tmp_path / "model.safetensors"
    save_file(state, path)
    expect = "NaN or infinite" if bad != "int" else "int32 values"
    for dtype in (None, torch.float32):
        with pytest.raises(CheckpointError, match=f"{key}.*{expect}"):
            load_model(path, dtype=dtype)


# ------------------------------------------------------------------------------------------------ converter

def folder_state(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


@pytest.fixture
def source(tiny_state, tmp_path):
    path = tmp_path / "src" / "model.safetensors"
    path.parent.mkdir()
    save_file(tiny_state, path)
    return path


def test_conversion_leaves_every_other_file_alone(source, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("tiny.safetensors.partial", ".tiny.abc.converting", "tiny.safetensors.tmp", "notes.txt"):
        (out / name).write_bytes(b"the user's own file " + name.encode())
    before = folder_state(out)
    convert(source, out / "tiny.safetensors", "bf16")
    after = folder_state(out)
    assert set(after) == set(before) | {"tiny.safetensors"}
    assert all(after[name] == data for name, data in before.items())


def test_a_file_that_appears_at_the_destination_is_never_replaced(source, tmp_path, monkeypatch):
    """Another conversion (or anything else) creates OUT while this one runs: it is kept, this one fails."""
    dst = tmp_path / "race.safetensors"
    real_get = TensorReader.get

    def get_and_race(self, name):
        if not dst.exists():
            dst.write_bytes(b"someone else's file")
        return real_get(self, name)
    monkeypatch.setattr(TensorReader, "get", get_and_race)
    with pytest.raises(FileExistsError, match="left alone"):
        convert(source, dst, "fp8")
    assert dst.read_bytes() == b"someone else's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["race.safetensors", "src"]      # no temporary left


@pytest.mark.parametrize("damage", ["nan", "int", "missing", "extra", "foreign"])
def test_converter_refuses_what_the_loader_refuses(tiny_state, tmp_path, damage):
    state = dict(tiny_state)
    key = sorted(state)[3]
    if damage == "nan":
        state[key] = state[key].clone().fill_(float("nan"))
    elif damage == "int":
        state[key] = state[key].to(torch.int64)
    elif damage == "missing":
        del state[key]
    elif damage == "extra":
        state["blocks.0.surprise.weight"] = torch.zeros(2)
    else:
        state = {"encoder.layer.0.weight": torch.zeros(2, 2), "classifier.bias": torch.zeros(2)}
    src = tmp_path / "bad.safetensors"
    save_file(state, src)
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(CheckpointError):
        convert(src, out / "x.safetensors", "fp8")
    assert not list(out.iterdir())


def test_fp8_converted_again_is_the_same_model(fp8_checkpoint, tmp_path):
    again = convert(fp8_checkpoint, tmp_path / "again.safetensors", "fp8")
    a, b = load_file(fp8_checkpoint), load_file(again)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k].view(torch.uint8) if a[k].dtype.itemsize == 1 else a[k],
                           b[k].view(torch.uint8) if b[k].dtype.itemsize == 1 else b[k]) for k in a)
    load_model(again)


def test_a_vocabulary_that_is_not_there_is_an_error(source, tmp_path):
    with pytest.raises(ConversionError, match="does not exist"):
        convert(source, tmp_path / "x.safetensors", "bf16", vocab=tmp_path / "nope.txt")
    assert not (tmp_path / "x.safetensors").exists()


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="needs file permissions that apply")
def test_read_only_destination_is_a_message(source, tmp_path):
    with read_only(tmp_path / "locked") as locked:
        proc = subprocess.run([sys.executable, "-m", "uniavgen_core.cli.convert", str(source),
                               str(locked / "x.safetensors")], cwd=REPO, capture_output=True, text=True)
    assert proc.returncode == 2 and "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_a_full_disk_is_a_message_and_leaves_nothing(source, tmp_path, monkeypatch, capsys):
    from uniavgen_core.cli import convert as command_line
    from uniavgen_core.checkpoint import convert as convert_module
    monkeypatch.setattr(convert_module.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 9, 1))
    with pytest.raises(ConversionError, match="free some space"):
        convert(source, tmp_path / "x.safetensors", "bf16")
    monkeypatch.undo()

    def full(self, name):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(TensorReader, "get", full)
    assert command_line.main([str(source), str(tmp_path / "y.safetensors")]) == 2
    assert "cannot write" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


# ------------------------------------------------------------------------------------------------ vocoder

@pytest.mark.parametrize("damage", ["half_missing", "one_missing", "nan", "extra", "truncated"])
def test_vocoder_loads_strictly(tmp_path, damage):
    pytest.importorskip("transformers")
    from helpers import save_tiny_vocoder
    from uniavgen_core.audio.vocoder import Vocoder, VocoderError
    folder = tmp_path / "code2wav_bigvgan_model"
    save_tiny_vocoder(folder)
    weights = folder / "model.safetensors"
    state = load_file(weights)
    keys = sorted(state)
    if damage == "half_missing":
        state = {k: v for i, (k, v) in enumerate(sorted(state.items())) if i % 2}
    elif damage == "one_missing":
        del state[keys[len(keys) // 2]]
    elif damage == "nan":
        state[keys[3]] = state[keys[3]].clone().fill_(float("nan"))
    elif damage == "extra":
        state["surprise.weight"] = torch.zeros(3)
    if damage == "truncated":
        weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    else:
        save_file(state, weights, metadata={"format": "pt"})
    expect = {"nan": "NaN or infinite", "truncated": "damaged or incomplete"}.get(damage, "does not match")
    with pytest.raises(VocoderError, match=expect):
        Vocoder.from_folder(folder)


@pytest.mark.parametrize("stored", ["[]", "3", "null", '"text"', "{", '{"dim": "wide"}', '{"num_layers": 100000}'])
def test_invalid_embedded_configuration_is_named(tiny_state, tmp_path, stored):
    path = tmp_path / "model.safetensors"
    save_file(tiny_state, path, metadata={"uniavgen_config": stored})
    with pytest.raises(CheckpointError, match="configuration stored in the file is invalid"):
        load_model(path)

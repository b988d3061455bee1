"""Property-based checks of the front ends and the loader (hypothesis, bounded to well under 2 minutes).

The invariant everywhere: an input ends in a valid result, or in an error the pack raises with a message
(an exception raised from the pack's own code) - never a raw exception from torch, safetensors or the OS,
never a non-finite output, never a long stall."""
import dataclasses
import json
import math
import re
import struct
import traceback
from collections.abc import Mapping
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

from helpers import REPO, TINY_RUN, bad_values
from uniavgen_core.frontend import image_prep
from uniavgen_core import units
from uniavgen_core.audio.inputs import to_mono_24k
from uniavgen_core.checkpoint.loading import checkpoint_files, load_model
from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer
from uniavgen_core.model.fields import RULE, Rule
from uniavgen_core.training.trainer import SECTIONS, TrainConfig

PACK = (str(REPO / "uniavgen_core"), str(REPO / "nodes"))
FAST = settings(max_examples=60, deadline=3000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                          HealthCheck.too_slow])


def assert_pack_error(err: BaseException):
    """The error was raised by the pack's own code (the innermost frame is ours) and says something."""
    frames = traceback.extract_tb(err.__traceback__)
    assert isinstance(err, (ValueError, FloatingPointError)), f"raw {type(err).__name__}: {err}"
    assert frames and frames[-1].filename.startswith(PACK), f"raised outside the pack at {frames[-1].filename}: {err}"
    assert len(str(err)) > 15


def test_the_classifier_tells_raw_errors_from_the_packs():
    with pytest.raises(AssertionError, match="raw RuntimeError"):
        outcome(lambda: torch.zeros(2) @ torch.zeros(3))
    with pytest.raises(AssertionError, match="raised outside the pack"):
        outcome(int, "not a number")
    assert outcome(units.Duration.from_seconds, float("nan")) is None


def outcome(fn, *args, **kwargs):
    try:
        return fn(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 - the point is to classify every exception
        assert_pack_error(err)
        return None


SPECIAL = st.sampled_from([float("nan"), float("inf"), -float("inf"), 0.0, 1e-40, -1e38, 1e38])
RATES = st.one_of(st.integers(-10, 1_000_000), st.sampled_from([float("nan"), float("inf"), 24000.5, 44100.0]))


@FAST
@given(rate=RATES, channels=st.integers(1, 3), samples=st.integers(0, 4000), batch=st.integers(1, 2),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.float16, torch.int16]),
       poison=st.one_of(st.none(), SPECIAL), layout=st.sampled_from(["bct", "ct", "t", "btc"]))
def test_audio_input(rate, channels, samples, batch, dtype, poison, layout):
    wave = torch.linspace(-0.5, 0.5, batch * channels * samples).reshape(batch, channels, samples)
    if poison is not None and samples:
        wave[0, 0, samples // 2] = poison
    wave = wave.to(dtype)
    wave = {"bct": wave, "ct": wave[0], "t": wave[0, 0], "btc": wave.transpose(1, 2)}[layout]
    result = outcome(to_mono_24k, {"waveform": wave, "sample_rate": rate}, "driving audio")
    if result is not None:
        mono, _ = result
        assert mono.dim() == 1 and mono.numel() > 0 and torch.isfinite(mono).all()


@FAST
@given(seconds=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 10 ** 6)))
def test_durations(seconds):
    d = outcome(units.Duration.from_seconds, seconds)
    if d is not None:
        assert 5 <= d.video_frames <= units.MAX_SECONDS * units.FPS + 1 and (d.video_frames - 1) % 4 == 0
        assert d.latent_frames == units.latent_frames(d.video_frames)


@pytest.fixture(scope="module")
def tokenizer(vocab_path):
    return SpeechTokenizer.from_file(vocab_path)


@FAST
@given(text=st.one_of(st.text(max_size=60),
                      st.lists(st.sampled_from(["你", "好", "世界", "\ud800", "\udfff", "a", " ", "。", "\x00", "é"]),
                               max_size=12).map("".join)),
       ref=st.one_of(st.none(), st.text(max_size=20)), lang=st.sampled_from(["auto", "en", "zh", "fr", ""]))
def test_tokenizer(tokenizer, text, ref, lang):
    tokens = outcome(tokenizer.encode, text, lang, ref)
    if tokens is not None:
        assert all(0 <= i < len(tokenizer) for i in tokens.ids)


@FAST
@given(height=st.integers(-2, 100_000), width=st.integers(-2, 100_000), short=st.integers(-64, 4096),
       official=st.booleans())
def test_picture_sizes(height, width, short, official):
    def prepare():
        size = image_prep.official_size(height, width) if official else image_prep.short_side_size(height, width,
                                                                                                     short)
        image_prep.check_picture(height, width, *size)
        return size
    size = outcome(prepare)
    if size is not None:
        assert all(s % 32 == 0 and 32 <= s for s in size)
        assert size[0] * size[1] <= 4096 * 4096 * 4 or not official


# ------------------------------------------------------------------------------------------------ loader

@pytest.fixture(scope="module")
def tiny_file(golden_dir, tmp_path_factory):
    from safetensors.torch import load_file
    state = {}
    for f in checkpoint_files(golden_dir)[0]:
        state.update(load_file(f))
    path = tmp_path_factory.mktemp("tiny") / "tiny.safetensors"
    save_file(state, path)
    return path


def split_file(path: Path):
    raw = path.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    return json.loads(raw[8:8 + n]), raw[8 + n:]


DTYPES = ["F32", "F16", "BF16", "F64", "I64", "I32", "I8", "U8", "BOOL", "F8_E4M3", "F8_E5M2", "XX", 7]
MUTATIONS = st.lists(st.tuples(st.sampled_from(["dtype", "shape", "offsets", "rename", "drop", "metadata", "index"]),
                               st.integers(0, 10 ** 6), st.text(max_size=12)), min_size=1, max_size=3)


def mutated_copy(source: Path, mutations, target: Path, flips=()) -> Path:
    """`source` with its header mutated (kind, n, text) and bytes of its data overwritten (where, byte)."""
    header, data = split_file(source)
    keys = sorted(k for k in header if k != "__metadata__")
    for kind, n, text in mutations if keys else ():
        key = keys[n % len(keys)]
        entry = header.get(key)
        if entry is None:
            continue
        if kind == "dtype":
            entry["dtype"] = DTYPES[n % len(DTYPES)]
        elif kind == "shape":
            entry["shape"] = [n % 7, 10 ** (n % 12)][: 1 + n % 2]
        elif kind == "offsets":
            entry["data_offsets"] = [n, n + (n % 4096)]
        elif kind == "rename":
            header[text or "x"] = header.pop(key)
        elif kind == "drop":
            header.pop(key)
        elif kind == "metadata":
            header["__metadata__"] = {"uniavgen_config": text, "uniavgen_trained_frames": text}
        elif kind == "index":
            header[f"blocks.{n}.ffn.0.weight"] = dict(entry)
    data = bytearray(data)
    for where, byte in flips:
        if data:
            data[where % len(data)] = byte
    raw = json.dumps(header).encode()
    target.write_bytes(struct.pack("<Q", len(raw)) + raw + bytes(data))
    return target


@settings(max_examples=40, deadline=10_000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(mutations=MUTATIONS)
def test_loader_on_mutated_headers(tiny_file, tmp_path_factory, mutations):
    path = mutated_copy(tiny_file, mutations, tmp_path_factory.mktemp("mut") / "model.safetensors")
    model = outcome(load_model, path)
    if model is not None:
        assert all(torch.isfinite(p).all() for p in model.parameters() if p.is_floating_point())


# ------------------------------------------------------------------------------------------------ LoRA files

# Entries that come together in LoRA files (applied kinds, kinds not applied, non-LoRA keys), per layer
LORA_GROUPS = [(".lora_A.weight", ".lora_B.weight"), (".lora_A.default.weight", ".lora_B.default.weight"),
               (".lora_down.weight", ".lora_up.weight", ".alpha"), (".lora_A.weight", ".lora_B.weight", ".dora_scale"),
               (".diff",), (".diff", ".diff_b"), (".diff_b",), (".alpha",),
               (".lora_down.weight", ".lora_up.weight", ".lora_mid.weight"),
               (".lora_A.weight", ".lora_B.weight", ".reshape_weight"), (".hada_w1_a", ".hada_w1_b"), (".lokr_w1",),
               (".oft_blocks",), (".w_norm", ".b_norm"), (".set_weight",), ("_lora.up.weight",), (".weight",), ("",)]
LORA_PREFIXES = ["", "diffusion_model.", "transformer.", "lora_unet_", "lora_te1_", "base_model.model.", "junk/"]
LORA_BUNDLES = st.lists(st.tuples(st.integers(0, 10 ** 4), st.sampled_from(LORA_PREFIXES), st.sampled_from(LORA_GROUPS),
                                  st.integers(1, 6), st.sampled_from([torch.float16, torch.bfloat16, torch.float32]),
                                  st.sampled_from([1e-3, 0.1, 0.1, 10.0, 1e4])), min_size=1, max_size=6)
# one entry of the file damaged: (which, how, a shape for "shape")
LORA_DAMAGE = st.one_of(st.none(), st.tuples(st.integers(0, 100), st.sampled_from(
    ["nan", "inf", "big", "shape", "transposed", "rank", "int8", "bool", "uint8", "float64", "drop"]),
    st.lists(st.integers(0, 7), max_size=3)))
HANDED = {".lora_A.weight", ".lora_B.weight", ".alpha", ".dora_scale", ".diff", ".diff_b"}


def lora_tensor(suffix, layer, rank, dtype, scale, seed):
    """A tensor of the shape `suffix` has on `layer` (any small shape for kinds not applied)."""
    out_f, in_f = layer.out_features, layer.in_features
    role = "down" if suffix.startswith((".lora_A", ".lora_down")) else \
        "up" if suffix.startswith((".lora_B", ".lora_up", "_lora.up")) else suffix
    shape = {"down": (rank, in_f), "up": (out_f, rank), ".dora_scale": ((out_f, 1), (1, in_f))[rank % 2],
             ".diff": (out_f, in_f), ".diff_b": (out_f,), ".lora_mid.weight": (rank, rank, 1, 1),
             ".reshape_weight": (2,)}.get(role, (rank, 3))
    if suffix == ".alpha":
        return torch.tensor(float(rank) * scale).to(dtype)
    return (torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * scale).to(dtype)


def damaged(t: torch.Tensor, damage: str, shape: list[int], rank: int) -> torch.Tensor:
    if damage in ("nan", "inf", "big") and t.numel():
        t = t.clone()
        t.view(-1)[t.numel() // 2] = {"nan": float("nan"), "inf": -float("inf"), "big": 1e30}[damage]
    elif damage == "shape":
        t = torch.ones(shape, dtype=t.dtype)
    elif damage == "transposed":
        t = t.reshape(tuple(reversed(t.shape))).contiguous()
    elif damage == "rank" and t.dim() == 2:
        t = torch.ones(t.shape[0] + (t.shape[0] == rank), t.shape[1] + (t.shape[1] == rank), dtype=t.dtype)
    elif damage in ("int8", "bool", "uint8", "float64"):
        t = t.to(getattr(torch, damage))
    return t


class CountingReads(Mapping):
    """A LoRA mapping that adds up the bytes of the tensors read through it."""

    def __init__(self, inner):
        self.inner, self.bytes = inner, 0

    def __getitem__(self, key):
        t = self.inner[key]
        self.bytes += t.numel() * t.element_size()
        return t

    def __iter__(self):
        return iter(self.inner)

    def __len__(self):
        return len(self.inner)


def assert_checked(report, layers):
    """Every entry handed on belongs to a patched layer, under ComfyUI's names, floating point, finite, of its shape."""
    for key, t in report.entries.items():
        target, suffix = next((key[: -len(s)], s) for s in HANDED if key.endswith(s))
        assert target in report.targets.values()
        layer = layers[target]
        assert t.is_floating_point() and bool(torch.isfinite(t.float()).all()), key
        rank = report.entries.get(f"{target}.lora_A.weight", torch.zeros(1, 1)).shape[0]
        assert tuple(t.shape) in {".lora_A.weight": [(rank, layer.in_features)],
                                  ".lora_B.weight": [(layer.out_features, rank)], ".alpha": [()],
                                  ".dora_scale": [(layer.out_features, 1), (1, layer.in_features)],
                                  ".diff": [(layer.out_features, layer.in_features)],
                                  ".diff_b": [(layer.out_features,)]}[suffix], key
        assert rank >= 1 and (suffix != ".diff_b" or layer.bias)


@pytest.fixture(scope="module")
def lora_layers(tiny_model):
    from uniavgen_core.lora import linear_layers
    return linear_layers(tiny_model)


@settings(max_examples=60, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(bundles=LORA_BUNDLES, damage=LORA_DAMAGE, strength=st.sampled_from([0.0, 1.0, 1.0, -4.0, 0.35, 1e8]),
       mutations=st.tuples(st.integers(0, 3), MUTATIONS).map(lambda m: m[1] if m[0] == 3 else []),  # 1 in 4
       flips=st.one_of(st.just([]), st.lists(st.tuples(st.integers(0, 10 ** 6), st.integers(0, 255)), max_size=3)))
def test_lora_files(lora_layers, tmp_path_factory, bundles, damage, strength, mutations, flips):
    from uniavgen_core.lora import inspect, open_lora
    names = sorted(lora_layers)
    lora, ranks = {}, {}
    for n, prefix, group, rank, dtype, scale in bundles:
        target = names[n % len(names)]
        name = prefix + (target.replace(".", "_") if prefix == "lora_unet_" else target)
        for i, suffix in enumerate(group):
            lora[name + suffix] = lora_tensor(suffix, lora_layers[target], rank, dtype, scale, seed=n + i)
            ranks[name + suffix] = rank
    if damage is not None:
        which, how, shape = damage
        key = sorted(lora)[which % len(lora)]
        if how == "drop":           # half a pair, a companion without its pair, or nothing left
            del lora[key]
        else:
            lora[key] = damaged(lora[key], how, shape, ranks[key])
    folder = tmp_path_factory.mktemp("lora")
    save_file(lora, folder / "clean.safetensors")
    path = mutated_copy(folder / "clean.safetensors", mutations, folder / "fuzz.safetensors", flips)

    def check():
        with open_lora(path, "fuzz.safetensors") as entries:
            reads = CountingReads(entries)
            report = inspect(reads, lora_layers, "fuzz.safetensors", strength)
        assert reads.bytes <= path.stat().st_size             # nothing beyond what the file holds is read
        return report
    report = outcome(check)
    if report is not None:
        assert report.targets and report.entries
        assert_checked(report, lora_layers)
        assert "layers patched" in report.summary()


@FAST
@given(samples=st.integers(0, 6000), batch=st.sampled_from([None, 1, 2]), poison=st.one_of(st.none(), SPECIAL),
       scale=st.sampled_from([0.0, 1e-30, 1.0, 1e6]))
def test_mel_front_end(samples, batch, poison, scale):
    from uniavgen_core.audio.mel import log_mel
    from uniavgen_core.units import HOP
    wave = torch.sin(torch.arange(samples) * 0.07) * scale
    if poison is not None and samples:
        wave[samples // 3] = poison
    if batch:
        wave = wave.expand(batch, -1)
    mel = outcome(log_mel, wave)
    if mel is not None:
        assert mel.shape[-2:] == (80, samples // HOP) and torch.isfinite(mel).all()


@FAST
@given(values=st.fixed_dictionaries({k: st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                                   st.integers(-3, 10 ** 6), st.text(max_size=3), st.none())
                                     for k in ("shift", "video_cfg", "audio_cfg", "macfg_fraction", "steps")}))
def test_sampling_settings(values):
    from uniavgen_core.sampling import SamplingParams
    from uniavgen_core.sampling.params import MAX_GUIDANCE, SHIFT_RANGE
    from uniavgen_core.sampling.schedule import timesteps
    params = outcome(SamplingParams, **values)
    if params is not None:
        assert all(math.isfinite(getattr(params, k)) for k in ("shift", "video_cfg", "audio_cfg", "macfg_fraction"))
        assert 1 <= params.steps <= 1000 and SHIFT_RANGE[0] <= params.shift <= SHIFT_RANGE[1]
        assert max(abs(params.video_cfg), abs(params.audio_cfg)) <= MAX_GUIDANCE
        for dtype in (torch.float32, torch.bfloat16):        # an accepted shift gives a usable schedule
            t = timesteps(params.steps, params.shift, dtype).float()
            assert bool(torch.isfinite(t).all()) and bool((t[1:] <= t[:-1]).all()) and t[0] == 1000 and t[-1] == 0


INDEX_VALUES = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=30)),
                            lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                    st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                            max_leaves=8)


SHARD_NAMES = st.one_of(st.text(max_size=40), st.sampled_from([
    "../outside.safetensors", "./../outside.safetensors", "sub/../../outside.safetensors", "..\\outside.safetensors",
    "diffusion_pytorch_model-00001-of-00002.safetensors", "diffusion_pytorch_model-00002-of-00002.safetensors"]),
    st.builds(lambda p: str(p), st.just(Path("/tmp/outside.safetensors"))))


@settings(max_examples=40, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(weight_map=st.one_of(INDEX_VALUES, st.dictionaries(st.text(max_size=20), SHARD_NAMES, max_size=4)),
       wrap=st.booleans())
def test_loader_on_mutated_index_files(golden_dir, tmp_path_factory, weight_map, wrap):
    from uniavgen_core.checkpoint.loading import INDEX_NAME
    folder = tmp_path_factory.mktemp("index")
    for f in golden_dir.iterdir():
        if f.name.startswith("diffusion_pytorch_model") and f.suffix == ".safetensors":
            (folder / f.name).symlink_to(f)
    (folder / INDEX_NAME).write_text(json.dumps({"weight_map": weight_map} if wrap else weight_map))
    outside = folder.parent / "outside.safetensors"
    save_file({"x": torch.zeros(1)}, outside)
    opened = []
    import safetensors
    real_open = safetensors.safe_open

    def spy(path, *args, **kwargs):
        opened.append(Path(path))
        return real_open(path, *args, **kwargs)
    import uniavgen_core.checkpoint.loading as loading
    loading.safe_open, original = spy, loading.safe_open
    try:
        outcome(load_model, folder)
    finally:
        loading.safe_open = original
    assert all(p.parent == folder for p in opened), opened          # nothing outside the model's folder


def _snapshot(root: Path) -> dict:
    """Every entry under root, links not followed: what a link points at, a file's bytes, a folder."""
    out = {}
    for path in sorted(root.rglob("*")):
        out[str(path.relative_to(root))] = (("link", str(path.readlink())) if path.is_symlink() else
                                            ("file", path.read_bytes()) if path.is_file() else ("other",))
    return out


EXAMPLE_NAMES = sorted(p.name for p in (REPO / "example_inputs").iterdir() if p.is_file())
ENTRY_STATES = st.sampled_from(["absent", "user's file", "dangling link", "link to a file outside",
                                "link to a folder outside", "folder", "link to itself"])
FOLDER_STATES = st.sampled_from(["folder", "missing", "a file", "dangling link", "link to a folder", "under a file",
                                 "refuses writes", "disk full"])


@settings(max_examples=50, deadline=5000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(folder=FOLDER_STATES, entries=st.fixed_dictionaries({n: ENTRY_STATES for n in EXAMPLE_NAMES}))
def test_example_copy_in_any_state_of_the_input_folder(tmp_path_factory, folder, entries):
    """Whatever ComfyUI's input folder holds, the copy never raises (the pack must load), never changes
    anything outside the folder or anything already in it, writes only new plain files with the example's
    bytes (no partial file when a write fails), and says at most once what it could not copy."""
    import logging
    import os
    from unittest import mock

    from nodes import examples
    root = tmp_path_factory.mktemp("input_state")
    outside, inputs = root / "outside", root / "comfy" / "input"
    (outside / "folder").mkdir(parents=True)
    (outside / "mine.wav").write_bytes(b"the user's own file")
    inputs.parent.mkdir()
    if folder in ("folder", "refuses writes", "disk full"):
        inputs.mkdir()
    elif folder == "a file":
        inputs.write_bytes(b"not a folder")
    elif folder == "dangling link":
        inputs.symlink_to(outside / "gone")
    elif folder == "link to a folder":
        (outside / "real_input").mkdir()
        inputs.symlink_to(outside / "real_input", target_is_directory=True)
    elif folder == "under a file":
        inputs.parent.rmdir()
        inputs.parent.write_bytes(b"a file where ComfyUI's folder should be")
    if inputs.is_dir():
        for name, state in entries.items():
            target = inputs / name
            if state == "user's file":
                target.write_bytes(b"the user's " + name.encode())
            elif state == "dangling link":
                target.symlink_to(outside / f"planted_{name}")
            elif state == "link to a file outside":
                target.symlink_to(outside / "mine.wav")
            elif state == "link to a folder outside":
                target.symlink_to(outside / "folder", target_is_directory=True)
            elif state == "folder":
                target.mkdir()
            elif state == "link to itself":
                target.symlink_to(target)
    real_input = inputs.resolve() if inputs.is_dir() else None
    before_outside = _snapshot(outside)
    before_inputs = _snapshot(real_input) if real_input else None

    real_open, real_fdopen = os.open, os.fdopen

    def refusing_open(path, *args, **kwargs):
        if folder == "refuses writes" and Path(path).parent == inputs:
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *args, **kwargs)

    class FullDisk:
        def __init__(self, fd, *args, **kwargs):
            self.file = real_fdopen(fd, *args, **kwargs)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.file.close()

        def write(self, data):
            self.file.write(data[: len(data) // 2])
            raise OSError(28, "No space left on device")

    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger = logging.getLogger("UniAVGen")
    logger.addHandler(handler)
    fake_paths = mock.Mock(get_input_directory=lambda: str(inputs))
    try:
        with mock.patch.object(examples.host, "folder_paths", lambda: fake_paths), \
                mock.patch.object(examples.os, "open", refusing_open), \
                mock.patch.object(examples.os, "fdopen", FullDisk if folder == "disk full" else real_fdopen):
            copied = examples.install()
    finally:
        logger.removeHandler(handler)

    after_outside = _snapshot(outside)
    assert {k: v for k, v in after_outside.items() if not k.startswith("real_input")} == \
        {k: v for k, v in before_outside.items() if not k.startswith("real_input")}
    for path in copied:
        assert path.parent == inputs and path.is_file() and not path.is_symlink()
        assert path.read_bytes() == (examples.EXAMPLES / path.name).read_bytes()
    if real_input:
        after_inputs = _snapshot(real_input)
        for name, entry in before_inputs.items():           # nothing that was there changed
            assert after_inputs[name] == entry, name
        assert set(after_inputs) - set(before_inputs) == {p.name for p in copied}   # no partial files
    holds = folder in ("folder", "missing", "link to a folder", "refuses writes", "disk full")
    present = entries if inputs.is_dir() and folder != "missing" else {}
    absent = {n for n in EXAMPLE_NAMES if present.get(n, "absent") == "absent"} if holds else set()
    faulty = folder in ("refuses writes", "disk full")
    assert {p.name for p in copied} == (set() if faulty else absent)
    broken = any(s in ("dangling link", "link to itself") for s in present.values())
    warnings = [r for r in records if "not copied" in r.getMessage()]
    assert len(warnings) == (not holds or broken or (faulty and bool(absent)))


# ------------------------------------------------------------------------------------ training configurations

TRAIN_SECTIONS = {None: TrainConfig, **SECTIONS}
TYPES = {"int": int, "float": float, "str": str, "bool": bool, "tuple": tuple, "dict": dict}


def own_fields(kind) -> list:
    return [f for f in dataclasses.fields(kind) if f.name not in TRAIN_SECTIONS]


def in_range_values(f):
    """Values of the right type inside the declared range: each valid alone, though some break a rule between
    fields (a head count that does not divide the width)."""
    rule = f.metadata.get(RULE, Rule())
    if f.type == "int":
        return st.integers(int(rule.low) if rule.low is not None else -2 ** 40,
                           int(rule.high) if rule.high is not None else 2 ** 40)
    if f.type == "float":
        return st.floats(rule.low if rule.low is not None else -1e9, rule.high if rule.high is not None else 1e9,
                         exclude_min=rule.above, exclude_max=rule.below, allow_nan=False)
    return None


def conforms(value, f) -> bool:
    """The value has the field's type and lies in its declared range (checked here, not by the pack's code)."""
    rule = f.metadata.get(RULE, Rule())
    if type(value) is not TYPES[f.type]:
        return False
    if f.type == "bool":
        return True
    if f.type == "str":
        return (not rule.choices or value in rule.choices) and bool(rule.pattern is None
                                                                    or re.fullmatch(rule.pattern, value))
    items = list(value.values() if f.type == "dict" else value if f.type == "tuple" else [value])
    if f.type in ("tuple", "dict") and any(type(v) is not TYPES[rule.item] for v in items):
        return False
    if f.type == "dict" and rule.choices and not set(value) <= set(rule.choices):
        return False
    for v in items:
        if not math.isfinite(v) or (rule.low is not None and (v <= rule.low if rule.above else v < rule.low)):
            return False
        if rule.high is not None and (v >= rule.high if rule.below else v > rule.high):
            return False
    return True


@st.composite
def train_configs(draw):
    """A raw training config: the tiny run with some fields of every section given a bad value (wrong type,
    out of range, NaN), an in-range value or left alone, now and then an unknown key or a section that is not a
    table. Returns (raw, bad fields, in-range fields, what else is wrong)."""
    raw, bad, ranged_, wrong = {}, set(), set(), set()
    kinds = ["in range", "alone"] + (["bad"] if draw(st.booleans()) else [])      # half the configs have no bad value
    for section, kind in TRAIN_SECTIONS.items():
        top = {k: v for k, v in TINY_RUN.items() if not isinstance(v, dict)}
        table = dict(TINY_RUN.get(section, {})) if section else top
        for f in draw(st.lists(st.sampled_from(own_fields(kind)), unique_by=lambda f: f.name, max_size=4)):
            how = draw(st.sampled_from(kinds))
            if how == "bad":
                table[f.name] = draw(st.sampled_from(bad_values(f)))
                bad.add(f.name)
            elif how == "in range" and in_range_values(f) is not None:
                table[f.name] = draw(in_range_values(f))
                ranged_.add(f.name)
        if "bad" in kinds and draw(st.integers(0, 11)) == 0:
            table["no_such_key"] = 1
            wrong.add("no_such_key")
        if section is None:
            raw.update(table)
        elif "bad" in kinds and draw(st.integers(0, 19)) == 0:
            raw[section] = draw(st.sampled_from([5, "a table", [1, 2], None]))
            wrong.add(f"[{section}] must be a table")
        else:
            raw[section] = table
    return raw, bad, ranged_, wrong


@settings(max_examples=80, deadline=3000, suppress_health_check=[HealthCheck.too_slow])
@given(case=train_configs())
def test_training_configurations(case):
    """TrainConfig.from_dict returns a config whose every field has its type and range, or raises a ValueError
    naming the field (or the unknown key, or the section that is not a table): never another exception."""
    raw, bad, ranged_, wrong = case
    try:
        cfg = TrainConfig.from_dict(raw)
    except ValueError as err:
        message = str(err)
        assert bad or ranged_ or wrong, f"the tiny run was refused: {message}"
        assert (any(f"{name} = " in message for name in bad) or any(w in message for w in wrong)
                or any(name in message for name in ranged_)), message
        return
    assert not bad and not wrong, (bad, wrong)
    for section, kind in TRAIN_SECTIONS.items():
        part = cfg if section is None else getattr(cfg, section)
        for f in own_fields(kind):
            assert conforms(getattr(part, f.name), f), (section, f.name, getattr(part, f.name))

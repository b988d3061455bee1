"""The golden runner against vectors produced by the official code (tolerances and the runner contract:
docs/DEVELOPMENT.md). The tokenizer cases need the release's vocab.txt, which the repository does not ship:
without it they skip and the model and mel cases still run."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

from helpers import NO_VOCAB, REPO, rel_l2, release_vocab
from uniavgen_core.golden import MKL_COMPATIBLE, case_inputs, case_request
from uniavgen_core.sampling import seeded_noise

FWD_TOL, OUT_TOL = 1e-4, 1e-3


@pytest.fixture(scope="module")
def runner(golden_dir, tmp_path_factory):
    """Run the CLI on a copy of the golden folder that holds the inputs only, so that the
    runner provably computes everything itself. Returns (output folder, stdout)."""
    vocab = release_vocab()
    inputs_only = tmp_path_factory.mktemp("golden_inputs")
    for f in golden_dir.iterdir():
        if f.name not in ("golden.safetensors", "frontend.safetensors", "tokenizer.json"):
            shutil.copy(f, inputs_only / f.name)
    tensors = load_file(golden_dir / "golden.safetensors")
    save_file({k: v for k, v in tensors.items() if ".in." in k}, inputs_only / "golden.safetensors")
    waves = load_file(golden_dir / "frontend.safetensors")
    save_file({k: v for k, v in waves.items() if k.endswith(".wave")}, inputs_only / "frontend.safetensors")
    if vocab is not None:
        cases = json.loads((golden_dir / "tokenizer.json").read_text(encoding="utf-8"))
        for case in cases["cases"]:
            del case["chars"], case["ids"]
        (inputs_only / "tokenizer.json").write_text(json.dumps(cases, ensure_ascii=False), encoding="utf-8")
    out = tmp_path_factory.mktemp("golden_out")
    proc = subprocess.run([sys.executable, "-m", "uniavgen_core.cli.golden", str(inputs_only), "--out", str(out)]
                          + (["--vocab", str(vocab)] if vocab else []),
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out, proc.stdout


@pytest.fixture(scope="module")
def runner_output(runner, golden_dir):
    out, stdout = runner
    return load_file(out / "golden.safetensors"), load_file(golden_dir / "golden.safetensors"), stdout


def test_frontend_logmel_within_tolerance(runner, golden_dir):
    ours, golden = load_file(runner[0] / "frontend.safetensors"), load_file(golden_dir / "frontend.safetensors")
    names = [k[: -len(".wave")] for k in golden if k.endswith(".wave")]
    assert names and sorted(ours) == sorted([f"{n}.logmel" for n in names] + [f"{n}.mel_normalised" for n in names])
    for n in names:
        assert ours[f"{n}.logmel"].shape == golden[f"{n}.logmel"].shape
        err = float((ours[f"{n}.logmel"] - golden[f"{n}.logmel"]).abs().max())
        assert err <= 1e-3, f"{n}: log-mel max abs error {err:.2e}"
        assert torch.allclose(ours[f"{n}.mel_normalised"], golden[f"{n}.mel_normalised"], atol=1e-3 / 2.1544)


def test_tokenizer_cases_exact(runner, golden_dir):
    if release_vocab() is None:
        pytest.skip(NO_VOCAB)
    ours = json.loads((runner[0] / "tokenizer.json").read_text(encoding="utf-8"))["cases"]
    golden = json.loads((golden_dir / "tokenizer.json").read_text(encoding="utf-8"))["cases"]
    assert len(ours) == len(golden)
    for a, b in zip(ours, golden):
        assert (a["chars"], a["ids"]) == (b["chars"], b["ids"]), b["text"]


def test_every_expected_tensor_is_produced_within_tolerance(runner_output):
    ours, golden, _ = runner_output
    expected = [k for k in golden if ".fwd." in k or ".out." in k]
    assert expected and sorted(ours) == sorted(expected)
    report = {}
    for key in expected:
        assert ours[key].shape == golden[key].shape, key
        err = rel_l2(ours[key], golden[key])
        report[key] = err
        assert err <= (FWD_TOL if ".fwd." in key else OUT_TOL), f"{key}: relative L2 {err:.3e}"
    print(json.dumps(report, indent=1))


def test_runner_prints_sampling_seconds_per_case(runner_output, golden_dir):
    _, _, stdout = runner_output
    cases = json.loads((golden_dir / "golden.json").read_text())["cases"]
    lines = [line.split() for line in stdout.splitlines() if line.startswith("sampling_seconds")]
    assert sorted(parts[1] for parts in lines) == sorted(cases)
    assert all(float(parts[2]) > 0 for parts in lines)


def test_seeded_cpu_noise_matches_the_official_draw(golden_dir):
    """Golden noise was drawn as manual_seed(seed); randn video then randn audio, float32, CPU."""
    cases = json.loads((golden_dir / "golden.json").read_text())["cases"]
    tensors = load_file(golden_dir / "golden.safetensors")
    for name, case in cases.items():
        inputs = case_inputs(tensors, name)
        video, audio = seeded_noise(case_request(case, inputs))
        assert torch.equal(video, inputs["noise_video"]) and torch.equal(audio, inputs["noise_audio"])


def test_importing_the_runner_leaves_mkl_alone():
    """The slow compatible MKL path is not set for the process (the model cases run at full
    speed); the mel cases get it in a child process, and their parity is tested above."""
    env = {k: v for k, v in os.environ.items() if k not in MKL_COMPATIBLE}
    code = "import os, uniavgen_core.golden as g; print(all(os.environ.get(k) is None for k in g.MKL_COMPATIBLE))"
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "True", proc.stderr


def test_official_keys_cli_prints_the_full_configuration():
    proc = subprocess.run([sys.executable, "-m", "uniavgen_core.cli.golden", "--official-keys"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    shapes = json.loads(proc.stdout)
    assert len(shapes) == 2036
    assert shapes["patch_embedding.weight"] == [3072, 48, 1, 2, 2]
    assert shapes["a2v_blocks.14.k.weight"] == [3072, 1536]
    assert shapes["v2a_blocks.0.v.weight"] == [1536, 3072]
    assert shapes["text_embedding.text_blocks.3.grn.gamma"] == [1, 1, 1024]
    assert shapes["head.head.weight"] == [192, 3072]
    assert "text_embedding.freqs_cis" not in shapes

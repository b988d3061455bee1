"""Every speed/memory mode against the official float32 golden outputs: whole sampling runs on
the public golden cases, relative L2 error per output.

    python benchmarks/mode_parity.py [GOLDEN_DIR] [--device cuda]      # default tests/data/golden/public, cpu
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from uniavgen_core.checkpoint.convert import convert  # noqa: E402
from uniavgen_core.golden import case_params, case_request, model_cases  # noqa: E402
from uniavgen_core.checkpoint.loading import load_model  # noqa: E402
from uniavgen_core.sampling import sample  # noqa: E402

MODES = ("float32", "bf16", "fp8", "fp8 float32 compute", "bf16 swap15", "bf16 compile")


def build(mode: str, golden: Path, fp8_file: Path, device: torch.device):
    if mode == "float32":
        return load_model(golden, dtype=torch.float32, device=device)
    model = load_model(fp8_file if mode.startswith("fp8") else golden, device=device,
                       compute_dtype=torch.float32 if "float32 compute" in mode else None)
    if "swap15" in mode:
        model.set_block_swap(15, device)
    if "compile" in mode:   # on the CPU the captured graphs (eager): inductor would only add codegen time
        model.compile_blocks(backend="inductor" if device.type == "cuda" else "eager")
    return model


def errors(model, cases: list, expected: dict, device: torch.device) -> dict[str, float]:
    """{case.output: relative L2} for every golden output the run generates (outputs that the
    conditions write back whole, e.g. A2V's audio, are left out)."""
    out = {}
    for name, case, inputs in cases:
        request = case_request(case, inputs)
        result = sample(model, [request], case_params(case), noise=(inputs["noise_video"], inputs["noise_audio"]),
                        device=device)
        generated = {"video": request.condition.video_cond_frames < request.latent_frames,
                     "audio": request.condition.audio_cond_frames < request.mel_frames}
        for key, ours in (("video", result.video), ("audio", result.audio)):
            if generated[key]:
                ref = expected[f"{name}.out.{key}"]
                out[f"{name}.{key}"] = float((ours.float().cpu() - ref).norm() / ref.norm())
    return out


def run_modes(golden: Path, fp8_file: Path, device: str | torch.device = "cpu") -> dict[str, dict[str, float]]:
    """{mode: errors} for every mode; the golden cases are read once."""
    device = torch.device(device)
    cases, expected = model_cases(golden), load_file(golden / "golden.safetensors")
    return {mode: errors(build(mode, golden, fp8_file, device), cases, expected, device) for mode in MODES}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("golden", nargs="?", type=Path,
                        default=Path(__file__).resolve().parents[1] / "tests/data/golden/public")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    golden = args.golden
    torch.set_grad_enabled(False)
    with tempfile.TemporaryDirectory() as tmp:
        fp8_file = Path(tmp) / "fp8.safetensors"
        convert(golden, fp8_file, "fp8")
        rows = run_modes(golden, fp8_file, args.device)
    names = list(rows["float32"])
    print("| mode | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for mode, errs in rows.items():
        print(f"| {mode} | " + " | ".join(f"{errs[n]:.4f}" for n in names) + " |")


if __name__ == "__main__":
    main()

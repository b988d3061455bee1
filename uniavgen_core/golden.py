"""Golden-vector runner (its contract: docs/DEVELOPMENT.md, "Golden vectors").

    python -m uniavgen_core.golden GOLDEN_DIR --out OUT_DIR [--vocab VOCAB]
    python -m uniavgen_core.golden --official-keys

Reads only the inputs of each case (never the expected outputs) and writes what this
implementation computes, under the same names. Comparing is the tests' job.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .audio.mel import log_mel, normalise
from .audio.speech_tokenizer import SpeechTokenizer
from .checkpoint.loading import load_model, official_key_shapes
from .cli import UsageError, guarded, input_path, output_folder
from .model.conditioning import Condition, ConditionBatch, Switches
from .sampling import Request, SamplingParams, Task, pass_switches, sample
from .sampling.tasks import TASKS, Voice

# Intel MKL picks its FFT kernels by CPU instruction set, and float32 results differ in the last
# bits between them. In the near-silent bins of a pure tone that rounding noise is all there is
# (log-mel differences up to 5e-3 on AVX-512 vs the reference). MKL's compatible code path rounds
# as the reference did on any x86 CPU, but it must be chosen before MKL loads and it slows every
# matrix product, so only the mel cases run with it, in a child process.
MKL_COMPATIBLE = {"MKL_CBWR": "COMPATIBLE"}

FWD_TIMESTEP = 700.0


def case_inputs(tensors: dict, name: str) -> dict:
    prefix = f"{name}.in."
    return {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}


def case_request(case: dict, inputs: dict) -> Request:
    # As the official run_sample: no reference image means the video's first frame (V2A); no
    # conditional video means the reference latent; a reference voice only where the task takes one.
    task = Task(case["task"])
    ref = inputs["ref_img"] if "ref_img" in inputs else inputs["cond_video"][:, :1]
    cond_video = inputs.get("cond_video", ref)
    ref_mel = inputs.get("ref_audio") if TASKS[task].voice != Voice.UNUSED else None

    def condition(text, caption):
        return Condition(speech_ids=inputs[text].reshape(-1), caption=inputs[caption],
                         ref_latent=ref, cond_latent=cond_video, ref_mel=ref_mel, cond_mel=inputs.get("cond_audio"))
    return Request(task=task, condition=condition("text", "caption"),
                   null_condition=condition("neg_text", "neg_caption"),
                   latent_frames=case["lat_frames"], mel_frames=case["n_audio"], seed=case["seed"])


def case_params(case: dict) -> SamplingParams:
    return SamplingParams(steps=case["steps"], shift=case["shift"], video_cfg=case["video_cfg"],
                          audio_cfg=case["audio_cfg"], macfg_fraction=case["macfg_prop"], slg_layer=case["slg_layer"])


def forward_passes(model, request: Request, params: SamplingParams, noise) -> dict:
    """The three single evaluations at t = 700 on the initial noise, as one batch of three."""
    cond_sw, null_macfg = pass_switches(request.task, params, macfg=True)
    _, null_plain = pass_switches(request.task, params, macfg=False)
    stack = lambda c: ConditionBatch.stack([c], request.latent_frames, request.mel_frames, model.config.text_len,
                                           noise[0].device, model.compute_dtype)
    batch = ConditionBatch.cat([stack(request.condition), stack(request.null_condition),
                                stack(request.null_condition)])
    video, audio = (x.expand(3, *x.shape[1:]).to(model.compute_dtype) for x in noise)
    out = model(video, audio, torch.full((3,), FWD_TIMESTEP), batch, Switches.cat([cond_sw, null_macfg, null_plain]))
    names = ("cond", "null_macfg", "null_plain")
    result = {f"fwd.{p}.video": out.video[i] for i, p in enumerate(names)}
    result.update({f"fwd.{p}.audio": out.audio[i: i + 1] for i, p in enumerate(names)})
    return result


def model_cases(golden_dir: Path) -> list[tuple[str, dict, dict]]:
    """(name, case, inputs) of every model case; only the inputs are read, never the expected values."""
    cases = json.loads((golden_dir / "golden.json").read_text())["cases"]
    with safe_open(golden_dir / "golden.safetensors", framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if ".in." in k}
    return [(name, case, case_inputs(tensors, name)) for name, case in cases.items()]


def run_model_cases(golden_dir: Path, out_dir: Path) -> None:
    model = load_model(golden_dir, dtype=torch.float32)
    results = {}
    for name, case, inputs in model_cases(golden_dir):
        request, params = case_request(case, inputs), case_params(case)
        noise = (inputs["noise_video"], inputs["noise_audio"])
        for key, value in forward_passes(model, request, params, noise).items():
            results[f"{name}.{key}"] = value
        start = time.perf_counter()
        out = sample(model, [request], params, noise=noise)
        video, audio = out.video.cpu(), out.audio.cpu()
        print(f"sampling_seconds {name} {time.perf_counter() - start:.3f}", flush=True)
        results[f"{name}.out.video"], results[f"{name}.out.audio"] = video, audio
    save_file({k: v.detach().float().contiguous().cpu() for k, v in results.items()}, out_dir / "golden.safetensors")


def run_frontend_cases(golden_dir: Path, out_dir: Path) -> None:
    if any(os.environ.get(k) != v for k, v in MKL_COMPATIBLE.items()):
        env = {**os.environ, **MKL_COMPATIBLE}
        cmd = [sys.executable, "-m", "uniavgen_core.golden", str(golden_dir), "--out", str(out_dir), "--frontend-only"]
        subprocess.run(cmd, env=env, check=True, cwd=Path(__file__).resolve().parents[1])
        return
    with safe_open(golden_dir / "frontend.safetensors", framework="pt") as f:
        waves = {k[: -len(".wave")]: f.get_tensor(k) for k in f.keys() if k.endswith(".wave")}
    results = {}
    for name, wave in waves.items():
        mel = log_mel(wave)
        results[f"{name}.logmel"], results[f"{name}.mel_normalised"] = mel, normalise(mel)
    save_file({k: v.contiguous() for k, v in results.items()}, out_dir / "frontend.safetensors")


def run_tokenizer_cases(golden_dir: Path, out_dir: Path, vocab: Path) -> None:
    tokenizer = SpeechTokenizer.from_file(vocab)
    data = json.loads((golden_dir / "tokenizer.json").read_text(encoding="utf-8"))
    for case in data["cases"]:
        tokens = tokenizer.encode(case["text"], case.get("lang", "auto"), case.get("ref_text"))
        case["chars"], case["ids"] = tokens.chars, tokens.ids
    (out_dir / "tokenizer.json").write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def default_vocab(golden_dir: Path) -> Path | None:
    """vocab.txt in the golden folder, else at ../../reference/vocab.txt (the official golden layout)."""
    for candidate in (golden_dir / "vocab.txt", golden_dir.parent.parent / "reference" / "vocab.txt"):
        if candidate.is_file():
            return candidate
    return None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m uniavgen_core.golden", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("golden_dir", nargs="?", type=Path, help="folder with golden.json etc.")
    parser.add_argument("--out", type=Path, help="folder to write results into")
    parser.add_argument("--vocab", type=Path, help="speech vocabulary (vocab.txt) for tokenizer cases")
    parser.add_argument("--frontend-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--official-keys", action="store_true",
                        help="print {key: shape} of the official configuration as JSON and exit")
    args = parser.parse_args(argv)
    if args.official_keys:
        json.dump(official_key_shapes(), sys.stdout)
        print()
        return 0
    if args.golden_dir is None or args.out is None:
        parser.error("GOLDEN_DIR and --out are required")
    return guarded(lambda: run(args))


CASE_KEYS = ("task", "lat_frames", "n_audio", "seed", "steps", "shift", "video_cfg", "audio_cfg", "macfg_prop",
             "slg_layer")
CASE_FILES = ("golden.json", "frontend.safetensors", "tokenizer.json")


def _cases(path: Path, kind: type):
    """The "cases" of a case file, which must be a JSON object holding them as a `kind`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise UsageError(f"{path} cannot be read as JSON: {err}") from None
    cases = raw.get("cases") if isinstance(raw, dict) else None
    if not isinstance(cases, kind):
        raise UsageError(f"{path} holds no \"cases\" {'table' if kind is dict else 'list'}; it is not a case file")
    return cases


def check_inputs(golden_dir: Path, out: Path, vocab: Path | None) -> None:
    """The golden folder, its case files and the output folder checked before any case runs: each case file
    readable and of the expected form, the output folder made and writable."""
    input_path(golden_dir, "GOLDEN_DIR", folder=True)
    if vocab is not None:
        input_path(vocab, "--vocab")
    if not any((golden_dir / name).is_file() for name in CASE_FILES):
        raise UsageError(f"{golden_dir} holds none of {', '.join(CASE_FILES)}: give a golden-vector folder")
    if (golden_dir / "golden.json").is_file():
        bad = [name for name, case in _cases(golden_dir / "golden.json", dict).items()
               if not isinstance(case, dict) or any(k not in case for k in CASE_KEYS)]
        if bad:
            raise UsageError(f"{golden_dir / 'golden.json'}: case(s) {', '.join(bad[:5])} lack some of "
                             f"{', '.join(CASE_KEYS)}")
        input_path(golden_dir / "golden.safetensors", "the case inputs")
    for name in ("golden.safetensors", "frontend.safetensors"):
        if (golden_dir / name).is_file():
            try:
                with safe_open(golden_dir / name, framework="pt") as handle:
                    handle.keys()
            except SafetensorError as err:
                raise UsageError(f"{golden_dir / name} is not a readable safetensors file ({err})") from None
    if (golden_dir / "tokenizer.json").is_file():
        if not all(isinstance(c, dict) and isinstance(c.get("text"), str)
                   for c in _cases(golden_dir / "tokenizer.json", list)):
            raise UsageError(f"{golden_dir / 'tokenizer.json'}: every case must be an object with a \"text\"")
    output_folder(out, "--out")


def run(args) -> int:
    vocab = args.vocab or default_vocab(args.golden_dir)
    check_inputs(args.golden_dir, args.out, args.vocab)
    torch.set_grad_enabled(False)
    if args.frontend_only:
        run_frontend_cases(args.golden_dir, args.out)
        return 0
    if (args.golden_dir / "golden.json").is_file():
        run_model_cases(args.golden_dir, args.out)
    if (args.golden_dir / "frontend.safetensors").is_file():
        try:
            run_frontend_cases(args.golden_dir, args.out)
        except subprocess.CalledProcessError as err:       # the child has said why
            return err.returncode
    if (args.golden_dir / "tokenizer.json").is_file():
        if vocab is None:
            print("tokenizer cases skipped: they need the release's speech vocabulary; pass --vocab PATH/TO/vocab.txt",
                  file=sys.stderr)
        else:
            run_tokenizer_cases(args.golden_dir, args.out, vocab)
    return 0


if __name__ == "__main__":
    sys.exit(main())

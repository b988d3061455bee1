"""The golden-vector runner's cases (their contract: docs/DEVELOPMENT.md, "Golden vectors"; the command
line: python -m uniavgen_core.cli.golden).

Reads only the inputs of each case (never the expected outputs) and writes what this
implementation computes, under the same names. Comparing is the tests' job.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .audio.mel import log_mel, normalise
from .audio.speech_tokenizer import SpeechTokenizer
from .checkpoint.loading import load_model
from .model.conditioning import Condition, ConditionBatch, Switches
from .parallel import ParallelConfig, check_run, run_on_ranks, sample_on_rank
from .sampling import Request, SamplingParams, Task, pass_switches, sample
from .sampling.tasks import TASKS, Voice

# Intel MKL picks its FFT kernels by CPU instruction set, and float32 results differ in the last
# bits between them. In the near-silent bins of a pure tone that rounding noise is all there is
# (log-mel differences up to 5e-3 on AVX-512 vs the reference). MKL's compatible code path rounds
# as the reference did on any x86 CPU, but it must be chosen before MKL loads and it slows every
# matrix product, so only the mel cases run with it (the command line runs them in a child process).
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


def timed_sample(model, case: dict, inputs: dict, parallel: ParallelConfig | None = None):
    """(video, audio, seconds) of a case's sampling run from its noise, on this process or, with `parallel`,
    on this rank of an initialised process group."""
    request, params = case_request(case, inputs), case_params(case)
    noise = (inputs["noise_video"], inputs["noise_audio"])
    start = time.perf_counter()
    if parallel is None:
        out = sample(model, [request], params, noise=noise)
    else:
        out = sample_on_rank(model, [request], params, parallel, noise=noise)
    video, audio = out.video.cpu(), out.audio.cpu()
    return video, audio, time.perf_counter() - start


def _sample_on_ranks(model, golden_dir: Path, parallel: ParallelConfig) -> dict:
    """On every rank: each case's sampling run, split as `parallel` says."""
    torch.set_grad_enabled(False)
    return {name: timed_sample(model, case, inputs, parallel) for name, case, inputs in model_cases(golden_dir)}


def run_model_cases(golden_dir: Path, out_dir: Path, parallel: ParallelConfig | None = None) -> None:
    """The forward passes of every case in this process and its sampling run here or, with `parallel`, on
    `parallel.ranks` gloo CPU processes."""
    model = load_model(golden_dir, dtype=torch.float32)
    cases = model_cases(golden_dir)
    sampled = {}
    if parallel is not None:
        for _, case, inputs in cases:
            check_run(parallel, case_params(case), case_request(case, inputs).latent_frames)
        # the ranks share the loaded weights (spawn passes tensors through shared memory)
        sampled = run_on_ranks(_sample_on_ranks, parallel.ranks, model, golden_dir, parallel)
    results = {}
    for name, case, inputs in cases:
        request, params = case_request(case, inputs), case_params(case)
        noise = (inputs["noise_video"], inputs["noise_audio"])
        for key, value in forward_passes(model, request, params, noise).items():
            results[f"{name}.{key}"] = value
        video, audio, seconds = sampled[name] if parallel is not None else timed_sample(model, case, inputs)
        print(f"sampling_seconds {name} {seconds:.3f}", flush=True)
        results[f"{name}.out.video"], results[f"{name}.out.audio"] = video, audio
    save_file({k: v.detach().float().contiguous().cpu() for k, v in results.items()}, out_dir / "golden.safetensors")


def run_frontend_cases(golden_dir: Path, out_dir: Path) -> None:
    """The log-mel of each waveform; as the reference rounds only in a process started with MKL_COMPATIBLE."""
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

"""Per-step time and peak memory of one UniAVGen sampling step (conditional + unconditional
pass as one batched forward), against the compute floor measured in the same run.

    python benchmarks/bench.py --device cuda            # the official shape (random weights)
    python benchmarks/bench.py --device cpu             # a reduced mid-width shape, runs anywhere
    ... [--modes resident,fp32] [--steps 3] [--markdown benchmarks/RESULTS.md]

Official shape: 736x1312 reference -> 46x82 latent (23x41 = 943 tokens per frame, 20,746 video
tokens with the reference frame), 21 latent frames, 506 mel frames. Speed does not depend on
the weights' values, so they are random.
"""
from __future__ import annotations

import argparse
import datetime
import platform
import resource
import sys
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from uniavgen_core.model.attention import BACKENDS, resolve_backend  # noqa: E402
from uniavgen_core.model.conditioning import Condition, ConditionBatch, Switches  # noqa: E402
from uniavgen_core.model.config import UniAVGenConfig  # noqa: E402
from uniavgen_core.model import fp8 as fp8_format  # noqa: E402
from uniavgen_core.model.dit import UniAVGenModel  # noqa: E402
from uniavgen_core.sampling import SamplingParams, Task, pass_switches  # noqa: E402

SHAPES = {
    "official": dict(config=UniAVGenConfig.official(), frames=21, h=46, w=82, mel=506),
    "mid": dict(config=UniAVGenConfig(dim=1024, ffn_dim=4096, num_heads=8, audio_dim=512, audio_ffn_dim=2048,
                                      audio_num_heads=4, text_dim=4096, num_layers=6,
                                      interaction_layers=(0, 2, 4)), frames=11, h=16, w=24, mel=256),
    "tiny": dict(config=UniAVGenConfig(dim=128, ffn_dim=256, num_heads=2, audio_dim=128, audio_ffn_dim=256,
                                       audio_num_heads=2, text_dim=64, num_layers=4, interaction_layers=(0, 2)),
                 frames=3, h=4, w=6, mel=40),
}


def parse_mode(mode: str) -> tuple[list[str], bool, int]:
    """'+'-joined mode parts, whether the weights are fp8, and the block-swap count (swapN)."""
    parts = mode.split("+")
    return parts, "fp8" in parts, next((int(p[4:]) for p in parts if p.startswith("swap")), 0)


def quantised_modules(model: UniAVGenModel) -> list[str]:
    """Modules whose weight the converter stores as scaled fp8, each given its meta `scale_weight` buffer."""
    names = [fp8_format.layer_of(key) for key in model.state_dict() if fp8_format.is_quantised(key)]
    fp8_format.attach_scales(model, names)
    return names


def build(config: UniAVGenConfig, dtype, device, fp8: bool = False):
    """Random weights on `device`; with fp8 the transformer matrices are stored as scaled e4m3fn, as the
    converter writes them."""
    with torch.device("meta"):
        model = UniAVGenModel(config)
    shapes = {key: value.shape for key, value in model.state_dict().items()}
    quantised = set(quantised_modules(model)) if fp8 else set()
    gen = torch.Generator(device).manual_seed(0)          # drawn where they run: 7B values are slow on a CPU
    state = {}
    for key, shape in shapes.items():
        weight = torch.randn(shape, generator=gen, device=device) * 0.02
        if key[: -len(".weight")] in quantised:
            state[key], state[fp8_format.scale_key(key)] = fp8_format.quantise(weight)
        else:
            state[key] = weight.to(dtype)
    model.load_state_dict(state, assign=True)
    model.compute_dtype = dtype
    return model.to(device).eval().requires_grad_(False)


def step_inputs(model, shape, device):
    """One batched step: the AVG conditional and unconditional passes (MA-CFG phase, SLG 11)."""
    frames, h, w, mel, dtype = shape["frames"], shape["h"], shape["w"], shape["mel"], model.compute_dtype
    gen = torch.Generator().manual_seed(1)
    ref = torch.randn(48, 1, h, w, generator=gen)
    make = lambda ids, rows: Condition(ids, torch.randn(rows, model.config.text_dim, generator=gen), ref, ref)
    vocab, text_len = model.config.speech_vocab_size, model.config.text_len
    cond = ConditionBatch.cat([
        ConditionBatch.stack([make(torch.randint(0, vocab, (80,), generator=gen), 60)], frames, mel, text_len,
                             device, dtype),
        ConditionBatch.stack([make(torch.tensor([0] + [-1] * 9), 1)], frames, mel, text_len, device, dtype)])
    c, u = pass_switches(Task.AVG, SamplingParams(), macfg=True)       # the release's first steps
    video = torch.randn(2, 48, frames, h, w, generator=gen).to(device, dtype)
    audio = torch.randn(2, mel, 80, generator=gen).to(device, dtype)
    return video, audio, torch.full((2,), 996.0, device=device), cond, Switches.cat([c, u])


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def matmul_rate(device, dtype) -> float:
    """Measured dense matmul throughput (FLOP/s) of this device in the compute dtype."""
    n = 8192 if device.type == "cuda" else 1024
    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    for _ in range(2):
        a @ b
    sync(device)
    reps, start = (20 if device.type == "cuda" else 5), time.perf_counter()
    for _ in range(reps):
        a @ b
    sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - start)


def reset_peak_rss() -> None:
    """Linux: restart the process's peak-RSS counter (VmHWM) so each mode gets its own peak."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_rss() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def run_mode(shape, mode, device, steps, attention="auto"):
    """mode: '+'-joined parts: resident (the compute dtype: bf16 on GPU, fp32 on CPU), fp32, fp8,
    swapN (block swap of N layer pairs), compile (torch.compile of the blocks), and an attention
    backend (sdpa, flash_attn, sage; default `attention`, resolved as the model loader does)."""
    parts, fp8, swap = parse_mode(mode)
    dtype = torch.float32 if "fp32" in parts or device.type != "cuda" else torch.bfloat16
    reset_peak_rss()
    model = build(shape["config"], dtype, device, fp8=fp8)
    model.attention_backend = resolve_backend(next((p for p in parts if p in BACKENDS), attention))
    if swap:
        model.set_block_swap(swap, device)
    inputs = step_inputs(model, shape, device)
    compile_seconds = None
    if "compile" in parts:
        model.compile_blocks()
        start = time.perf_counter()
        model(*inputs)
        sync(device)
        compile_seconds = time.perf_counter() - start
    with FlopCounterMode(display=False) as counter:
        model(*inputs)
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model(*inputs)                                            # warm-up (tables, kernels)
    sync(device)
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        model(*inputs)
        sync(device)
        times.append(time.perf_counter() - start)
    # CUDA: the DiT's peak allocation; CPU: the process's peak RSS (weights, activations and runtime)
    peak = (torch.cuda.max_memory_allocated() if device.type == "cuda"
            else peak_rss())
    rate = matmul_rate(device, dtype)
    backend = model.attention_backend
    del model
    return dict(mode=mode, dtype=str(dtype).replace("torch.", ""), attention=backend, step=min(times), flops=flops,
                rate=rate, floor=flops / rate, peak=peak, compile=compile_seconds)


def try_mode(shape, mode, device, steps, attention="auto"):
    """run_mode, with a failure (out of memory, a missing kernel) reported as the mode's row."""
    try:
        return run_mode(shape, mode, device, steps, attention)
    except Exception as e:                                    # noqa: BLE001 - one mode's failure is a result
        return dict(mode=mode, error=f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:200])
    finally:
        if device.type == "cuda":
            torch.cuda.empty_cache()


def table(rows, shape_name, device) -> str:
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({platform.processor() or 'x86_64'}, " \
                                                                        f"{torch.get_num_threads()} threads)"
    lines = [f"### {datetime.date.today()} — {name}, shape `{shape_name}`", "",
             "| mode | dtype | attention | step (cond+null) | compute | matmul rate | floor | step / floor "
             "| peak memory"
             + (" (GPU) |" if device.type == "cuda" else " (RSS) |"),
             "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            outcome = r["error"] if r["error"].startswith("not run") else f"failed: {r['error']}"
            lines.append(f"| {r['mode']} | {outcome.replace('|', '/')} |")
            continue
        lines.append(f"| {r['mode']} | {r['dtype']} | {r['attention']} | {r['step']:.3f} s | "
                     f"{r['flops'] / 1e12:.2f} TFLOP | {r['rate'] / 1e12:.2f} TFLOP/s | {r['floor']:.3f} s | "
                     f"{r['step'] / r['floor']:.2f}x | {r['peak'] / 2 ** 30:.2f} GiB |"
                     + (f" (first call with compilation {r['compile']:.0f} s)" if r["compile"] else ""))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="default: official on cuda, mid on cpu")
    parser.add_argument("--modes", default="resident")
    parser.add_argument("--attention", default="auto",
                        help="backend of the modes that name none: auto, " + ", ".join(BACKENDS))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--markdown", type=Path, help="append the table to this file")
    parser.add_argument("--deadline", type=float, help="seconds after which no further mode starts (it is "
                                                       "reported as not run)")
    args = parser.parse_args()
    device = torch.device(args.device)
    shape_name = args.shape or ("official" if device.type == "cuda" else "mid")
    torch.set_grad_enabled(False)
    start, rows = time.perf_counter(), []
    for mode in args.modes.split(","):
        if args.deadline is not None and time.perf_counter() - start > args.deadline:
            rows.append(dict(mode=mode, error=f"not run: the {args.deadline:.0f} s deadline had passed"))
        else:
            rows.append(try_mode(SHAPES[shape_name], mode, device, args.steps, args.attention))
        print(f"bench: {mode} done at {time.perf_counter() - start:.0f} s", flush=True)
    text = table(rows, shape_name, device)
    print(text)
    if args.markdown:
        with open(args.markdown, "a") as f:
            f.write("\n" + text)


if __name__ == "__main__":
    main()

"""End-to-end run of every shipped API workflow inside a REAL ComfyUI on tiny assets.

    python run_host.py --comfy DIR --repo REPO --golden GOLDEN_DIR --vocab VOCAB [--port 8199] [--out DIR]

Run with ComfyUI's own python (make host-test does all of it). Tiny assets: the golden tiny DiT,
a tiny random vocoder, a randomly initialised FULL-SIZE Wan2.2 VAE at 64-pixel short side, and a
test-only node standing in for umT5. The mini demo runs as shipped, on the pack's own small model
and weight-free codecs. Checks: the pack imports, also when ComfyUI's input folder is a file, a
dangling link or full of planted links; its nodes are in /object_info, the workflows are templates,
every workflow passes /prompt validation and runs, and the outputs (mp4 with h264 + AAC of the right
length, size and rate, the FLAC audio, the face-mask video) are inspected. A LoRA applied by the LoRA
loader gives the latent of the hand-merged weights, and an fp8 file loads into comfy.ops layers. ComfyUI's
own samplers and sigma nodes drive the Sampler (KSamplerSelect euler on UniAVGen Schedule's sigmas is the
pack's Euler; KarrasScheduler set for a flow model with dpmpp_2m runs; at its default it is refused). Parallel
Devices on two CPU ranks gives the one-device latent, and no rank is left after "unload models" nor after
ComfyUI is stopped.
"""
import argparse
import io
import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import av

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))            # the repo's uniavgen_core (this python has torch)
from uniavgen_core import units  # noqa: E402
from uniavgen_core.audio.levels import measure, read_audio  # noqa: E402
from uniavgen_core.units import HOP, SAMPLE_RATE as RATE  # noqa: E402
sys.path.insert(0, str(HERE.parents[1] / "tools"))
from workflow_graphs import WORKFLOWS  # noqa: E402
sys.path[:0] = [str(HERE), str(HERE.parent)]       # the host test's assets and the tests' helpers
from helpers import children, live, rel_l2  # noqa: E402
from make_assets import DIT, EXAMPLE_INPUTS, FP8, LORA, LORA_STRENGTH, MERGED, VAE, VOCODER  # noqa: E402

FPS = units.FPS
TINY_SECONDS = 0.5625                      # 9 video frames = 3 latent frames = 56 mel frames
TINY = units.Duration.from_seconds(TINY_SECONDS)
FRAMES, MEL = TINY.video_frames, TINY.mel_frames
MINI = "uniavgen_mini_demo"                # runs as shipped: small enough for a CPU, nothing downloaded
MINI_FRAMES, MINI_SIZE = units.Duration.from_seconds(3.0625).video_frames, 128
LONG_PICTURES = 97                         # the Long Sampler's tiny job: 6.06 s, two segments of the tiny DiT's 81
EXTEND_FRAMES, EXTEND_OVERLAP = 2, 2       # the Extend's tiny part: 0.5 s after the clip's last 2 latent frames


@dataclass(frozen=True)
class Expected:
    frames: tuple[int, ...]                # frame counts of the saved mp4s, the last one required
    size: tuple[int, int] | None           # (width, height) of every mp4, if fixed
    flac_samples: int                      # of each SaveAudio FLAC; 0: the workflow saves none
    masks: int                             # frames of the face-mask video (0: none saved)


def expected(name: str) -> Expected:
    if name == MINI:
        return Expected((MINI_FRAMES,), (MINI_SIZE, MINI_SIZE), 0, 0)
    if name in ("uniavgen_long_talk", "uniavgen_long_lipsync"):   # the stitched video only: two segments
        return Expected((units.video_frames(units.latent_frames(LONG_PICTURES)),), None, 0, 0)
    if name == "uniavgen_two_gpus":        # the talking video only
        return Expected((FRAMES,), None, 0, 0)
    if name == "uniavgen_long_extend":     # the Sampler's clip and EXTEND_FRAMES more latent frames, decoded once
        return Expected((FRAMES + units.TEMPORAL_STRIDE * EXTEND_FRAMES,), None, 0, 0)
    return Expected((FRAMES,), None, MEL * HOP, FRAMES)


def tiny(api: dict) -> dict:
    """The shipped graph, shrunk for a CPU: test text encoder, 64-px short side, 9 frames, 2 steps."""
    api = json.loads(json.dumps(api))
    for node_id, node in list(api.items()):
        inputs = node["inputs"]
        kind = node["class_type"]
        if kind == "CLIPLoader":
            del api[node_id]
        elif kind == "CLIPTextEncode":
            node["class_type"] = "UniAVGenTestTextEncoder"
            node["inputs"] = {"text": inputs["text"], "width": 64}
        elif kind in ("UniAVGenReferenceImage", "UniAVGenVideoEncode"):
            inputs.update(resolution="short side", short_side=64)
        elif kind == "UniAVGenSampler":
            inputs.update(duration_seconds=TINY_SECONDS, steps=2)
        elif kind == "UniAVGenLongSampler":
            inputs.update(duration_seconds=LONG_PICTURES / FPS, steps=2)
        elif kind == "UniAVGenExtend":
            inputs.update(duration_seconds=EXTEND_FRAMES * units.TEMPORAL_STRIDE / FPS, overlap=EXTEND_OVERLAP,
                          steps=2)
        elif kind == "UniAVGenModelLoader":
            inputs.update(model=f"{DIT}/", weight_dtype="fp32")
        elif kind == "UniAVGenVocoderLoader" and inputs["vocoder"] != "griffin-lim (weight-free)":
            inputs.update(vocoder=f"{VOCODER}/")
        elif kind == "VAELoader":
            inputs.update(vae_name=VAE)
        elif kind == "UniAVGenParallelDevices":
            inputs.update(devices="cpu, cpu")
    return api


class Server:
    def __init__(self, port):
        self.base = f"http://127.0.0.1:{port}"

    def get(self, path):
        with urllib.request.urlopen(self.base + path, timeout=60) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(self.base + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return r.status, json.loads(r.read() or b"{}")        # /free answers with no body
        except urllib.error.HTTPError as err:
            return err.code, json.loads(err.read() or b"{}")

    def status(self, path) -> int:
        try:
            with urllib.request.urlopen(self.base + path, timeout=60) as r:
                return r.status
        except urllib.error.HTTPError as err:
            return err.code

    def run(self, prompt, timeout=900):
        status, reply = self.post("/prompt", {"prompt": prompt, "client_id": "uniavgen-host-test"})
        if status != 200 or reply.get("node_errors"):
            return {"accepted": False, "reply": reply}
        start, pid = time.time(), reply["prompt_id"]
        while time.time() - start < timeout:
            history = self.get(f"/history/{pid}")
            if pid in history and history[pid].get("status", {}).get("completed") is not None:
                entry = history[pid]
                if entry["status"]["status_str"] in ("success", "error"):
                    return {"accepted": True, "seconds": round(time.time() - start, 1), **entry}
            time.sleep(1)
        return {"accepted": True, "timeout": True}


def inspect(path: Path) -> dict:
    with av.open(str(path)) as c:
        info = {"file": path.name, "seconds": round(float(c.duration or 0) / av.time_base, 4)}
        if c.streams.video:
            v = c.streams.video[0]
            info.update(video=v.codec_context.name, width=v.codec_context.width, height=v.codec_context.height,
                        fps=float(v.average_rate), frames=sum(1 for _ in c.decode(video=0)))
    with av.open(str(path)) as c:                  # a fresh demuxer: the video pass consumed the packets
        if c.streams.audio:
            a = c.streams.audio[0]
            info.update(audio=a.codec_context.name, rate=a.codec_context.sample_rate,
                        samples=sum(f.samples for f in c.decode(audio=0)))
    return info


def check_outputs(comfy: Path, want: Expected, outputs: dict) -> tuple[dict, list]:
    files = {"video": [], "audio": [], "mask": []}
    for node_out in outputs.values():
        for item in node_out.get("images", []) + node_out.get("audio", []):
            path = comfy / "output" / item["subfolder"] / item["filename"]
            key = "mask" if "face_mask" in path.name else "video" if path.suffix == ".mp4" else "audio"
            files[key].append(path)
    problems, found = [], {}
    videos = [inspect(p) for p in files["video"]]
    found["video"] = videos
    for v in videos:
        if v.get("video") != "h264" or v.get("audio") != "aac" or v.get("rate") != RATE:
            problems.append(f"{v['file']}: streams {v.get('video')}/{v.get('audio')} {v.get('rate')} Hz, "
                            f"want h264/aac {RATE} Hz")
        if v.get("frames") not in want.frames or abs(v.get("fps", 0) - FPS) > 1e-6:
            problems.append(f"{v['file']}: {v.get('frames')} frames at {v.get('fps')} fps")
        if want.size and (v.get("width"), v.get("height")) != want.size:
            problems.append(f"{v['file']}: {v.get('width')}x{v.get('height')}, want {want.size[0]}x{want.size[1]}")
        if abs(v["seconds"] - v.get("frames", 0) / FPS) > 0.1:
            problems.append(f"{v['file']}: lasts {v['seconds']} s for {v.get('frames')} frames")
        if abs(v.get("samples", 0) / max(v.get("rate") or 1, 1) - v.get("frames", 0) / FPS) > 0.1:
            problems.append(f"{v['file']}: {v.get('samples')} audio samples at {v.get('rate')} Hz for "
                            f"{v.get('frames')} frames")
    if not any(v.get("frames") == want.frames[-1] for v in videos):
        problems.append(f"no video of {want.frames[-1]} frames")
    audios = [inspect(p) for p in files["audio"]]
    found["audio"] = audios
    for a in audios:
        if a.get("audio") != "flac" or a.get("rate") != RATE or a.get("samples") != want.flac_samples:
            problems.append(f"{a['file']}: {a.get('audio')} {a.get('rate')} Hz {a.get('samples')} samples, "
                            f"want flac {RATE} Hz {want.flac_samples}")
    if bool(audios) != bool(want.flac_samples):
        problems.append(f"{len(audios)} FLAC files, want {'some' if want.flac_samples else 'none'}")
    for path in files["video"] + files["audio"]:
        level = measure(read_audio(path)[0])
        if level.clipped > 0.001:
            problems.append(f"{path.name}: audio clips: {level.row()}")
    masks = [inspect(p) for p in files["mask"]]
    found["mask_videos"] = masks
    problems += [f"{m['file']}: no AAC speech in the face-mask video" for m in masks if m.get("audio") != "aac"]
    if [m.get("frames") for m in masks] != ([want.masks] if want.masks else []):
        problems.append(f"face-mask videos {[(m['file'], m.get('frames')) for m in masks]}, want one of "
                        f"{want.masks} frames" if want.masks else "a face-mask video, want none")
    return found, problems


def capitals_and_levels(server: "Server", comfy: Path, mini: dict) -> dict:
    """The mini demo with a capitalised transcript: the Speech Text node fits it to the small model's
    lower-case vocabulary and says so, with no unknown-token message; the clip's audio never clips."""
    text = "Hello! I have three cats, Anna."
    api = json.loads(json.dumps(mini))
    speech = next(n for n in api.values() if n["class_type"] == "UniAVGenSpeechText")
    speech["inputs"]["text"] = text
    result = server.run(api)
    if not result.get("accepted") or result.get("timeout") or result["status"]["status_str"] != "success":
        return {"problems": [f"the capitalised mini demo did not run: {json.dumps(result)[:1500]}"]}
    messages = [m for v in result["outputs"].values() for m in v.get("text", [])]
    problems = [f"unknown-token message for {text!r}: {m}" for m in messages if "not in the speech vocabulary" in m]
    if not any("lower-cased" in m for m in messages):
        problems.append(f"no message says the transcript was lower-cased: {messages}")
    levels = {}
    for v in result["outputs"].values():
        for item in v.get("images", []):
            level = measure(read_audio(comfy / "output" / item["subfolder"] / item["filename"])[0])
            levels[item["filename"]] = level.row()
            if level.clipped > 0.001:
                problems.append(f"{item['filename']}: {level.row()}")
    if not levels:
        problems.append("no video came back to measure")
    return {"text": text, "messages": messages, "levels": levels, "problems": problems}


def ancestors(api: dict, node_id: str) -> set[str]:
    seen, todo = set(), [node_id]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo += [v[0] for v in api[n]["inputs"].values() if isinstance(v, list) and len(v) == 2]
    return seen


def template_checks(server: "Server", module: str, templates: dict) -> list[str]:
    """The pack's templates are listed under their titles, and each one's workflow and thumbnail are served: the
    workflow as the file in workflows/, the thumbnail as a square JPEG card (512 x 512, tools/make_thumbnails.py)."""
    from PIL import Image
    titles = sorted(title for title, _ in WORKFLOWS.values())
    problems = []
    if sorted(templates.get(module, [])) != titles:
        problems.append(f"templates listed for {module}: {templates.get(module)}, want {titles}")
    for title in titles:
        for ext in (".json", ".jpg"):
            path = f"/api/workflow_templates/{module}/{urllib.parse.quote(title)}{ext}"
            try:
                with urllib.request.urlopen(server.base + path, timeout=60) as r:
                    data = r.read()
            except urllib.error.HTTPError as err:
                problems.append(f"{path}: not served ({err.code})")
                continue
            if ext == ".json" and json.loads(data).get("extra", {}).get("ds", {}).get("scale", 0) < 0.6:
                problems.append(f"{path}: opens below zoom 0.6, where the frontend draws blank boxes")
            if ext == ".jpg":
                card = Image.open(io.BytesIO(data))
                if card.format != "JPEG" or card.size != (512, 512):
                    problems.append(f"{path}: {card.format} {card.size}, want a 512 x 512 JPEG card")
    return problems


def bad_vocoder_refused(server: "Server", api: dict) -> list[str]:
    """A vocoder that is not there fails validation for every output, so nothing runs (not the sampler alone)."""
    graph = tiny(api)
    loader = next(k for k, v in graph.items() if v["class_type"] == "UniAVGenVocoderLoader")
    graph[loader]["inputs"]["vocoder"] = "no_such_vocoder/"
    status, reply = server.post("/prompt", {"prompt": graph, "client_id": "uniavgen-host-test"})
    if status != 400 or "prompt_id" in reply:
        return [f"a missing vocoder was accepted ({status}): {json.dumps(reply)[:500]}"]
    if "no_such_vocoder" not in json.dumps(reply):
        return [f"the refusal does not name the vocoder: {json.dumps(reply)[:500]}"]
    return []


def latent_graph(api: dict, model: str, weight_dtype: str, tag: str, lora: str | None = None,
                 devices: str | None = None) -> dict:
    """The tiny AVG graph up to the sampler, on `model` (optionally through the LoRA loader, or on `devices`
    through Parallel Devices in cfg mode), saving the latent and listing the model's layer classes."""
    api = tiny(api)
    sampler = next(k for k, v in api.items() if v["class_type"] == "UniAVGenSampler")
    loader = next(k for k, v in api.items() if v["class_type"] == "UniAVGenModelLoader")
    graph = {k: api[k] for k in ancestors(api, sampler)}
    graph[loader]["inputs"].update(model=model, weight_dtype=weight_dtype)
    source = [loader, 0]
    if lora:
        source = between(graph, source, "900", "UniAVGenLoraLoader", lora_name=lora, strength=LORA_STRENGTH)
    if devices:
        source = between(graph, source, "903", "UniAVGenParallelDevices", devices=devices, mode="cfg")
    graph["901"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0],
                                                           "filename_prefix": f"UniAVGen/check_{tag}"}}
    graph["902"] = {"class_type": "UniAVGenTestDescribeModel", "inputs": {"model": source}}
    return graph


def saved_latent(server: "Server", comfy: Path, graph: dict, tag: str, problems: list):
    """(the run's history entry, the latent its SaveLatent node 901 wrote) for `graph`, or (None, None) with the
    reason in `problems`."""
    from safetensors.torch import load_file
    result = server.run(graph)
    if not result.get("accepted") or result.get("timeout") or result["status"]["status_str"] != "success":
        problems.append(f"{tag}: did not run: {json.dumps(result.get('reply') or result.get('status'))[:2000]}")
        return None, None
    item = result["outputs"]["901"]["latents"][0]
    return result, load_file(str(comfy / "output" / item["subfolder"] / item["filename"]))["latent_tensor"]


def between(graph: dict, source: list, node_id: str, class_type: str, **widgets) -> list:
    """A model node put between `source` and every node that took its model; its output."""
    for node in graph.values():
        if node["inputs"].get("model") == source:
            node["inputs"]["model"] = [node_id, 0]
    graph[node_id] = {"class_type": class_type, "inputs": {"model": source, **widgets}}
    return [node_id, 0]


def rank_processes(server_pid: int) -> list[int]:
    """The live worker processes ComfyUI (server_pid) started, but for multiprocessing's resource tracker."""
    return sorted(children(server_pid))


def wait_until(check, seconds: float = 30):
    """check() until it is falsy or `seconds` pass; its last value."""
    deadline = time.time() + seconds
    while (value := check()) and time.time() < deadline:
        time.sleep(0.5)
    return value


def parallel_checks(server: "Server", comfy: Path, api: dict, server_pid: int) -> dict:
    """Two CPU ranks through Parallel Devices give the one-device latent; "unload models" ends the ranks; the
    ranks of a second run are returned, for the check after shutdown."""
    latents, problems, report = {}, [], {}
    server.post("/free", {"unload_models": True})          # the ranks of the two-GPU template's run end
    report["template_ranks_after_unload"] = wait_until(lambda: rank_processes(server_pid))
    if report["template_ranks_after_unload"]:
        problems.append(f"the template's ranks outlived 'unload models': {report['template_ranks_after_unload']}")
    # the second run's device list is written differently, so that ComfyUI runs it again rather than from its cache
    for tag, devices in (("one_device", None), ("two_ranks", "cpu, cpu"), ("two_ranks_seed", "cpu, cpu"),
                         ("two_ranks_again", "cpu,cpu")):
        if tag == "two_ranks_again":
            status, _ = server.post("/free", {"unload_models": True})
            left = wait_until(lambda: rank_processes(server_pid))
            report["after_unload"] = left
            if status != 200 or left:
                problems.append(f"after 'unload models' (status {status}) ranks left: {left}")
        graph = latent_graph(api, f"{DIT}/", "fp32", tag, devices=devices)
        if tag == "two_ranks_seed":         # a second run on the same ranks, as after changing the seed
            next(n for n in graph.values() if n["class_type"] == "UniAVGenSampler")["inputs"]["seed"] += 1
        result, latent = saved_latent(server, comfy, graph, tag, problems)
        if result is None:
            continue
        latents[tag] = latent
        if devices:
            ranks = rank_processes(server_pid)
            if len(ranks) != 2 or (tag == "two_ranks_seed" and ranks != report["ranks"]):
                problems.append(f"{tag}: rank processes {ranks} while loaded, want 2 (the same as the run before "
                                f"{report.get('ranks')} on the same ranks)")
            report["ranks"] = ranks
    for tag in ("two_ranks", "two_ranks_again"):
        if tag in latents and "one_device" in latents:
            rel = rel_l2(latents[tag], latents["one_device"])
            report[f"{tag}_vs_one_device"] = rel
            if rel > 1e-5:
                problems.append(f"{tag}: {rel:.2e} from the one-device latent (want <= 1e-5)")
    report["problems"] = problems
    return report


def model_checks(server: "Server", comfy: Path, api: dict) -> dict:
    """LoRA through the loader equals the hand-merged weights; an fp8 file is built from comfy.ops."""
    runs = {"plain": (f"{DIT}/", "fp32", None), "lora": (f"{DIT}/", "fp32", LORA), "merged": (MERGED, "fp32", None),
            "fp8_lora": (FP8, "auto", LORA)}
    latents, layers, problems = {}, {}, []
    for tag, (model, dtype, lora) in runs.items():
        result, latent = saved_latent(server, comfy, latent_graph(api, model, dtype, tag, lora), tag, problems)
        if result is None:
            continue
        latents[tag], layers[tag] = latent, result["outputs"]["902"]["text"]
    rel = lambda a, b: float((latents[a] - latents[b]).norm() / latents[b].norm())
    report = {"layers": layers}
    if {"plain", "lora", "merged"} <= set(latents):
        report.update(lora_vs_merged=rel("lora", "merged"), lora_vs_plain=rel("lora", "plain"))
        if report["lora_vs_merged"] > 1e-4 or report["lora_vs_plain"] < 1e-2:
            problems.append(f"LoRA: {report['lora_vs_merged']:.2e} from the hand-merged weights (want <= 1e-4), "
                            f"{report['lora_vs_plain']:.2e} from no LoRA (want >= 1e-2)")
    if "fp8_lora" in latents:
        if not all(line.startswith("comfy.ops.") for line in layers["fp8_lora"]) or \
                not any("float8_e4m3fn" in line for line in layers["fp8_lora"]):
            problems.append(f"fp8: layers {layers['fp8_lora']}, want comfy.ops classes with fp8 weights")
        if not bool(latents["fp8_lora"].isfinite().all()):
            problems.append("fp8 + LoRA: non-finite latent")
    report["problems"] = problems
    return report


def comfy_sampler_graph(base: dict, tag: str, sampler_name: str, sigmas: dict) -> dict:
    """`base` (latent_graph) with ComfyUI's KSamplerSelect and the sigma node `sigmas` wired into the Sampler."""
    graph = json.loads(json.dumps(base))
    sampler = next(k for k, v in graph.items() if v["class_type"] == "UniAVGenSampler")
    graph["901"]["inputs"]["filename_prefix"] = f"UniAVGen/check_{tag}"
    graph["910"] = {"class_type": "KSamplerSelect", "inputs": {"sampler_name": sampler_name}}
    graph["911"] = sigmas
    graph[sampler]["inputs"].update(sampler=["910", 0], sigmas=["911", 0])
    return graph


SAMPLING_DEFAULTS = {"preset": "custom", "solver": "euler", "schedule": "release", "cache": 0.0}


def sampling_choice_graph(base: dict, tag: str, choices: dict) -> dict:
    """`base` (latent_graph) with the Sampler's preset, solver, schedule or cache set to `choices`."""
    graph = json.loads(json.dumps(base))
    graph["901"]["inputs"]["filename_prefix"] = f"UniAVGen/check_{tag}"
    next(v for v in graph.values() if v["class_type"] == "UniAVGenSampler")["inputs"].update(choices)
    return graph


def comfy_sampler_checks(server: "Server", comfy: Path, api: dict, info: dict) -> dict:
    """ComfyUI's own samplers drive the Sampler: KSamplerSelect (euler) with UniAVGen Schedule (release) gives the
    pack's own Euler's latent in float32; ComfyUI's KarrasScheduler set for a flow model (sigma_max 1) with
    dpmpp_2m runs to a finite latent, and at its default sigma_max the run stops with a message naming the fix.
    /object_info lists the Sampler's optional sampler and sigmas, then its preset, solver, schedule and cache, and
    the Schedule node. Those four at their defaults give the latent of a prompt without them, bit for bit, and
    preset fast runs to a finite latent."""
    problems = []
    optional = info.get("UniAVGenSampler", {}).get("input", {}).get("optional", {})
    if [optional.get(n, [None])[0] for n in ("sampler", "sigmas")] != ["SAMPLER", "SIGMAS"]:
        problems.append(f"the Sampler's optional inputs: {sorted(optional)}, want sampler (SAMPLER), sigmas (SIGMAS)")
    order = info.get("UniAVGenSampler", {}).get("input_order", {}).get("optional", [])
    if order[-6:] != ["sampler", "sigmas", *SAMPLING_DEFAULTS]:
        problems.append(f"the Sampler's optional inputs in order: {order}, want sampler, sigmas, "
                        f"{', '.join(SAMPLING_DEFAULTS)} last")
    if info.get("UniAVGenSchedule", {}).get("output") != ["SIGMAS"]:
        problems.append(f"UniAVGen Schedule in /object_info: {info.get('UniAVGenSchedule')}")
    base = latent_graph(api, f"{DIT}/", "fp32", "pack_euler")
    settings = next(v["inputs"] for v in base.values() if v["class_type"] == "UniAVGenSampler")
    settings["steps"] = 4
    release = {"class_type": "UniAVGenSchedule", "inputs": {"steps": 4, "shift": settings["shift"],
               "schedule": "release", "macfg_fraction": settings["macfg_fraction"]}}
    karras = lambda sigma_max: {"class_type": "KarrasScheduler", "inputs": {"steps": 6, "sigma_max": sigma_max,
                                                                            "sigma_min": 0.002, "rho": 7.0}}
    runs = {"pack_euler": base, "comfy_euler": comfy_sampler_graph(base, "comfy_euler", "euler", release),
            "karras_dpmpp_2m": comfy_sampler_graph(base, "karras_dpmpp_2m", "dpmpp_2m", karras(1.0)),
            "pack_defaults": sampling_choice_graph(base, "pack_defaults", SAMPLING_DEFAULTS),
            "preset_fast": sampling_choice_graph(base, "preset_fast", {"preset": "fast"})}
    latents, report = {}, {}
    for tag, graph in runs.items():
        result, latent = saved_latent(server, comfy, graph, tag, problems)
        if result is not None:
            latents[tag] = latent
    if {"pack_euler", "comfy_euler"} <= set(latents):
        report["euler_vs_pack"] = float((latents["comfy_euler"] - latents["pack_euler"]).norm()
                                        / latents["pack_euler"].norm())
        if report["euler_vs_pack"] > 1e-5:
            problems.append(f"KSamplerSelect euler + UniAVGen Schedule: {report['euler_vs_pack']:.2e} from the "
                            f"pack's own Euler (want <= 1e-5)")
    if "karras_dpmpp_2m" in latents and not bool(latents["karras_dpmpp_2m"].isfinite().all()):
        problems.append("KarrasScheduler (sigma_max 1) + dpmpp_2m: non-finite latent")
    if {"pack_euler", "pack_defaults"} <= set(latents) and not bool((latents["pack_defaults"]
                                                                      == latents["pack_euler"]).all()):
        problems.append("the Sampler's preset, solver, schedule and cache at their defaults changed the latent")
    if "preset_fast" in latents and not bool(latents["preset_fast"].isfinite().all()):
        problems.append("preset fast: non-finite latent")
    refused = server.run(comfy_sampler_graph(base, "karras_default", "dpmpp_2m", karras(14.614642)))
    errors = [m[1].get("exception_message", "") for m in refused.get("status", {}).get("messages", [])
              if m[0] == "execution_error"]
    report["karras_default_message"] = errors[0] if errors else None
    if not errors or "sigma_max" not in errors[0] or "UniAVGen Schedule" not in errors[0]:
        problems.append(f"KarrasScheduler at its default sigma_max was not refused with the fix: "
                        f"{json.dumps(refused)[:1500]}")
    report["problems"] = problems
    return report


INPUT_STATES = ("a file", "a dangling link", "links planted in it", "a path under a file")


def pack_loads_whatever_the_input_folder(py: str, comfy: Path, repo: Path, scratch: Path) -> dict:
    """ComfyUI started with --input-directory in each broken state: the pack imports (its example copy
    never stops it), says it skipped the copy, and writes nothing through the folder's links."""
    import shutil
    results = {}
    for state in INPUT_STATES:
        root = scratch / state.replace(" ", "_")
        shutil.rmtree(root, ignore_errors=True)
        outside = root / "outside"
        outside.mkdir(parents=True)
        (outside / "users.wav").write_bytes(b"the user's own file")
        inputs = root / "input"
        if state == "a file":
            inputs.write_bytes(b"not a folder")
        elif state == "a dangling link":
            inputs.symlink_to(outside / "gone")
        elif state == "links planted in it":
            inputs.mkdir()
            for name in EXAMPLE_INPUTS:
                (inputs / name).symlink_to(outside / name)
        else:
            (root / "afile").write_bytes(b"a file")
            inputs = root / "afile" / "input"
        run = subprocess.run([py, "main.py", "--cpu", "--quick-test-for-ci", "--input-directory", str(inputs)],
                             cwd=comfy, capture_output=True, text=True)
        log = (run.stdout + run.stderr).splitlines()
        ours = [line for line in log if line.rstrip().endswith(f"custom_nodes/{repo.name}")]
        problems = []
        if not ours or any("IMPORT FAILED" in line for line in ours):
            problems.append(f"the pack did not import: {ours}")
        if not any("UniAVGen: example inputs not copied" in line for line in log):
            problems.append("no message about the skipped copy")
        if sorted(p.name for p in outside.iterdir()) != ["users.wav"]:
            problems.append(f"written outside the input folder: {sorted(p.name for p in outside.iterdir())}")
        results[state] = problems
        print(f"input folder {state}:", problems or "OK", flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--comfy", type=Path, required=True)
    parser.add_argument("--repo", type=Path, required=True)
    parser.add_argument("--golden", type=Path, required=True)
    parser.add_argument("--vocab", type=Path, required=True)
    parser.add_argument("--port", type=int, default=8199)
    parser.add_argument("--out", type=Path, default=Path("build/host-test"))
    args = parser.parse_args()
    comfy, repo = args.comfy.resolve(), args.repo.resolve()
    args.out.mkdir(parents=True, exist_ok=True)
    py = sys.executable
    subprocess.run([py, str(HERE / "make_assets.py"), str(comfy), str(args.golden), str(args.vocab)], check=True)
    test_pack = comfy / "custom_nodes" / "uniavgen_testonly"
    if not test_pack.exists():
        test_pack.symlink_to(HERE / "testonly_pack")
    report = {"comfy": str(comfy), "workflows": {}}

    quick = subprocess.run([py, "main.py", "--cpu", "--quick-test-for-ci"], cwd=comfy, capture_output=True, text=True)
    log = quick.stdout + quick.stderr
    report["quick_test"] = {"rc": quick.returncode, "import_failed": [line for line in log.splitlines()
                                                                      if "IMPORT FAILED" in line]}
    report["input_states"] = pack_loads_whatever_the_input_folder(py, comfy, repo, args.out.resolve() / "inputs")
    tool = repo.parent / "shared" / "tools" / "comfyui-host.sh"
    pid = subprocess.run(["bash", str(tool), "start", str(comfy), str(args.port), "--preview-method", "auto"],
                         capture_output=True, text=True,
                         check=True).stdout.strip()
    try:
        server = Server(args.port)
        info = server.get("/object_info")
        report["web_extension"] = [e for e in server.get("/extensions")
                                   if e.endswith(("/uniavgen_messages.js", "/uniavgen_resolution.js"))]
        shipped = repo / "example_inputs"
        report["example_inputs"] = {n: (comfy / "input" / n).is_file() and (comfy / "input" / n).read_bytes()
                                    == (shipped / n).read_bytes() for n in EXAMPLE_INPUTS}
        ours = sorted(k for k, v in info.items() if k.startswith("UniAVGen") and "testing" not in v["category"])
        report["nodes"] = ours
        report["templates"] = server.get("/workflow_templates")
        report["template_problems"] = template_checks(server, repo.name, report["templates"])
        for path in sorted((repo / "workflows" / "api").glob("*.json")):
            name = path.stem
            api = json.loads(path.read_text())
            result = server.run(api if name == MINI else tiny(api))
            entry = {"accepted": result.get("accepted"), "seconds": result.get("seconds")}
            if not result.get("accepted"):
                entry["problems"] = [f"rejected by /prompt: {json.dumps(result['reply'])[:2000]}"]
            elif result.get("timeout") or result["status"]["status_str"] != "success":
                errors = [m for m in result.get("status", {}).get("messages", []) if m[0] == "execution_error"]
                entry["problems"] = [f"run failed: {json.dumps(errors)[:3000]}" if errors else "timed out"]
            else:
                entry["outputs"], entry["problems"] = check_outputs(comfy, expected(name), result["outputs"])
                entry["ui_messages"] = {k: v["text"] for k, v in result["outputs"].items() if "text" in v}
            report["workflows"][name] = entry
            print(name, "OK" if not entry["problems"] else entry["problems"], entry.get("seconds"), flush=True)
        report["mini_capitals"] = capitals_and_levels(server, comfy, json.loads(
            (repo / "workflows" / "api" / f"{MINI}.json").read_text()))
        print("mini demo, capitalised text", report["mini_capitals"]["problems"] or "OK", flush=True)
        avg = json.loads((repo / "workflows" / "api" / "uniavgen_avg_joint_generation.json").read_text())
        report["bad_vocoder"] = bad_vocoder_refused(server, avg)
        report["models"] = model_checks(server, comfy, avg)
        print("LoRA and fp8", "OK" if not report["models"]["problems"] else report["models"]["problems"], flush=True)
        report["comfy_samplers"] = comfy_sampler_checks(server, comfy, avg, info)
        print("ComfyUI samplers", report["comfy_samplers"]["problems"] or
              f"OK (euler vs the pack's: {report['comfy_samplers'].get('euler_vs_pack', float('nan')):.2e})",
              flush=True)
        report["parallel"] = parallel_checks(server, comfy, avg, int(pid))
        print("Parallel Devices", report["parallel"]["problems"] or "OK", flush=True)
    finally:
        subprocess.run(["bash", str(tool), "stop", pid])
    if "parallel" in report:
        report["parallel"]["after_shutdown"] = wait_until(
            lambda: [p for p in report["parallel"].get("ranks", []) if live(p)])
        if report["parallel"]["after_shutdown"]:
            report["parallel"]["problems"].append(f"ranks outlived ComfyUI: {report['parallel']['after_shutdown']}")
    failures = [n for n, e in report["workflows"].items() if e["problems"]]
    if report["quick_test"]["import_failed"] or report["quick_test"]["rc"] != 0:
        failures.append("quick-test")
    if len(report["nodes"]) < 16:
        failures.append("object_info")
    if report["models"]["problems"]:
        failures.append("models")
    if report.get("parallel", {"problems": ["not run"]})["problems"]:
        failures.append(f"Parallel Devices: {report.get('parallel', {}).get('problems', 'not run')}")
    if report["comfy_samplers"]["problems"]:
        failures.append(f"ComfyUI samplers: {report['comfy_samplers']['problems']}")
    if len(report["web_extension"]) != 2:
        failures.append(f"web extensions served: {report['web_extension']}, want messages and resolution")
    if any(report["input_states"].values()):
        failures.append(f"input folder states: {report['input_states']}")
    if not all(report["example_inputs"].values()):
        failures.append("example inputs")
    if report["template_problems"]:
        failures.append(f"templates: {report['template_problems']}")
    if report["mini_capitals"]["problems"]:
        failures.append(f"mini demo with capitals: {report['mini_capitals']['problems']}")
    if report["bad_vocoder"]:
        failures.append(f"bad vocoder: {report['bad_vocoder']}")
    report["passed"] = not failures
    (args.out / "report.json").write_text(json.dumps(report, indent=1))
    print(json.dumps({"passed": report["passed"], "failures": failures, "nodes": report["nodes"]}))
    return 0 if not failures else 1


if __name__ == "__main__":
    sys.exit(main())

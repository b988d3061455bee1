"""Shared test helpers: where the repository and the golden vectors are, a relative error, random requests
for the tiny golden model, test audio and a tiny vocoder."""
import contextlib
import json
import math
import os
from pathlib import Path

import torch

from uniavgen_core.model.conditioning import Condition
from uniavgen_core.sampling import Request, Task

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "data" / "golden"          # shipped test data: public/ as the official code wrote it


def golden_root() -> Path:
    """The golden folder (public/ inside): UNIAVGEN_GOLDEN when set, else the copy in tests/data."""
    import pytest                           # helpers also serve the host test, which has no pytest
    root = Path(os.environ.get("UNIAVGEN_GOLDEN") or GOLDEN)
    if not (root / "public" / "golden.json").is_file():
        pytest.fail(f"golden vectors not found at {root} (expected public/golden.json there); "
                    f"unset UNIAVGEN_GOLDEN to use the copy in tests/data/golden", pytrace=False)
    return root


def release_vocab() -> Path | None:
    """The release's speech vocabulary (vocab.txt), which the repository does not ship (it has no licence):
    UNIAVGEN_VOCAB, else reference/vocab.txt beside the golden folder UNIAVGEN_GOLDEN names, else beside a
    shared folder next to the repository; None when none of them has it."""
    candidates = [os.environ.get("UNIAVGEN_VOCAB")]
    if os.environ.get("UNIAVGEN_GOLDEN"):
        candidates.append(Path(os.environ["UNIAVGEN_GOLDEN"]).parent / "reference" / "vocab.txt")
    candidates.append(REPO.parent / "shared" / "reference" / "vocab.txt")
    return next((Path(c) for c in candidates if c and Path(c).is_file()), None)


NO_VOCAB = ("needs the release's vocab.txt, which is not shipped (it has no licence): "
            "set UNIAVGEN_VOCAB=/path/to/vocab.txt to run it")


@contextlib.contextmanager
def read_only(folder: Path):
    """`folder`, made when missing, read-only for the block and writable again after it."""
    folder.mkdir(exist_ok=True)
    folder.chmod(0o555)
    try:
        yield folder
    finally:
        folder.chmod(0o755)


def rel_l2(ours: torch.Tensor, ref: torch.Tensor) -> float:
    return float((ours.double() - ref.double()).norm() / ref.double().norm())


def random_ids(gen, length, pad_to=10):
    ids = torch.randint(0, 2545, (length,), generator=gen)
    return torch.cat([ids, torch.full((max(0, pad_to - length),), -1)])


def random_request(task: Task, seed: int, frames=4, h=4, w=6, mel=70, text_len=14, ref_len=0, cond_len=0,
                   caption_len=9, text_dim=64, prior=0) -> Request:
    """prior: clean leading latent frames of a continuation (cond_len: its clean mel rows)."""
    gen = torch.Generator().manual_seed(seed)
    ref = torch.randn(48, 1, h, w, generator=gen)
    cond_latent = torch.randn(48, frames, h, w, generator=gen) if task == Task.V2A else ref
    if prior:
        cond_latent = torch.randn(48, prior, h, w, generator=gen)
    ref_mel = torch.randn(ref_len, 80, generator=gen) if ref_len else None
    cond_mel = torch.randn(cond_len, 80, generator=gen) if cond_len else None
    make = lambda ids, cap: Condition(ids, cap, ref, cond_latent, ref_mel, cond_mel)
    return Request(task,
                   make(random_ids(gen, text_len), torch.randn(caption_len, text_dim, generator=gen)),
                   make(random_ids(gen, 1), torch.randn(2, text_dim, generator=gen)),
                   latent_frames=frames, mel_frames=mel, seed=seed)


def tone(seconds=1.0, rate=24000, channels=1, freq=220.0, batch=1, amplitude=0.4):
    """An AUDIO dict holding a sine."""
    t = torch.arange(round(seconds * rate)) / rate
    wave = amplitude * torch.sin(2 * math.pi * freq * t)
    return {"waveform": wave.expand(batch, channels, -1).clone(), "sample_rate": rate}


def save_tiny_vocoder(folder, loud=False):
    """A tiny random BigVGAN in the Hugging Face folder layout; `loud`: weights large enough for a
    non-trivial waveform."""
    import transformers
    torch.manual_seed(0)
    model = transformers.Qwen2_5OmniToken2WavBigVGANModel(
        transformers.Qwen2_5OmniBigVGANConfig(upsample_initial_channel=64))
    if loud:
        with torch.no_grad():
            for p in model.parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn_like(p) / p[0].numel() ** 0.5)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


# ------------------------------------------------------------------------------------------ training configs

TINY_RUN = {     # a whole training run small enough for a test: 2 clips of 17 frames at 64 px, a 0.3 M model
    "name": "tiny", "out": "run", "log_every": 1, "checkpoint_every": 1, "threads": 1, "device": "cpu",
    "dataset": {"path": "data/train.safetensors", "codec": "data/codec.safetensors", "clips": 2, "codec_clips": 2,
                "frames": 17, "size": 64, "caption_dim": 16, "workers": 1},
    "model": {"dim": 64, "ffn_dim": 96, "num_heads": 2, "num_layers": 2, "text_dim": 16, "text_len": 32,
              "freq_dim": 32, "audio_dim": 64, "audio_ffn_dim": 96, "audio_num_heads": 2, "speech_vocab_size": 33,
              "speech_dim": 32, "speech_conv_layers": 1, "interaction_layers": [0]},
    "optim": {"steps": 2, "batch_size": 2, "warmup": 1, "ema_start": 1},
}


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)                    # a TOML basic string
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if value != value else ("inf" if value > 0 else "-inf")
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


def toml_text(raw: dict) -> str:
    """A training config as TOML: top-level keys, then one table a section."""
    lines = [f"{k} = {toml_value(v)}" for k, v in raw.items() if not isinstance(v, dict) or k == "task_weights"]
    for section, table in raw.items():
        if isinstance(table, dict):
            lines += [f"[{section}]"] + [f"{k} = {toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def with_changes(raw: dict, section: str | None, **changes) -> dict:
    """A copy of a raw training config with some keys of one section (None: the top level) set."""
    raw = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    (raw if section is None else raw.setdefault(section, {})).update(changes)
    return raw


def bad_values(field) -> list:
    """Values a training or model config field refuses, read from its type and declared range: the wrong type,
    just outside each bound, NaN and infinity, a wrong length or a wrong key."""
    from uniavgen_core.model.fields import RULE, Rule
    rule = field.metadata.get(RULE, Rule())
    kind = field.type
    outside = []
    if rule.low is not None:
        outside.append(rule.low if rule.above else rule.low - (1 if kind == "int" or rule.item == "int" else 1e-3))
    if rule.high is not None:
        outside.append(rule.high if rule.below else rule.high + (1 if kind == "int" or rule.item == "int" else 1e-3))
    if kind == "int":
        return [str(v) for v in outside[:1]] + ["1", 1.5, True, None] + [int(v) for v in outside]
    if kind == "float":
        return ["0.5", True, float("nan"), float("inf"), -float("inf")] + outside
    if kind == "str":
        return [5, "", "\x00/", ["x"]]
    if kind == "bool":
        return [1, "true", None]
    if kind == "tuple":
        item = 0.5 if rule.item == "float" else 1
        count = rule.length if rule.length is not None else 1
        too_many = (rule.length if rule.length is not None else rule.most) + 1
        values = ["x", [item] * too_many, [str(item)] * count]
        return values + [[v] * count for v in outside] + ([[]] if rule.length else [])
    if kind == "dict":
        key = rule.choices[0] if rule.choices else "x"
        return [5, [1.0], {"nonsense": 1.0}, {key: "x"}, {key: float("nan")}] + [{key: v} for v in outside]
    raise AssertionError(f"no bad values for {field.name} of type {kind}")


def _stat(pid: str | int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (state first, then the parent), None when gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def live(pid: int) -> bool:
    """Whether pid is a running process (a zombie, ended but not yet reaped, is not)."""
    fields = _stat(pid)
    return fields is not None and fields[0] != "Z"


def children(parent: int) -> dict[int, str]:
    """The live children of `parent` with their command lines, but for multiprocessing's resource tracker (one
    helper that the first spawn starts and that lives as long as its parent)."""
    found = {}
    for folder in Path("/proc").glob("[0-9]*"):
        fields = _stat(folder.name)
        try:
            command = (folder / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if fields and int(fields[1]) == parent and fields[0] != "Z" and "resource_tracker" not in command:
            found[int(folder.name)] = command
    return found


def child_processes() -> list[str]:
    """The command lines of this process's live children (children())."""
    return list(children(os.getpid()).values())

"""The memory a training run needs, estimated from its configuration before anything is built, and the
check that refuses a run that cannot fit (instead of allocating until the machine runs out).

The estimates are deliberately high. One training step holds the weights, their gradients, AdamW's two
moments, the EMA copy and the copy a checkpoint save makes, plus per clip of the batch the activations
autograd keeps: per layer and token about 24 values of the stream's width and 3 of its MLP width (with a
margin), and one attention table per head, all in float32. Measured on the CPU for the mini model, a clip
of a batch took 84 MiB at 49 frames of 128 px (estimated 150), 34 at 17 frames (70), 144 at 97 frames
(293), 193 at 256 px (398) and 408 at 384 px (971). The training set is held whole: once while it is
built (records, then stacked, then serialised: three times its size) and once while training.
"""
from __future__ import annotations

import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch

from .. import units
from ..model.config import UniAVGenConfig
from ..model.dit import UniAVGenModel
from .data import DataConfig

GIB = 2 ** 30
FLOAT = 4                       # bytes: activations and optimizer state are float32
HALF = 2                        # bytes: the training set is stored in float16
SAFETY = 1.5                    # what autograd and the allocator add on top of the counted tensors
PARAM_COPIES = 9                # weights, gradients, 2 AdamW moments, EMA, and a checkpoint's 4 serialised copies
REF_MEL_ROWS = 2 * units.MEL_RATE + 1          # the voice reference: at most 2 s (synthetic.clips.REF_SECONDS)
SPEECH_IDS_PER_SECOND = 30                     # transcript ids a second of speech, generously
CLIPS_PER_CHUNK = 32                           # clips one build worker renders before handing them back (data.build)
HEADROOM = 0.9                  # the share of the available memory a run may plan to use


def latent_grid(data: DataConfig) -> tuple[int, int]:
    """(latent frames, latent side) of the training clips: the video codec is 16x spatially."""
    return units.latent_frames(data.frames), data.size // units.SPATIAL_STRIDE


def clip_bytes(data: DataConfig) -> int:
    """One clip in the training set: latents, mel, voice reference, transcripts, caption and face targets."""
    frames, side = latent_grid(data)
    seconds = data.frames / units.FPS + REF_MEL_ROWS / units.MEL_RATE
    halves = (units.LATENT_CHANNELS * frames * side * side
              + (units.mel_frames(data.frames) + REF_MEL_ROWS) * units.N_MELS + 64 * data.caption_dim)
    return halves * HALF + int(seconds * SPEECH_IDS_PER_SECOND) * 8 + (side // 2) ** 2 * FLOAT


def parameter_count(model: UniAVGenConfig) -> int:
    with torch.device("meta"):
        return sum(p.numel() for p in UniAVGenModel(model).parameters())


def _stream(tokens: int, width: int, mlp: int, heads: int, keys: int) -> int:
    """Values one transformer layer keeps for the backward pass: the projections, norms, residuals and MLP
    of every token (with SAFETY), and one self- and cross-attention table per head (fused attention
    kernels keep less; a plain one keeps about this)."""
    return int(tokens * (24 * width + 3 * mlp) * SAFETY) + heads * tokens * (tokens + keys)


def sample_bytes(model: UniAVGenConfig, data: DataConfig) -> int:
    """The activations one clip of a batch adds to a training step."""
    frames, side = latent_grid(data)
    pt, ph, pw = model.patch_size
    video = math.ceil(frames / pt) * max(1, side // ph) * max(1, side // pw)
    audio = units.mel_frames(data.frames) + REF_MEL_ROWS
    speech = model.text_len + int((data.frames / units.FPS + 2) * SPEECH_IDS_PER_SECOND)
    values = model.num_layers * (_stream(video, model.dim, model.ffn_dim, model.num_heads, model.text_len)
                                 + _stream(audio, model.audio_dim, model.audio_ffn_dim, model.audio_num_heads, speech))
    values += len(model.interaction_layers) * (2 * max(model.num_heads, model.audio_num_heads) * video * audio
                                               + int(12 * (video * model.dim + audio * model.audio_dim) * SAFETY))
    # inputs and targets
    values += int(12 * (units.LATENT_CHANNELS * frames * side * side + audio * units.N_MELS) * SAFETY)
    return values * FLOAT


@dataclass(frozen=True)
class Needs:
    """Bytes a run needs: per training step (fixed part and per clip of the batch), for the training set."""
    weights: int            # weights, gradients, optimizer state, EMA and checkpoint copies
    per_clip: int           # activations of one clip of the batch
    batch: int
    training_set: int       # the set held while training
    build: int              # peak while building the set (0 when it exists)

    @property
    def step(self) -> int:
        return self.weights + self.per_clip * self.batch


def needs(model: UniAVGenConfig, data: DataConfig, batch_size: int, build: bool) -> Needs:
    set_bytes = clip_bytes(data) * data.clips
    render = data.frames * data.size * data.size * 3 * FLOAT * 4       # a rendered clip and its encoding steps
    build_bytes = 3 * set_bytes + data.workers * (render + CLIPS_PER_CHUNK * clip_bytes(data) * 2) if build else 0
    return Needs(parameter_count(model) * FLOAT * PARAM_COPIES, sample_bytes(model, data), batch_size, set_bytes,
                 build_bytes)


def available_memory(device: torch.device) -> int | None:
    """Free memory for a run on `device` in bytes: the GPU's free memory for CUDA, else the system's
    MemAvailable (None where neither can be read)."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def gib(n: int) -> str:
    return f"{n / GIB:.1f} GiB" if n >= GIB / 10 else f"{n / 2 ** 20:.0f} MiB"


class MemoryBudgetError(ValueError):
    """A run whose estimated memory exceeds what is available, with what to lower."""


def check(model: UniAVGenConfig, data: DataConfig, batch_size: int, device: torch.device, build: bool,
          free_disk: int | None = None) -> Needs:
    """Refuse, before anything is built, a run whose training step, training set or set build would not fit
    in the memory available (the GPU's for the step on CUDA) or whose set would not fit on its disk."""
    need = needs(model, data, batch_size, build)
    ram = available_memory(torch.device("cpu"))
    step_room = available_memory(device) if device.type == "cuda" else ram
    shape = f"{data.frames} frames at {data.size} px"
    if step_room is not None and need.step > HEADROOM * step_room:
        fits = int((HEADROOM * step_room - need.weights) // need.per_clip)
        lower = (f"lower [optim] batch_size to {fits} or less (raise grad_accum to keep the effective batch)"
                 if fits >= 1 else "lower [dataset] frames or size, or use a smaller [model]")
        raise MemoryBudgetError(
            f"one training step needs about {gib(need.step)} ({batch_size} clip{'s' if batch_size > 1 else ''} of "
            f"{shape}: {gib(need.per_clip)} "
            f"each, plus {gib(need.weights)} for the weights and optimizer state), but {gib(step_room)} is "
            f"available on {device}: {lower}")
    held = need.training_set if device.type == "cuda" else need.training_set + need.step
    for what, amount in (("building the training set", need.build), ("training", held)):
        if ram is not None and amount > HEADROOM * ram:
            per_clip = clip_bytes(data) * (3 if what.startswith("building") else 1)
            fits = max(0, int((HEADROOM * ram - (amount - per_clip * data.clips)) // per_clip))
            raise MemoryBudgetError(
                f"{what} needs about {gib(amount)} of memory ({data.clips} clips of {shape}, "
                f"{gib(need.training_set)} as a set), but {gib(ram)} is available: lower [dataset] clips to "
                f"{fits} or less, or frames or size")
    if build and free_disk is not None and need.training_set > free_disk:
        raise MemoryBudgetError(f"the training set would take about {gib(need.training_set)} on disk, but its "
                                f"folder has {gib(free_disk)} free: lower [dataset] clips or free some space")
    return need


def free_disk(folder: str | os.PathLike) -> int | None:
    """Free bytes on the disk that holds `folder`, or would hold it once made (its nearest existing parent)."""
    folder = Path(folder).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None

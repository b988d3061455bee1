"""Synthetic training sets in model space, cached as one safetensors file.

Each clip is rendered from its seed, its pictures encoded with the video codec, its speech and
reference voice turned into normalised mels, its transcripts into speech-vocabulary ids and its
caption into caption features. Variable-length parts are stored flat with offsets. Clips are
made in worker processes (one thread each); the file is the same for any worker count.
"""
from __future__ import annotations

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from .. import units
from ..audio.inputs import reference_voice, rescale_peak
from ..audio.mel import log_mel, normalise
from ..audio.speech_tokenizer import SpeechTokenizer
from ..mini.codecs.caption_hash import HashedCaptionEncoder
from ..mini.codecs.video_pca import PatchPCACodec, PCAFitter
from ..model.config import MAX_WIDTH
from ..model.fields import FieldError, ranged, settle
from ..synthetic.clips import MIN_FRAMES, make_clip
from ..synthetic.sentences import VOCAB
from ..units import SAMPLE_RATE
from .objective import Example

TOKENS_PER_SIDE = 32          # pixels per video token side: 16x codec x 2x2 patches
PATH = r"[^\x00]+"            # a path in a config: any text but empty or with a NUL character
MAX_CLIPS = 5_000_000         # training clips: their seeds stop where the codec's begin (codec_seeds)
MAX_SIZE = 4096
MAX_SEED = 2 ** 31 - 1


@dataclass(frozen=True)
class DataConfig:
    """How the synthetic training set is made (paths relative to the config file)."""
    path: str = ranged("build/mini/train.safetensors", pattern=PATH, what="a file path")
    codec: str = ranged("build/mini/video_codec.safetensors", pattern=PATH, what="a file path")
    clips: int = ranged(4000, low=1, high=MAX_CLIPS)
    # clips the video codec is fitted on (other seeds than the training set's)
    codec_clips: int = ranged(256, low=1, high=3_000_000)
    seed: int = ranged(0, low=0, high=MAX_SEED)
    frames: int = ranged(49, low=MIN_FRAMES, high=units.MAX_SECONDS * units.FPS + 1)   # 49: 3.06 s at 16 fps
    size: int = ranged(128, low=TOKENS_PER_SIDE, high=MAX_SIZE)
    caption_dim: int = ranged(64, low=1, high=MAX_WIDTH)
    workers: int = ranged(2, low=1, high=256)

    def __post_init__(self):
        settle(self, "[dataset] ")
        if (self.frames - 1) % units.TEMPORAL_STRIDE:
            raise FieldError(f"[dataset] frames = {self.frames}: must be 4k+1 (e.g. 17, 49, 81)", "frames")
        if self.size % TOKENS_PER_SIDE:
            raise FieldError(f"[dataset] size = {self.size}: must be a multiple of {TOKENS_PER_SIDE} (pixels per "
                             f"video token side)", "size")

    def seeds(self) -> list[int]:
        return [self.seed * 10_000_000 + i for i in range(self.clips)]

    def codec_seeds(self) -> list[int]:
        return [self.seed * 10_000_000 + 5_000_000 + i for i in range(self.codec_clips)]

    def make_clips(self, seeds: list[int]) -> list:
        """The synthetic clips of these seeds, at this set's frames and size."""
        return [make_clip(s, frames=self.frames, size=self.size) for s in seeds]

    def held_out_seeds(self, count: int, split: str = "test") -> list[int]:
        """Seeds no training or codec clip uses: 'test' for the reported numbers, 'validation'
        for choosing sampling settings."""
        base = {"test": 9_000_000, "validation": 8_000_000}[split]
        return [self.seed * 10_000_000 + base + i for i in range(count)]


def fit_codec(cfg: DataConfig, progress=None) -> Path:
    """Fit the video codec on `codec_clips` rendered clips and save it to cfg.codec."""
    fitter = PCAFitter()
    for seed in cfg.codec_seeds():
        fitter.add(make_clip(seed, frames=cfg.frames, size=cfg.size).frames)
        if progress is not None:
            progress(1)
    out = Path(cfg.codec)
    out.parent.mkdir(parents=True, exist_ok=True)
    fitter.finish().save(out)
    return out


def vocabulary_text() -> str:
    """The synthetic speech vocabulary in vocab.txt form: one token per line, space first (id 0)."""
    return "\n".join(VOCAB) + "\n"


def tokenizer() -> SpeechTokenizer:
    return SpeechTokenizer.from_text(vocabulary_text())


def face_targets(mask: torch.Tensor) -> torch.Tensor:
    """Pixel face mask [H, W] -> the face fraction of each video token [H/32, W/32]."""
    return F.avg_pool2d(mask[None, None].float(), TOKENS_PER_SIDE)[0, 0]


def clip_record(seed: int, codec: PatchPCACodec, captions: HashedCaptionEncoder, tok: SpeechTokenizer, frames: int,
                size: int) -> dict:
    """One clip's model-space tensors."""
    clip = make_clip(seed, frames=frames, size=size)
    # the speech at the level the pipeline gives driving audio, the voice prepared as a reference
    wave, _ = rescale_peak(clip.wave)
    voice = reference_voice({"waveform": clip.ref_wave[None, None], "sample_rate": SAMPLE_RATE}).wave
    return {
        "latent": codec.encode(clip.frames).half(),
        "mel": normalise(log_mel(wave)).half(),
        "ref_mel": normalise(log_mel(voice)).half(),
        "text": torch.tensor(tok.encode(clip.text, "en").ids, dtype=torch.int64),
        "ref_text": torch.tensor(tok.encode(clip.ref_text, "en").ids, dtype=torch.int64),
        "caption": captions.encode(clip.caption).half(),
        "face": face_targets(clip.face_mask),
    }


_WORKER: dict = {}


def _init_worker(codec_path: str, caption_dim: int):
    torch.set_num_threads(1)
    _WORKER["codec"] = PatchPCACodec.load(codec_path)
    _WORKER["captions"] = HashedCaptionEncoder(caption_dim)
    _WORKER["tokenizer"] = tokenizer()


def _records(args) -> list[dict]:
    seeds, frames, size = args
    # numpy arrays travel between processes by pickle; torch tensors would each hold a file descriptor
    return [{k: v.numpy() for k, v in clip_record(s, _WORKER["codec"], _WORKER["captions"], _WORKER["tokenizer"],
                                                       frames, size).items()}
            for s in seeds]


FLAT = ("ref_mel", "text", "ref_text", "caption")
FIXED = ("latent", "mel", "face")


def build(out: str | os.PathLike, seeds: list[int], codec_path: str | os.PathLike, caption_dim: int,
          frames: int = 49, size: int = 128, workers: int = 2, progress=None) -> Path:
    """Render, encode and store the clips of `seeds` in `out` (written atomically)."""
    out = Path(out)
    chunks = [seeds[i: i + 32] for i in range(0, len(seeds), 32)]
    records: list[dict] = []
    # fresh (spawned) workers: a forked one would inherit this process's speech-synthesis state
    with ProcessPoolExecutor(max(1, workers), mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(str(codec_path), caption_dim)) as pool:
        for part in pool.map(_records, [(c, frames, size) for c in chunks]):
            records.extend({k: torch.from_numpy(v) for k, v in r.items()} for r in part)
            if progress is not None:
                progress(len(part))
    tensors = {f"{k}s": torch.stack([r[k] for r in records]).contiguous() for k in FIXED}
    for k in FLAT:
        lengths = torch.tensor([0] + [r[k].shape[0] for r in records])
        tensors[f"{k}_flat"] = torch.cat([r[k] for r in records]).contiguous()
        tensors[f"{k}_offsets"] = lengths.cumsum(0)
    meta = {"uniavgen_training_set": "1", "seeds": json.dumps(list(seeds)), "frames": str(frames),
            "size": str(size), "caption_dim": str(caption_dim)}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, out)
    return out


def prepare(cfg: DataConfig) -> None:
    """The video codec and the training set, made when missing (both are cached), with progress bars."""
    from tqdm import tqdm

    if not Path(cfg.codec).is_file():
        with tqdm(total=cfg.codec_clips, desc="fitting the video codec", unit="clip") as bar:
            fit_codec(cfg, progress=bar.update)
    if not Path(cfg.path).is_file():
        with tqdm(total=cfg.clips, desc="building the training set", unit="clip") as bar:
            build(cfg.path, cfg.seeds(), cfg.codec, cfg.caption_dim, cfg.frames, cfg.size, cfg.workers,
                  progress=bar.update)


def check_cached(cfg: DataConfig) -> bool:
    """Whether the training set at cfg.path is there (True) or is to be built (False). One that is there must
    be what cfg describes (clips, frames, size and caption width, read from its header): a set cached for
    other settings is refused instead of being trained on."""
    path = Path(cfg.path)
    if not path.exists():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError) as err:
        raise ValueError(f"[dataset] path {path} is not a readable training set ({err}); delete it to have it "
                         f"built again") from None
    if meta.get("uniavgen_training_set") != "1":
        raise ValueError(f"[dataset] path {path} is not a UniAVGen training set; delete it or give another path")
    try:
        made = {"clips": len(json.loads(meta["seeds"])), "frames": int(meta["frames"]), "size": int(meta["size"]),
                "caption_dim": int(meta["caption_dim"])}
    except (KeyError, TypeError, ValueError):
        raise ValueError(f"[dataset] path {path}: its header is damaged; delete it to have it built again") from None
    for key, value in made.items():
        if getattr(cfg, key) != value:
            raise ValueError(f"the training set {path} was built with {key} = {value}, the config says "
                             f"{getattr(cfg, key)}: delete it to have it built again, or set [dataset] {key} = {value}")
    return True


def load(path: str | os.PathLike) -> list[Example]:
    """The clips of a training set as Examples (half-precision tensors, cast per batch)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no training set at {path}: build it first (make train-demo does)")
    try:
        with safe_open(str(path), framework="pt") as f:
            if (f.metadata() or {}).get("uniavgen_training_set") != "1":
                raise ValueError(f"{path} is not a UniAVGen training set")
            t = {k: f.get_tensor(k) for k in f.keys()}
    except SafetensorError as err:
        raise ValueError(f"{path} is not a readable training set ({err}); delete it to have it built again") from None
    need = {f"{k}s" for k in FIXED} | {f"{k}_{part}" for k in FLAT for part in ("flat", "offsets")}
    missing = sorted(need - set(t))
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}; delete it to have it built again")
    n = t["latents"].shape[0]

    def flat(name, i):
        off = t[f"{name}_offsets"]
        return t[f"{name}_flat"][off[i]: off[i + 1]]

    return [Example(latent=t["latents"][i], mel=t["mels"][i], text_ids=flat("text", i), caption=flat("caption", i),
                    ref_mel=flat("ref_mel", i), ref_ids=flat("ref_text", i), face=t["faces"][i]) for i in range(n)]

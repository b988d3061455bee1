"""Model hyperparameters (docs/MODEL.md §1) and their inference from a checkpoint's tensor shapes."""
from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from .fields import ranged, settle

MAX_LAYERS = 256              # far above any released model; bounds what a corrupt file can make us build
MAX_WIDTH = 1 << 20
# The model's repeated layers, by the state-dict prefix of each stack (docs/MODEL.md §2): the video and
# audio transformer blocks, then the two interactions.
STACKS = ("blocks", "audio_blocks", "a2v_blocks", "v2a_blocks")
INTERACTION_STACKS = STACKS[2:]


def _width(default: int):
    return ranged(default, low=1, high=MAX_WIDTH)


@dataclass(frozen=True)
class UniAVGenConfig:
    # video branch (Wan2.2-TI2V-5B layout, docs/MODEL.md §1.1)
    dim: int = _width(3072)
    ffn_dim: int = _width(14336)
    num_heads: int = _width(24)
    num_layers: int = ranged(30, low=1, high=MAX_LAYERS)
    patch_size: tuple = ranged((1, 2, 2), low=1, high=MAX_WIDTH, length=3)
    in_dim: int = _width(48)
    out_dim: int = _width(48)
    text_dim: int = _width(4096)          # caption (umT5) feature width
    text_len: int = _width(512)           # caption rows after zero padding
    freq_dim: int = _width(256)           # sinusoidal timestep width
    eps: float = ranged(1e-6, low=0, high=1, above=True, below=True)
    qk_norm: bool = True
    cross_attn_norm: bool = True
    window_size: tuple = ranged((-1, -1), length=2)  # self-attention window; only global (-1, -1) exists
    # audio branch (docs/MODEL.md §1.2)
    audio_dim: int = _width(1536)
    audio_ffn_dim: int = _width(8960)
    audio_num_heads: int = _width(12)
    in_audio_dim: int = _width(80)
    out_dim_audio: int = _width(80)
    # speech-text embedding (docs/MODEL.md §1.3)
    speech_vocab_size: int = _width(2545)
    speech_dim: int = _width(512)
    speech_conv_layers: int = ranged(4, low=0, high=MAX_WIDTH)
    speech_conv_mult: int = _width(2)
    # cross-modal interaction (docs/MODEL.md §1.4)
    interaction_layers: tuple = ranged(factory=lambda: tuple(range(0, 30, 2)), low=0, high=MAX_LAYERS - 1,
                                       most=MAX_LAYERS)
    a2v_window: int = _width(5)            # pixel frames; half-window = window // 2 after making it odd

    def __post_init__(self):
        # every field has its type and a sane range, so a hand-edited config.json or a corrupt embedded
        # configuration gets a message naming the field instead of an error deep inside the model build
        settle(self)
        if self.dim % self.num_heads or self.audio_dim % self.audio_num_heads:
            raise ValueError(f"dim {self.dim} / num_heads {self.num_heads} and audio_dim {self.audio_dim} / "
                             f"audio_num_heads {self.audio_num_heads}: each width must divide by its head count")
        if self.head_dim % 2 or self.audio_head_dim % 2:
            raise ValueError(f"dim / num_heads = {self.head_dim} and audio_dim / audio_num_heads = "
                             f"{self.audio_head_dim} are the head dims: both must be even for rotary embeddings")
        if tuple(self.window_size) != (-1, -1):
            raise ValueError(f"window_size {self.window_size}: only global attention (-1, -1) is supported")
        if any(not 0 <= i < self.num_layers for i in self.interaction_layers):
            raise ValueError(f"interaction_layers {self.interaction_layers} outside 0..{self.num_layers - 1}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.num_heads

    @property
    def audio_head_dim(self) -> int:
        return self.audio_dim // self.audio_num_heads

    @classmethod
    def official(cls) -> "UniAVGenConfig":
        """The released UniAVGen model (docs/MODEL.md §1)."""
        return cls()

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping) -> "UniAVGenConfig":
        """Our own field names, or the official `config.json` (unknown keys such as
        `_class_name`, `model_type`, `audio_cond_dim` are ignored: inference never uses them)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    @classmethod
    def from_shapes(cls, shapes: Mapping[str, Sequence[int]], hints: Mapping | None = None) -> "UniAVGenConfig":
        """Infer the configuration from a state dict's tensor shapes (official key names).

        Head counts are not visible in any shape. Unless `hints` (an official config.json)
        gives them, both branches are assumed to share one head dim: the largest power of two
        <= 128 dividing both widths (128 for the released model, 32 for the golden tiny one).
        """
        def shape(key):
            if key not in shapes:
                raise KeyError(key)
            return tuple(shapes[key])

        pe = shape("patch_embedding.weight")           # [dim, in_dim, pt, ph, pw]
        dim, in_dim, patch = pe[0], pe[1], tuple(pe[2:])
        audio_dim, in_audio = shape("audio_embedding.0.weight")
        num_layers = _count_indexed(shapes, "blocks")
        n_inter = _count_indexed(shapes, "a2v_blocks")
        speech_rows, speech_dim = shape("text_embedding.text_embed.weight")
        values = dict(
            dim=dim, in_dim=in_dim, patch_size=patch,
            ffn_dim=shape("blocks.0.ffn.0.weight")[0],
            num_layers=num_layers,
            text_dim=shape("text_embedding_video.0.weight")[1],
            freq_dim=shape("time_embedding.0.weight")[1],
            out_dim=shape("head.head.weight")[0] // math.prod(patch),
            audio_dim=audio_dim, in_audio_dim=in_audio,
            audio_ffn_dim=shape("audio_blocks.0.ffn.0.weight")[0],
            out_dim_audio=shape("head_audio.head.weight")[0],
            qk_norm="blocks.0.self_attn.norm_q.weight" in shapes,
            cross_attn_norm="blocks.0.norm3.weight" in shapes,
            speech_vocab_size=speech_rows - 1,
            speech_dim=speech_dim,
            speech_conv_layers=_count_indexed(shapes, "text_embedding.text_blocks"),
            speech_conv_mult=shape("text_embedding.text_blocks.0.pwconv1.weight")[0] // speech_dim,
            # The release hard-codes layers 0, 2, ..., 28: one interaction block after every even layer.
            interaction_layers=tuple(range(0, 2 * n_inter, 2)),
        )
        head_dim = 128
        while head_dim > 1 and (dim % head_dim or audio_dim % head_dim):
            head_dim //= 2
        values["num_heads"], values["audio_num_heads"] = dim // head_dim, audio_dim // head_dim
        for key in ("num_heads", "audio_num_heads", "text_len", "eps", "window_size"):
            if hints and key in hints:
                values[key] = hints[key]
        return cls(**values)


def _count_indexed(shapes: Mapping, prefix: str) -> int:
    """Number of `prefix.<i>.` blocks; the indices must be 0..n-1 and n at most MAX_LAYERS."""
    pattern = re.compile(re.escape(prefix) + r"\.(\d{1,9})\.")
    indices = {int(m.group(1)) for k in shapes if (m := pattern.match(k))}
    if len(indices) > MAX_LAYERS or (indices and max(indices) >= MAX_LAYERS):
        raise ValueError(f"{prefix}: block index up to {max(indices)}, more than the {MAX_LAYERS} layers any "
                         f"UniAVGen model has")
    if indices and len(indices) != max(indices) + 1:
        missing = sorted(set(range(max(indices) + 1)) - indices)
        raise ValueError(f"{prefix}: blocks {missing[:5]}{'...' if len(missing) > 5 else ''} are missing "
                         f"(found {len(indices)} blocks up to index {max(indices)})")
    return len(indices)

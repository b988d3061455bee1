"""What the model is conditioned on: one sample's inputs, a padded batch of them, and the
per-pass interaction switches."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..units import N_MELS


@dataclass
class Condition:
    """One sample's conditioning, in model space.

    speech_ids   [L] int64 speech-text vocab ids padded with -1 (>= 10 long, docs/MODEL.md §7.5)
    caption      [Lc, text_dim] caption encoder features, unpadded (Lc <= text_len)
    ref_latent   [C, 1, h, w] normalised reference-image latent (prepended frame)
    cond_latent  [C, Tc, h, w] clean frames replacing the first Tc generated frames
                 (the reference latent for AVG/RAVG/A2V, the whole video for V2A)
    ref_mel      [L_ref, 80] normalised reference-voice mel (RAVG) or None
    cond_mel     [S_c, 80] normalised driving mel (A2V), the first S_c generated frames, or None
    """
    speech_ids: torch.Tensor
    caption: torch.Tensor
    ref_latent: torch.Tensor
    cond_latent: torch.Tensor
    ref_mel: torch.Tensor | None = None
    cond_mel: torch.Tensor | None = None

    @property
    def video_cond_frames(self) -> int:
        return self.cond_latent.shape[1]

    @property
    def audio_cond_frames(self) -> int:
        return 0 if self.cond_mel is None else self.cond_mel.shape[0]

    @property
    def ref_len(self) -> int:
        return 0 if self.ref_mel is None else self.ref_mel.shape[0]


@dataclass(frozen=True)
class Switches:
    """Per-sample interaction switches of one forward pass: whether the A2V / V2A residuals
    are added, and the layer pair to skip (skip-layer guidance; <= 0 is off, as released)."""
    a2v: tuple
    v2a: tuple
    skip_layer: tuple

    @classmethod
    def uniform(cls, batch: int, a2v=True, v2a=True, skip_layer=-1) -> "Switches":
        return cls((a2v,) * batch, (v2a,) * batch, (skip_layer,) * batch)

    @classmethod
    def cat(cls, parts: list["Switches"]) -> "Switches":
        """The switches of batches joined in order (as ConditionBatch.cat joins their conditions)."""
        return cls(sum((p.a2v for p in parts), ()), sum((p.v2a for p in parts), ()),
                   sum((p.skip_layer for p in parts), ()))


def _pad_to(x: torch.Tensor, length: int, dim: int, value=0.0) -> torch.Tensor:
    pad = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [0, length - x.shape[dim]]
    return F.pad(x, pad, value=value)


@dataclass
class ConditionBatch:
    """A batch of Conditions as padded tensors, built once per sampling run."""
    speech_ids: torch.Tensor        # [B, Lt] -1 padded
    speech_lens: tuple
    caption: torch.Tensor           # [B, text_len, text_dim] zero padded
    caption_lens: tuple
    ref_latent: torch.Tensor        # [B, C, 1, h, w]
    cond_latent: torch.Tensor       # [B, C, F, h, w] zero past each video_cond_frames
    video_cond_frames: tuple
    ref_mel: torch.Tensor           # [B, max L_ref, 80] zero padded
    ref_lens: tuple
    cond_mel: torch.Tensor          # [B, S, 80] zero past each audio_cond_frames
    audio_cond_frames: tuple

    def __len__(self):
        return len(self.speech_lens)

    @classmethod
    def stack(cls, conds: list[Condition], latent_frames: int, mel_frames: int, text_len: int,
              device=None, dtype=torch.float32) -> "ConditionBatch":
        """Pad and stack; `latent_frames` / `mel_frames` are the generated lengths F and S."""
        for i, c in enumerate(conds):
            _check_condition(c, i, latent_frames, mel_frames, text_len)
        lt = max(c.speech_ids.shape[-1] for c in conds)
        r = max(c.ref_len for c in conds)
        as_f = dict(device=device, dtype=dtype)
        mel = lambda m, n: _pad_to(m.to(**as_f) if m is not None else torch.zeros(0, N_MELS, **as_f), n, 0)
        return cls(
            speech_ids=torch.stack([_pad_to(c.speech_ids.reshape(-1).to(device, torch.long), lt, 0, -1)
                                    for c in conds]),
            speech_lens=tuple(c.speech_ids.shape[-1] for c in conds),
            caption=torch.stack([_pad_to(c.caption.to(**as_f), text_len, 0) for c in conds]),
            caption_lens=tuple(c.caption.shape[0] for c in conds),
            ref_latent=torch.stack([c.ref_latent.to(**as_f) for c in conds]),
            cond_latent=torch.stack([_pad_to(c.cond_latent.to(**as_f), latent_frames, 1) for c in conds]),
            video_cond_frames=tuple(c.video_cond_frames for c in conds),
            ref_mel=torch.stack([mel(c.ref_mel, r) for c in conds]),
            ref_lens=tuple(c.ref_len for c in conds),
            cond_mel=torch.stack([mel(c.cond_mel, mel_frames) for c in conds]),
            audio_cond_frames=tuple(c.audio_cond_frames for c in conds),
        )

    @classmethod
    def cat(cls, batches: list["ConditionBatch"]) -> "ConditionBatch":
        """Concatenate batches (e.g. conditional + unconditional for batched CFG)."""
        lt = max(b.speech_ids.shape[1] for b in batches)
        r = max(b.ref_mel.shape[1] for b in batches)
        return cls(
            speech_ids=torch.cat([_pad_to(b.speech_ids, lt, 1, -1) for b in batches]),
            speech_lens=sum((b.speech_lens for b in batches), ()),
            caption=torch.cat([b.caption for b in batches]),
            caption_lens=sum((b.caption_lens for b in batches), ()),
            ref_latent=torch.cat([b.ref_latent for b in batches]),
            cond_latent=torch.cat([b.cond_latent for b in batches]),
            video_cond_frames=sum((b.video_cond_frames for b in batches), ()),
            ref_mel=torch.cat([_pad_to(b.ref_mel, r, 1) for b in batches]),
            ref_lens=sum((b.ref_lens for b in batches), ()),
            cond_mel=torch.cat([b.cond_mel for b in batches]),
            audio_cond_frames=sum((b.audio_cond_frames for b in batches), ()),
        )


def _check_condition(c: Condition, i: int, frames: int, mel_frames: int, text_len: int):
    where = f"condition {i}"
    if c.speech_ids.dim() not in (1, 2) or c.speech_ids.dtype not in (torch.int64, torch.int32):
        raise ValueError(f"{where}: speech_ids must be integer vocab ids of shape [L], got "
                         f"{tuple(c.speech_ids.shape)} {c.speech_ids.dtype}")
    if c.caption.dim() != 2 or c.caption.shape[0] > text_len:
        raise ValueError(f"{where}: caption features must be [tokens <= {text_len}, width], got "
                         f"{tuple(c.caption.shape)}; shorten the prompt")
    if c.ref_latent.dim() != 4 or c.ref_latent.shape[1] != 1:
        raise ValueError(f"{where}: ref_latent must be one latent frame [C, 1, h, w], got {tuple(c.ref_latent.shape)}")
    if c.cond_latent.dim() != 4 or c.cond_latent.shape[2:] != c.ref_latent.shape[2:]:
        raise ValueError(f"{where}: cond_latent {tuple(c.cond_latent.shape)} must be [C, frames, h, w] with the "
                         f"reference latent's size {tuple(c.ref_latent.shape[2:])}")
    if not 1 <= c.video_cond_frames <= frames:
        raise ValueError(f"{where}: {c.video_cond_frames} conditioning latent frames for a {frames}-frame video; "
                         f"give between 1 and {frames}")
    if c.audio_cond_frames > mel_frames:
        raise ValueError(f"{where}: driving audio has {c.audio_cond_frames} mel frames but only {mel_frames} are "
                         f"generated; trim the audio or raise the duration")
    for name, m in (("ref_mel", c.ref_mel), ("cond_mel", c.cond_mel)):
        if m is not None and (m.dim() != 2 or m.shape[1] != N_MELS):
            raise ValueError(f"{where}: {name} must be a [frames, {N_MELS}] mel, got {tuple(m.shape)}")

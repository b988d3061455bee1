"""The training objective: rectified flow on both branches with per-sample task mixing.

Each sample of a batch is given one task, and the task decides what is clean conditioning and
what is generated, exactly in the layout the model sees at inference:

    AVG           reference picture; first latent frame clean (it is the reference picture)
    RAVG          AVG + a reference voice (another utterance of the same speaker) and its transcript
    A2V           AVG + the whole mel clean (driving audio): video loss only
    V2A           every latent frame clean (driving video): audio loss only
    continuation  k clean leading latent frames and the m mel frames they cover
    a2v_continuation   k clean leading latent frames and the whole mel clean: video loss only
    v2a_continuation   every latent frame clean and the m mel frames k frames cover: audio loss only

Generated parts follow the sampler's convention: x_s = (1 - s) x0 + s eps, the model predicts
eps - x0 at t = 1000 s, with s drawn through the inference shift. Clean parts carry no loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .. import units
from ..units import N_MELS
from ..audio.speech_tokenizer import FILLER, MIN_IDS
from ..model.conditioning import Condition, ConditionBatch, Switches
from ..model.config import MAX_WIDTH
from ..model.fields import FieldError, ranged, settle, shown
from ..model.sinusoid import timestep_sinusoid
from ..sampling import flow
from ..sampling.flow import NUM_TIMESTEPS
from ..sampling.tasks import TASKS, Task, Voice


@dataclass
class Example:
    """One training clip in model space."""
    latent: torch.Tensor            # [C, T, h, w] normalised latents; frame 0 is the first picture alone
    mel: torch.Tensor               # [S, 80] normalised mel, S = mel frames of the clip
    text_ids: torch.Tensor          # [L] speech vocabulary ids of the transcript
    caption: torch.Tensor           # [Lc, text_dim] caption features
    ref_mel: torch.Tensor | None = None      # [Lr, 80] another utterance of the same voice
    ref_ids: torch.Tensor | None = None      # its transcript's ids
    face: torch.Tensor | None = None         # [h/2, w/2] face fraction per video token (FAM target)


TASK_NAMES = tuple(t.name.lower() for t in Task)


@dataclass(frozen=True)
class MixConfig:
    task_weights: dict = ranged(factory=lambda: {"avg": 0.25, "ravg": 0.2, "a2v": 0.2, "v2a": 0.2,
                                                 "continuation": 0.15},
                                choices=TASK_NAMES, item="float", low=0, high=1e6)
    # caption and transcript replaced by the null prompt (for CFG)
    text_dropout: float = ranged(0.1, low=0, high=1)
    # both interactions off (MA-CFG's null pass is in distribution)
    interaction_dropout: float = ranged(0.1, low=0, high=1)
    # caption, transcript and both interactions dropped together: MA-CFG's unconditional pass exactly, which the
    # two dropouts above reach only as their product (1 % at 0.1 each). 0: only that product
    null_dropout: float = ranged(0.0, low=0, high=1)
    # s = shift u / (1 + (shift - 1) u), u ~ U(0, 1): the inference shift
    shift: float = ranged(5.0, low=0, high=1000, above=True)
    # the fraction of samples whose noise level is drawn uniformly (s = u) instead: more training near the clean
    # end, where the shift leaves few samples and a coarse grid's last step lies (docs/mini_model.md)
    uniform_fraction: float = ranged(0.0, low=0, high=1)
    # the video loss of a sample at noise level s weighs (1 - a) + a p_uniform(s) / p_shifted(s): at a = 1 the
    # video is trained as if its levels were drawn uniformly (5 times the weight at the clean end, where its
    # velocity turns late, 1/5 at pure noise for shift 5), while the audio keeps the shift's levels; p_shifted is
    # the shift's density alone (uniform_fraction 0). 0: off. Tried on the small model: docs/mini_model.md
    video_uniform_weight: float = ranged(0.0, low=0, high=1)
    fam_weight: float = ranged(0.1, low=0, high=1000)       # weight of the face-mask loss
    space_id: int = ranged(0, low=0, high=MAX_WIDTH)        # the vocabulary's space token: the null transcript
    # timesteps the model is told are moved by up to this many (of 1000) either way, the noise level and the
    # target kept: the model cannot lean on features of t finer than that, so its velocity is smooth in t
    # (docs/mini_model.md). 0 tells it the exact timestep, as the release.
    t_jitter: float = ranged(0.0, low=0, high=100)
    # the video loss weighs latent channel c by std_c ** p (the codec's pixel scale of the channel, normalised to
    # a mean weight of 1): 0 weighs every normalised channel alike, as the release's loss; 2 is the error in
    # pixels, where a channel's error is as visible as its pixel variance (docs/mini_model.md)
    video_channel_power: float = ranged(0.0, low=0, high=4)
    # weight of a penalty on the time codes' change for a unit step of t (`time_code_roughness`): the velocity
    # depends on t only through them, so this smooths it in t where jitter alone leaves a wobble. 0: off
    t_smoothness: float = ranged(0.0, low=0, high=1e6)

    def __post_init__(self):
        settle(self, "[mix] ")
        if not sum(self.task_weights.values()) > 0:
            raise FieldError(f"[mix] task_weights = {shown(self.task_weights)}: must give some task a weight "
                             f"above 0", "task_weights")

    def weights(self) -> torch.Tensor:
        w = torch.tensor([self.task_weights.get(n, 0.0) for n in TASK_NAMES], dtype=torch.float64)
        return w / w.sum()


@dataclass
class Batch:
    """Model inputs, targets and loss masks of one training batch."""
    video: torch.Tensor             # [B, C, T, h, w] noisy latents (clean frames are replaced by the model)
    audio: torch.Tensor             # [B, S, 80]
    t: torch.Tensor                 # [B] timesteps in [0, 1000]
    cond: ConditionBatch
    switches: Switches
    target_video: torch.Tensor      # [B, C, T, h, w] eps - x0
    target_audio: torch.Tensor      # [B, S, 80]
    video_weight: torch.Tensor      # [B, 1, T, 1, 1] 1 where the frame is generated
    audio_weight: torch.Tensor      # [B, S, 1]
    face: torch.Tensor | None       # [B, h/2, w/2] FAM target, NaN where the clip has none
    tasks: list


def _ids(*parts: torch.Tensor) -> torch.Tensor:
    return torch.cat([p.reshape(-1).long() for p in parts])


def build_batch(examples: list[Example], gen: torch.Generator, mix: MixConfig, text_len: int,
                device=None) -> Batch:
    """Draw tasks, dropouts, noise levels and noise for `examples` (same T and S) from `gen`."""
    b = len(examples)
    c, frames, h, w = examples[0].latent.shape
    n_mel = examples[0].mel.shape[0]
    for e in examples:
        if e.latent.shape != (c, frames, h, w) or e.mel.shape[0] != n_mel:
            raise ValueError("a training batch needs clips of one length and size")
    tasks = [Task(int(i)) for i in torch.multinomial(mix.weights(), b, replacement=True, generator=gen)]
    drop_text = (torch.rand(b, generator=gen) < mix.text_dropout).tolist()
    drop_inter = (torch.rand(b, generator=gen) < mix.interaction_dropout).tolist()
    cut = torch.randint(2, max(3, frames), (b,), generator=gen).tolist()       # continuation's clean frames
    u = torch.rand(b, generator=gen)
    s = flow.shifted(u, mix.shift)
    if mix.uniform_fraction:    # drawn only when asked, so that a run without it draws exactly what it always did
        s = torch.where(torch.rand(b, generator=gen) < mix.uniform_fraction, u, s)
    eps_v = torch.randn((b, c, frames, h, w), generator=gen)
    eps_a = torch.randn((b, n_mel, N_MELS), generator=gen)
    told = s * NUM_TIMESTEPS
    if mix.t_jitter:        # drawn last, so that a run without jitter draws exactly what it always did
        told = (told + (torch.rand(b, generator=gen) * 2 - 1) * mix.t_jitter).clamp(0, NUM_TIMESTEPS)
    if mix.null_dropout:    # drawn after the jitter, for the same reason
        null = (torch.rand(b, generator=gen) < mix.null_dropout).tolist()
        drop_text = [d or n for d, n in zip(drop_text, null)]
        drop_inter = [d or n for d, n in zip(drop_inter, null)]

    space = torch.tensor([mix.space_id])
    conds, video_cond_frames, audio_cond_frames = [], [], []
    for e, task, dropped, k in zip(examples, tasks, drop_text, cut):
        if TASKS[task].voice == Voice.NEEDED and (e.ref_mel is None or e.ref_ids is None):
            task = Task.AVG
        spec = TASKS[task]
        x0 = e.latent.float()
        prior = min(k, frames - 1)              # a continuation's prior clip: its frames and the rows they cover
        vc = spec.video_cond_frames(frames, prior=prior)
        ac = spec.audio_cond_rows(n_mel, prior=min(n_mel - 1, units.mel_frames(units.video_frames(prior))))
        voice = spec.voice == Voice.NEEDED      # a voice only where the task cannot do without one
        ref_mel = e.ref_mel.float() if voice else None
        if voice:                               # transcripts as at inference: reference + space + text
            ids = _ids(e.ref_ids, space) if dropped else _ids(e.ref_ids, space, e.text_ids)
        else:
            ids = space if dropped else _ids(e.text_ids)
        ids = F.pad(ids, (0, max(0, MIN_IDS - len(ids))), value=FILLER)
        caption = e.caption[:0] if dropped else e.caption
        conds.append(Condition(ids, caption.float(), x0[:, :1], x0[:, :vc], ref_mel,
                               e.mel[:ac].float() if ac else None))
        video_cond_frames.append(vc)
        audio_cond_frames.append(ac)

    x0_v = torch.stack([e.latent.float() for e in examples])
    x0_a = torch.stack([e.mel.float() for e in examples])
    sv, sa = s.view(b, 1, 1, 1, 1), s.view(b, 1, 1)
    frame = torch.arange(frames)
    video_weight = (frame[None] >= torch.tensor(video_cond_frames)[:, None]).float().view(b, 1, frames, 1, 1)
    audio_weight = (torch.arange(n_mel)[None] >= torch.tensor(audio_cond_frames)[:, None]).float()[..., None]
    if mix.video_uniform_weight:
        a = mix.video_uniform_weight
        video_weight = video_weight * ((1 - a) + a * flow.shifted_slope(s, mix.shift)).view(b, 1, 1, 1, 1)
    faces = torch.stack([e.face.float() if e.face is not None else torch.full((h // 2, w // 2), float("nan"))
                         for e in examples])
    on = tuple(not d for d in drop_inter)
    move = lambda x: x.to(device) if device is not None else x
    return Batch(
        video=move(flow.noisy(x0_v, eps_v, sv)), audio=move(flow.noisy(x0_a, eps_a, sa)),
        t=move(told),
        cond=ConditionBatch.stack(conds, frames, n_mel, text_len, device),
        switches=Switches(on, on, (-1,) * b),
        target_video=move(flow.velocity(x0_v, eps_v)), target_audio=move(flow.velocity(x0_a, eps_a)),
        video_weight=move(video_weight), audio_weight=move(audio_weight), face=move(faces), tasks=tasks)


def _masked_mse(pred, target, weight):
    """Mean squared error over the weighted (generated) elements; 0 when there are none."""
    err = (pred.float() - target).square() * weight
    count = weight.expand_as(err).sum()
    return err.sum() / count.clamp(min=1)


def channel_weights(channel_std: torch.Tensor, power: float) -> torch.Tensor | None:
    """[1, C, 1, 1, 1] weights of the video loss's latent channels, std ** power with a mean of 1; None for
    power 0 (every channel alike)."""
    if not power:
        return None
    w = channel_std.double().clamp(min=1e-12) ** power
    return (w / w.mean()).float().view(1, -1, 1, 1, 1)


def time_code_roughness(model, t: torch.Tensor) -> torch.Tensor:
    """The squared change of the time codes for a unit step of t at the timesteps `t` [B], relative to their mean
    square, averaged over the two branches. A branch's code is its time embedding and the block modulation made
    from it, everything through which t reaches the velocity; a unit of t is the smoothness measurement's step.
    Computed in float32 also under autocast: a unit step changes the codes by about as much as bf16 rounds them."""
    t = t.float().clamp(0, NUM_TIMESTEPS - 1)
    both = torch.stack([t, t + 1])
    freq_dim = model.config.freq_dim
    parts = []
    with torch.autocast(t.device.type, enabled=False):
        for embed, project in ((model.time_embedding, model.time_projection),
                               (model.time_embedding_audio, model.time_projection_audio)):
            e = embed(timestep_sinusoid(both, freq_dim))
            code = torch.cat([e, project(e)], dim=-1)
            parts.append((code[1] - code[0]).square().mean() / code[0].detach().square().mean().clamp(min=1e-12))
    return sum(parts) / len(parts)


def losses(model, batch: Batch, mix: MixConfig, video_channels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Per-branch flow losses, the face-mask loss and their weighted sum ('total'); video_channels: the video
    loss's channel weights (`channel_weights`), None for none."""
    want_masks = mix.fam_weight > 0 and bool(torch.isfinite(batch.face).any())
    out = model(batch.video, batch.audio, batch.t, batch.cond, batch.switches, capture_masks=want_masks)
    video_weight = batch.video_weight if video_channels is None else batch.video_weight * video_channels.to(
        batch.video_weight)
    video = _masked_mse(out.video[:, :, 1:], batch.target_video, video_weight)   # ref frame dropped
    audio = _masked_mse(out.audio, batch.target_audio, batch.audio_weight)
    result = {"video": video, "audio": audio}
    total = video + audio
    if want_masks:
        # masks [B, layers, T, h/2, w/2] against the clip's face fraction, over samples that have one
        has = torch.isfinite(batch.face)
        target = torch.nan_to_num(batch.face)[:, None, None].expand_as(out.face_masks)
        weight = has[:, None, None].expand_as(out.face_masks).float()
        bce = F.binary_cross_entropy(out.face_masks.clamp(1e-6, 1 - 1e-6), target, reduction="none")
        result["fam"] = (bce * weight).sum() / weight.sum().clamp(min=1)
        total = total + mix.fam_weight * result["fam"]
    if mix.t_smoothness:
        result["t_code"] = time_code_roughness(model, batch.t)
        total = total + mix.t_smoothness * result["t_code"]
    result["total"] = total
    return result

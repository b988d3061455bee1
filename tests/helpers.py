"""Random requests for the tiny golden model."""
import torch

from uniavgen_core.conditioning import Condition
from uniavgen_core.sampler import Request, Task


def random_ids(gen, length, pad_to=10):
    ids = torch.randint(0, 2545, (length,), generator=gen)
    return torch.cat([ids, torch.full((max(0, pad_to - length),), -1)])


def random_request(task: Task, seed: int, frames=4, h=4, w=6, mel=70, text_len=14, ref_len=0, cond_len=0,
                   caption_len=9, text_dim=64) -> Request:
    gen = torch.Generator().manual_seed(seed)
    ref = torch.randn(48, 1, h, w, generator=gen)
    cond_latent = torch.randn(48, frames, h, w, generator=gen) if task == Task.V2A else ref
    ref_mel = torch.randn(ref_len, 80, generator=gen) if ref_len else None
    cond_mel = torch.randn(cond_len, 80, generator=gen) if cond_len else None
    make = lambda ids, cap: Condition(ids, cap, ref, cond_latent, ref_mel, cond_mel)
    return Request(task,
                   make(random_ids(gen, text_len), torch.randn(caption_len, text_dim, generator=gen)),
                   make(random_ids(gen, 1), torch.randn(2, text_dim, generator=gen)),
                   latent_frames=frames, mel_frames=mel, seed=seed)

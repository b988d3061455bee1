"""What a host's ranks run (RankPool sends them by reference): the model of a file loaded on a rank's device, and
a long job whose segments are sampled on the ranks. One sample is `sample_on_rank` itself."""
from __future__ import annotations

import functools
import os

import torch

from ..checkpoint.loading import open_model
from ..frontend.jobs import Inputs
from ..frontend.long import LongResult, generate_long
from ..model.attention import resolve_backend
from ..model.dit import UniAVGenModel
from ..sampling import SamplingParams
from .layout import ParallelConfig
from .run import sample_on_rank


def load_on_rank(device: torch.device, path: str | os.PathLike, weight_dtype: str, attention: str) -> UniAVGenModel:
    """The model of `path` on `device`, as the Model Loader's weight_dtype and attention choices make it."""
    model = open_model(path, weight_dtype, device)
    model.attention_backend = resolve_backend(attention)
    return model


def long_on_rank(model: UniAVGenModel, config: ParallelConfig, inputs: Inputs, trained_frames: int,
                 params: SamplingParams, callback=None, **long_kwargs) -> LongResult:
    """generate_long(model, inputs, trained_frames, params, **long_kwargs) with every segment sampled as `config`
    splits it; `callback` gets generate_long's progress."""
    return generate_long(model, inputs, trained_frames, params, progress=callback,
                         sample_fn=functools.partial(sample_on_rank, config=config), **long_kwargs)

"""Sampling on several ranks: `sample_on_rank` inside an initialised process group (e.g. the ranks of
`launch.run_on_ranks`)."""
from __future__ import annotations

import contextlib
import functools

from ..model.dit import UniAVGenModel
from ..sampling import Request, SampleResult, SamplingParams, sample
from .cfg import CfgParallelVelocity
from .layout import Groups, ParallelConfig
from .ulysses import SequenceParallel


def check_run(config: ParallelConfig, params: SamplingParams, latent_frames: int, **sample_kwargs) -> None:
    """What a parallel run of samples of at least `latent_frames` latent frames cannot do, named before any
    process starts."""
    if params.cache:
        raise ValueError("the step cache decides per step which passes run, so it cannot run parallel: "
                         "set cache to 0 or sample on one device")
    if sample_kwargs.get("wrap_velocity"):
        raise ValueError("wrap_velocity is not available in a parallel run: sample on one device for it")
    if config.ulysses_ranks > 1:
        config.check_frames(latent_frames)


def sample_on_rank(model: UniAVGenModel, requests: list[Request], params: SamplingParams, config: ParallelConfig,
                   **sample_kwargs) -> SampleResult:
    """`sample(model, requests, params, **sample_kwargs)` with its passes and video tokens split as `config`
    says; every rank of the default process group calls it with the same arguments and gets the same video and
    audio (captured face masks: on the ranks of the conditional pass, rank 0 among them)."""
    check_run(config, params, min(r.latent_frames for r in requests), **sample_kwargs)
    sample_kwargs.pop("wrap_velocity", None)            # None: check_run refuses any other
    groups = Groups.create(config)
    wrap = None if groups.cfg is None else functools.partial(CfgParallelVelocity, pair=groups.cfg,
                                                             index=groups.cfg_index)
    split = SequenceParallel(model, groups.ulysses) if groups.ulysses is not None else contextlib.nullcontext()
    with split:
        return sample(model, requests, params, wrap_velocity=wrap, **sample_kwargs)

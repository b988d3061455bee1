"""How many bytes a parallel run exchanges in one sampling step (one guided velocity), from the shapes alone.

Per forward on U Ulysses ranks, each holding k = ceil((1 + F) / U) frames of n patches (L = k n tokens):
  every layer pair run: q, k and v to head-split and the output back, 4 all-to-alls of B L H' D elements of
  which (U - 1) / U leave the rank (H' the heads padded to a multiple of U);
  every interaction run: an all-gather of the B L d video states, (U - 1) copies sent;
  the head: an all-gather of its B L (patch volume x C) float32 output.
CFG: one all-gather of the float32 velocity (video with the reference frame, and audio) per pass.
Ulysses alone runs both passes as one forward of 2 B; with CFG each half runs one pass of B, and the
unconditional half skips the skip-guidance layer, and every interaction while MA-CFG is on.
"""
from __future__ import annotations

import math

from ..model.config import UniAVGenConfig
from .layout import ParallelConfig


def step_bytes(config: UniAVGenConfig, parallel: ParallelConfig, latent_frames: int, height: int, width: int,
               mel_rows: int, requests: int = 1, element: int = 2, macfg: bool = False, skip_layer: int = 11) -> int:
    """Bytes all ranks together send in one step of `requests` requests of F = latent_frames latent frames of
    height x width latents and `mel_rows` mel rows; `element`: bytes of the compute dtype (bf16: 2); `macfg`:
    a step whose unconditional pass is MA-CFG's interaction-free one; `skip_layer` as SamplingParams.slg_layer.
    Assumes the conditional pass has an interaction on (every task's does)."""
    pt, ph, pw = config.patch_size
    frames, n = 1 + latent_frames // pt, (height // ph) * (width // pw)
    u, layers, interactions = parallel.ulysses_ranks, config.num_layers, len(config.interaction_layers)
    local, others = math.ceil(frames / u) * n, u - 1          # tokens a rank holds, ranks it sends to
    heads = math.ceil(config.num_heads / u) * u

    def forward(batch: int, layers_run: int, interactions_run: int) -> int:
        """Bytes the U ranks of one group send in one forward of `batch` samples."""
        if u == 1:
            return 0
        exchange = 4 * batch * local * (heads // u) * others * config.head_dim * element
        gather = batch * local * config.dim * element * others
        head = batch * local * pt * ph * pw * config.out_dim * 4 * others
        return u * (layers_run * exchange + interactions_run * gather + head)

    if parallel.cfg_ranks == 1:
        return forward(2 * requests, layers, interactions)
    velocity = requests * (config.out_dim * frames * pt * height * width + mel_rows * config.out_dim_audio) * 4
    skips = 0 < skip_layer < layers
    null = forward(requests, layers - skips, 0 if macfg else interactions - (skips and skip_layer in
                                                                                config.interaction_layers))
    return parallel.ranks * velocity + forward(requests, layers, interactions) + null


def predicted_speedup(config: UniAVGenConfig, parallel: ParallelConfig, latent_frames: int, height: int, width: int,
                      mel_rows: int, seconds_alone: float, link: float, element: int = 2, macfg_fraction: float = 0.5,
                      skip_layer: int = 11) -> float:
    """One device's step time over the parallel step's: each rank computes its share of `seconds_alone` (a
    pass of the two with CFG, ceil((1 + F) / U) of the 1 + F video frames with Ulysses; the audio branch, under
    1 % of the work at the release's shape, counted as shared too), then sends its share of the step's bytes at
    `link` bytes a second, nothing overlapped (a floor where transfers hide behind compute). The bytes are
    averaged over MA-CFG's steps (`macfg_fraction` of them) and the later ones."""
    frames = 1 + latent_frames // config.patch_size[0]
    u = parallel.ulysses_ranks
    compute = seconds_alone / parallel.cfg_ranks * math.ceil(frames / u) / frames
    sent = sum(share * step_bytes(config, parallel, latent_frames, height, width, mel_rows, element=element,
                                  macfg=macfg, skip_layer=skip_layer)
               for share, macfg in ((macfg_fraction, True), (1 - macfg_fraction, False)))
    return seconds_alone / (compute + sent / parallel.ranks / link)

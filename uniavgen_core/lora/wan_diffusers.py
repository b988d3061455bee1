"""Wan2.2-TI2V-5B LoRAs in the diffusers layout (`blocks.N.attn1.to_q`, `attn2`, `ffn.net.0.proj`,
`condition_embedder.*`, `proj_out`): the video branch has Wan's layout, so they apply to it."""
from __future__ import annotations

import re

from .layouts import register, strip_prefix

# diffusers' Wan names -> Wan's (and so the video branch's) names
_DIFFUSERS_WAN = [
    (r"^blocks\.(\d+)\.attn1\.to_q$", r"blocks.\1.self_attn.q"),
    (r"^blocks\.(\d+)\.attn1\.to_k$", r"blocks.\1.self_attn.k"),
    (r"^blocks\.(\d+)\.attn1\.to_v$", r"blocks.\1.self_attn.v"),
    (r"^blocks\.(\d+)\.attn1\.to_out\.0$", r"blocks.\1.self_attn.o"),
    (r"^blocks\.(\d+)\.attn2\.to_q$", r"blocks.\1.cross_attn.q"),
    (r"^blocks\.(\d+)\.attn2\.to_k$", r"blocks.\1.cross_attn.k"),
    (r"^blocks\.(\d+)\.attn2\.to_v$", r"blocks.\1.cross_attn.v"),
    (r"^blocks\.(\d+)\.attn2\.to_out\.0$", r"blocks.\1.cross_attn.o"),
    (r"^blocks\.(\d+)\.ffn\.net\.0\.proj$", r"blocks.\1.ffn.0"),
    (r"^blocks\.(\d+)\.ffn\.net\.2$", r"blocks.\1.ffn.2"),
    (r"^condition_embedder\.time_embedder\.linear_1$", "time_embedding.0"),
    (r"^condition_embedder\.time_embedder\.linear_2$", "time_embedding.2"),
    (r"^condition_embedder\.time_proj$", "time_projection.1"),
    (r"^condition_embedder\.text_embedder\.linear_1$", "text_embedding_video.0"),
    (r"^condition_embedder\.text_embedder\.linear_2$", "text_embedding_video.2"),
    (r"^proj_out$", "head.head"),
]
# Wan's own name of the caption MLP is UniAVGen's speech-text embedding's: renamed here
_WAN_CAPTION = [(r"^text_embedding\.([02])$", r"text_embedding_video.\1")]


@register("wan-diffusers")
def wan_diffusers_names(model_layers):
    layers = set(model_layers)

    def resolve(name: str) -> str | None:
        bare = strip_prefix(name)
        for pattern, repl in _DIFFUSERS_WAN + _WAN_CAPTION:
            if re.match(pattern, bare):
                target = re.sub(pattern, repl, bare)
                return target if target in layers else None
        return None
    return resolve

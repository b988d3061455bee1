"""Attention backends: dispatch, fallbacks and their reasons."""
import torch

from helpers import rel_l2
from helpers import random_request
from uniavgen_core import attention as attn
from uniavgen_core.sampler import SamplingParams, Task, sample


def test_sdpa_matches_the_definition():
    q = torch.randn(2, 5, 3, 8)
    mask = torch.tensor([[True] * 7, [True] * 4 + [False] * 3])
    k, v = torch.randn(2, 7, 3, 8), torch.randn(2, 7, 3, 8)
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / 8 ** 0.5
    logits = logits.masked_fill(~mask[:, None, None, :], float("-inf"))
    expected = torch.einsum("bhqk,bkhd->bqhd", logits.softmax(-1), v).flatten(2)
    assert torch.allclose(attn.attention(q, k, v, mask), expected, atol=1e-5)


def test_a_float_key_mask_is_added_to_the_logits_in_float32():
    q, k, v = (torch.randn(2, 5, 3, 8) for _ in range(3))
    bias = torch.tensor([[0.0, 0.0, 2.5, float("-inf"), 0.0], [0.0, -1.0, 0.0, 0.0, float("-inf")]])
    logits = torch.einsum("bqhd,bkhd->bhqk", q, k) / 8 ** 0.5 + bias[:, None, None, :]
    expected = torch.einsum("bhqk,bkhd->bqhd", logits.softmax(-1), v).flatten(2)
    assert torch.allclose(attn.attention(q, k, v, bias), expected, atol=1e-5)
    low = attn.attention(q.bfloat16(), k.bfloat16(), v.bfloat16(), bias)      # the bias stays float32
    assert low.dtype == torch.bfloat16 and rel_l2(low.float(), expected) < 1e-2


def test_unavailable_backends_fall_back_with_a_reason(caplog):
    assert attn.unavailable_reason("sdpa") is None
    assert "unknown attention backend" in attn.unavailable_reason("xformers")
    reason = attn.unavailable_reason("flash_attn")
    assert reason and ("CUDA" in reason or "not installed" in reason)
    with caplog.at_level("WARNING", logger="UniAVGen"):
        assert attn.resolve_backend("sage") == "sdpa"
    assert "using sdpa" in caplog.text
    assert attn.resolve_backend("auto") in ("sdpa", "flash_attn", "sage")


def test_kernel_gets_unmasked_half_precision_calls_only(monkeypatch):
    calls = []

    def kernel(q, k, v):
        calls.append(tuple(q.shape))
        return attn._sdpa(q, k, v)

    monkeypatch.setitem(attn.BACKENDS, "fake", (kernel, ()))
    q = torch.randn(1, 4, 2, 8, dtype=torch.bfloat16)
    monkeypatch.setattr(torch.Tensor, "is_cuda", property(lambda self: True))
    with attn.use_backend("fake"):
        attn.attention(q, q, q)
        attn.attention(q, q, q, key_mask=torch.tensor([[True, True, True, False]]))
        attn.attention(q.float(), q.float(), q.float())
    assert calls == [(1, 4, 2, 8)]


def test_model_forward_uses_the_selected_backend(tiny_model, monkeypatch):
    seen = []

    def kernel(q, k, v):
        seen.append(q.shape[1])
        return attn._sdpa(q, k, v)

    monkeypatch.setitem(attn.BACKENDS, "fake", (kernel, ()))
    # route every unmasked call through the kernel, whatever the device and dtype
    real = attn.attention
    monkeypatch.setattr(attn, "attention", lambda q, k, v, key_mask=None: (
        kernel(q, k, v).flatten(2) if key_mask is None and attn._backend == "fake" else real(q, k, v, key_mask)))
    import uniavgen_core.layers as layers
    import uniavgen_core.interaction as interaction
    monkeypatch.setattr(layers, "attention", attn.attention)
    monkeypatch.setattr(interaction, "attention", attn.attention)
    request = [random_request(Task.AVG, 3)]
    reference = sample(tiny_model, request, SamplingParams(steps=1))
    tiny_model.attention_backend = "fake"
    try:
        routed = sample(tiny_model, request, SamplingParams(steps=1))
    finally:
        tiny_model.attention_backend = "sdpa"
    assert seen and rel_l2(routed.video, reference.video) < 1e-6

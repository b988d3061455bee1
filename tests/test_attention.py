"""Attention backends: dispatch, fallbacks and their reasons."""
import torch

from helpers import rel_l2
from helpers import random_request
from uniavgen_core.model import attention as attn
from uniavgen_core.sampling import SamplingParams, Task, sample


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


def test_calls_a_backend_cannot_take_go_to_sdpa(monkeypatch):
    calls = []

    def kernel(q, k, v, key_mask=None):
        calls.append((tuple(q.shape), q.dtype))
        return attn.BACKENDS["sdpa"].kernel(q, k, v)

    monkeypatch.setitem(attn.BACKENDS, "fake", attn.AttentionBackend("fake", kernel, devices=("cpu",),
                                                                     dtypes=(torch.bfloat16,)))
    q = torch.randn(1, 4, 2, 8, dtype=torch.bfloat16)
    with attn.use_backend("fake"):
        attn.attention(q, q, q)
        attn.attention(q, q, q, key_mask=torch.tensor([[True, True, True, False]]))     # no mask support
        attn.attention(q.float(), q.float(), q.float())                                  # not its dtype
        attn.attention(q.to("meta"), q.to("meta"), q.to("meta"))                         # not its device
    assert calls == [((1, 4, 2, 8), torch.bfloat16)]


def test_a_registered_backend_is_offered_and_chosen_by_priority(monkeypatch):
    fake = attn.AttentionBackend("fake", attn.BACKENDS["sdpa"].kernel, priority=9)
    assert "fake" not in attn.choices()
    monkeypatch.setitem(attn.BACKENDS, "fake", fake)
    assert attn.choices()[0] == "auto" and "fake" in attn.choices()
    assert attn.resolve_backend("auto") == "fake" and attn.resolve_backend("fake") == "fake"
    missing = attn.AttentionBackend("missing", fake.kernel, modules=("no_such_module_here",), priority=10)
    monkeypatch.setitem(attn.BACKENDS, "missing", missing)
    assert "pip install no-such-module-here" in attn.unavailable_reason("missing")
    assert attn.resolve_backend("auto") == "fake"


def test_model_forward_uses_the_selected_backend(tiny_model, monkeypatch):
    seen = []

    def kernel(q, k, v, key_mask=None):
        seen.append(q.shape[1])
        return attn.BACKENDS["sdpa"].kernel(q, k, v, key_mask)

    monkeypatch.setitem(attn.BACKENDS, "fake", attn.AttentionBackend("fake", kernel, key_mask=True))
    request = [random_request(Task.AVG, 3)]
    reference = sample(tiny_model, request, SamplingParams(steps=1))
    tiny_model.attention_backend = "fake"
    try:
        routed = sample(tiny_model, request, SamplingParams(steps=1))
    finally:
        tiny_model.attention_backend = "sdpa"
    assert seen and rel_l2(routed.video, reference.video) < 1e-6

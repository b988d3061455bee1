"""LoRA files: names in every accepted layout map onto the model's Linears; each entry is checked
before anything reaches ComfyUI (kinds applied or listed as ignored, dtypes, shapes, ranks, finite
values, changes the weights hold); LoRAs of other models are refused with what they seem to be."""
import importlib
import re
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from uniavgen_core.lora import Layer, LoraError, aliases, inspect, linear_layers, split_key
from uniavgen_core.model.config import UniAVGenConfig
from uniavgen_core.model.dit import UniAVGenModel

CONFIG = UniAVGenConfig(dim=96, ffn_dim=160, num_heads=3, num_layers=4, audio_dim=64, audio_ffn_dim=128,
                        audio_num_heads=2, text_dim=64, interaction_layers=(0, 2))
DOUBLE = Path(__file__).parent / "comfy_double"
Q = "blocks.0.self_attn.q"                      # a [96, 96] Linear with a bias
SPELLINGS = {"peft": (".lora_A.weight", ".lora_B.weight"), "default": (".lora_A.default.weight",
             ".lora_B.default.weight"), "kohya": (".lora_down.weight", ".lora_up.weight")}


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return UniAVGenModel(CONFIG)


@pytest.fixture(scope="module")
def layers(net):
    return linear_layers(net)


def lora_pair(layers, layer, rank=4, style="peft", name=None, alpha=None):
    out_f, in_f = layers[layer].out_features, layers[layer].in_features
    name = name or layer
    down_suffix, up_suffix = SPELLINGS[style]
    pair = {f"{name}{down_suffix}": torch.randn(rank, in_f) * 0.1, f"{name}{up_suffix}": torch.randn(out_f, rank) * 0.1}
    return pair if alpha is None else {**pair, f"{name}.alpha": torch.tensor(alpha)}


def test_own_names_in_peft_and_kohya_layouts(layers):
    lora = {**lora_pair(layers, Q, name=f"diffusion_model.{Q}"),
            **lora_pair(layers, "audio_blocks.3.ffn.2", style="kohya", name="lora_unet_audio_blocks_3_ffn_2",
                        alpha=2.0),
            **lora_pair(layers, "a2v_blocks.1.k", style="default", name="transformer.a2v_blocks.1.k")}
    report = inspect(lora, layers, "mine.safetensors")
    assert report.targets == {f"diffusion_model.{Q}": Q, "lora_unet_audio_blocks_3_ffn_2": "audio_blocks.3.ffn.2",
                              "transformer.a2v_blocks.1.k": "a2v_blocks.1.k"}
    assert report.ranks == [4] and not report.ignored
    # handed on under the model's layer names and ComfyUI's PEFT spelling
    assert set(report.entries) == {f"{layer}{s}" for layer in report.targets.values()
                                   for s in (".lora_A.weight", ".lora_B.weight")} | {"audio_blocks.3.ffn.2.alpha"}
    assert report.entries["audio_blocks.3.ffn.2.lora_A.weight"] is lora[
        "lora_unet_audio_blocks_3_ffn_2.lora_down.weight"]
    assert "rank 4: 3 layers patched (1 in a2v_blocks, 1 in audio_blocks, 1 in blocks)" in report.summary()


def test_wan_diffusers_names_reach_the_video_branch(layers):
    lora = {**lora_pair(layers, "blocks.0.self_attn.o", name="transformer.blocks.0.attn1.to_out.0"),
            **lora_pair(layers, "blocks.2.cross_attn.k", name="transformer.blocks.2.attn2.to_k"),
            **lora_pair(layers, "blocks.2.ffn.0", name="transformer.blocks.2.ffn.net.0.proj"),
            **lora_pair(layers, "text_embedding_video.0", name="diffusion_model.text_embedding.0"),
            **lora_pair(layers, "head.head", name="transformer.proj_out")}
    targets = inspect(lora, layers, "wan5b.safetensors").targets
    assert sorted(targets.values()) == ["blocks.0.self_attn.o", "blocks.2.cross_attn.k", "blocks.2.ffn.0",
                                        "head.head", "text_embedding_video.0"]


def test_entries_without_a_layer_are_reported_not_applied(layers):
    lora = {**lora_pair(layers, Q), **lora_pair(layers, Q, name="blocks.29.self_attn.q")}
    report = inspect(lora, layers, "x")
    assert list(report.targets) == [Q] and report.ignored == {"no such layer in this model": ["blocks.29.self_attn.q"]}
    assert "1 entries ignored (no such layer in this model): blocks.29.self_attn.q" in report.summary()
    assert not any(k.startswith("blocks.29") for k in report.entries)


def test_a_lora_of_another_width_is_refused(layers):
    wan14b = {"diffusion_model.blocks.0.self_attn.q.lora_A.weight": torch.zeros(16, 5120),
              "diffusion_model.blocks.0.self_attn.q.lora_B.weight": torch.zeros(5120, 16)}
    with pytest.raises(LoraError, match=r"another model \(5120 wide: a Wan 14B LoRA\).*\[5120, 5120\] in the LoRA "
                                        r"and \[96, 96\] in the model"):
        inspect(wan14b, layers, "wan14b.safetensors")


@pytest.mark.parametrize("keys, family", [
    (["lora_unet_down_blocks_0_attentions_0_proj_in.lora_down.weight", "lora_te1_text_model.alpha"],
     "Stable Diffusion"),
    (["diffusion_model.double_blocks.0.img_attn.qkv.lora_A.weight"], "Flux"),
    (["lora_unet_down_blocks_0_proj_in.hada_w1_a"], "Stable Diffusion"),
])
def test_a_lora_of_another_family_is_named(layers, keys, family):
    with pytest.raises(LoraError, match=f"applies to no layer of UniAVGen: it looks like .*{family}"):
        inspect({k: torch.zeros(2, 2) for k in keys}, layers, "other.safetensors")


def test_a_file_without_lora_tensors_is_refused(layers):
    with pytest.raises(LoraError, match="has no LoRA tensors"):
        inspect({f"{Q}.weight": torch.zeros(96, 96)}, layers, "model.safetensors")


def test_every_linear_has_aliases_and_keys_split_into_layer_and_kind(layers):
    table = aliases(layers)
    assert all(table[name] == name and table["lora_unet_" + name.replace(".", "_")] == name for name in layers)
    assert split_key("a.b.lora_B.weight") == ("a.b", ".lora_B.weight")
    assert split_key("a.b.lora_A.default.weight") == ("a.b", ".lora_A.default.weight")
    assert split_key("a.b.diff_b") == ("a.b", ".diff_b") and split_key("a.b.hada_w1_a") == ("a.b", ".hada_w1_a")
    assert split_key("a.b.weight") is None and split_key(".alpha") is None


def test_layers_know_bias_dtype_and_largest_weight(net, layers):
    assert layers[Q] == Layer(96, 96, True, torch.float32) and not layers["text_proj"].bias
    assert layers[Q].peak() == pytest.approx(float(net.get_submodule(Q).weight.abs().max()))


# ------------------------------------------------------------------ defect classes, one test each

@pytest.mark.parametrize("entries, theirs", [
    ({".lora_A.default.weight": (4, 80), ".lora_B.default.weight": (96, 4)}, [96, 80]),
    ({".lora_down.weight": (4, 96), ".lora_up.weight": (80, 4)}, [80, 96]),
    ({".diff": (96, 80)}, [96, 80]),
    ({".diff": (96 * 96,)}, [9216]),
    ({".diff_b": (80,)}, [80]),
    ({".diff_b": (96, 1)}, [96, 1]),
])
def test_every_kind_applied_is_checked_against_the_layer_shape(layers, entries, theirs):
    lora = {f"{Q}{suffix}": torch.zeros(shape) for suffix, shape in entries.items()}
    with pytest.raises(LoraError, match="another model: 1 layers have other shapes, e.g. " + re.escape(
            f"{Q} is {theirs} in the LoRA and ") + r"\[96(, 96)?\] in the model"):
        inspect({**lora, **lora_pair(layers, "blocks.1.self_attn.q")}, layers, "x.safetensors")


@pytest.mark.parametrize("shape", [(96,), (96, 96), (1, 95), (2, 96)])
def test_dora_magnitudes_of_another_shape_are_refused(layers, shape):
    lora = {**lora_pair(layers, Q), f"{Q}.dora_scale": torch.ones(shape)}
    with pytest.raises(LoraError, match=rf"{Q}.dora_scale is .* DoRA magnitudes of {Q} .* are \[96, 1\] or \[1, 96\]"):
        inspect(lora, layers, "x.safetensors")


@pytest.mark.parametrize("suffix, value, why", [
    (".reshape_weight", torch.tensor([100_000, 100_000]), "reshape_weight"),
    (".lora_mid.weight", torch.ones(4, 4, 1, 1), "lora_mid"),
    (".hada_w1_a", torch.ones(96, 4), "LoHa"),
    (".lokr_w1", torch.ones(8, 8), "LoKr"),
    (".oft_blocks", torch.ones(4, 24, 24), "OFT"),
    (".a1.weight", torch.ones(4, 96), "GLoRA"),
    (".w_norm", torch.ones(96), "norm layer"),
    (".set_weight", torch.ones(96, 96), "replacement weight"),
    ("_lora.up.weight", torch.ones(96, 4), "spelling UniAVGen does not read"),
    (".lora_B", torch.ones(96, 4), "spelling UniAVGen does not read"),
    (".weight", torch.ones(96, 96), "not a LoRA entry"),
])
def test_kinds_not_applied_are_listed_and_never_handed_on(layers, suffix, value, why):
    lora = {**lora_pair(layers, Q), f"{Q}{suffix}": value}
    report = inspect(lora, layers, "x.safetensors")
    assert set(report.entries) == {f"{Q}.lora_A.weight", f"{Q}.lora_B.weight"}
    (reason, keys), = report.ignored.items()
    assert why in reason and keys == [f"{Q}{suffix}"]
    assert f"1 entries ignored ({reason}): {Q}{suffix}" in report.summary()
    alone = "has no LoRA tensors" if why == "not a LoRA entry" else f"applies to no layer of UniAVGen .*{why}"
    with pytest.raises(LoraError, match=alone):
        inspect({f"{Q}{suffix}": value}, layers, "x.safetensors")


@pytest.mark.parametrize("suffix, value, why", [
    (".alpha", torch.tensor(4.0), "alpha without a low-rank pair"),
    (".dora_scale", torch.ones(96, 1), "dora_scale without a low-rank pair"),
])
def test_companions_without_a_pair_are_listed(layers, suffix, value, why):
    report = inspect({f"{Q}{suffix}": value, f"{Q}.diff": torch.zeros(96, 96)}, layers, "x")
    assert set(report.entries) == {f"{Q}.diff"} and report.ignored == {why: [f"{Q}{suffix}"]}


def test_a_bias_difference_for_a_layer_without_bias_is_listed(layers):
    report = inspect({"text_proj.diff_b": torch.zeros(64), **lora_pair(layers, Q)}, layers, "x")
    assert report.ignored == {"the model's layer has no bias": ["text_proj.diff_b"]} and "text_proj" not in str(
        list(report.entries))


@pytest.mark.parametrize("style", list(SPELLINGS))
@pytest.mark.parametrize("half", [0, 1])
def test_half_a_pair_is_refused_by_name(layers, style, half):
    present, missing = SPELLINGS[style][half], SPELLINGS[style][1 - half]
    lora = {**lora_pair(layers, "blocks.1.self_attn.q"), f"{Q}{present}": torch.zeros(4, 96)}
    with pytest.raises(LoraError, match=rf"x.safetensors: {Q} has {present[1:]} but no {missing[1:]}"):
        inspect(lora, layers, "x.safetensors")


@pytest.mark.parametrize("alpha, match", [
    (torch.tensor(True), "bool of shape"),
    (torch.tensor(list(b"16.0"), dtype=torch.uint8), r"uint8 of shape \[4\]"),
    (torch.tensor(list(b"8"), dtype=torch.int8).reshape(1, 1, 1), None),       # one number: accepted
    (torch.ones(2), r"float32 of shape \[2\]"),
    (torch.zeros(0), r"float32 of shape \[0\]"),
    (torch.tensor(1 + 2j), "complex64"),
    (torch.tensor(float("nan")), "nan; an alpha is a finite number"),
    (torch.tensor(-float("inf")), "-inf; an alpha is a finite number"),
])
def test_an_alpha_is_one_finite_real_number(layers, alpha, match):
    lora = {**lora_pair(layers, Q, style="kohya"), f"{Q}.alpha": alpha}
    if match is None:
        assert inspect(lora, layers, "x").entries[f"{Q}.alpha"].item() == float(b"8"[0])
        return
    with pytest.raises(LoraError, match=f"x.safetensors: {Q}.alpha is .*{match}"):
        inspect(lora, layers, "x.safetensors")


@pytest.mark.parametrize("suffix", [".lora_A.weight", ".lora_B.default.weight", ".lora_up.weight", ".dora_scale",
                                    ".diff", ".diff_b"])
@pytest.mark.parametrize("poison", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_values_are_refused_at_load_naming_file_and_entry(layers, suffix, poison):
    if suffix in (".diff", ".diff_b"):
        lora = {f"{Q}.diff": torch.zeros(96, 96), f"{Q}.diff_b": torch.zeros(96)}
    else:
        style = {".lora_up.weight": "kohya", ".lora_B.default.weight": "default"}.get(suffix, "peft")
        lora = {**lora_pair(layers, Q, style=style), f"{Q}.dora_scale": torch.ones(96, 1)}
    lora[f"{Q}{suffix}"].view(-1)[3] = poison
    with pytest.raises(LoraError, match=rf"x.safetensors: {Q}{suffix} contains NaN or infinite values"):
        inspect(lora, layers, "x.safetensors")


@pytest.mark.parametrize("dtype", [torch.int8, torch.uint8, torch.bool, torch.int64])
def test_weights_are_floating_point(layers, dtype):
    lora = {**lora_pair(layers, Q), f"{Q}.lora_B.weight": torch.ones(96, 4, dtype=dtype)}
    with pytest.raises(LoraError, match=rf"{Q}.lora_B.weight holds {str(dtype)[6:]} values"):
        inspect(lora, layers, "x.safetensors")


def test_float64_values_beyond_float32_are_refused(layers):
    lora = {f"{Q}.diff": torch.zeros(96, 96, dtype=torch.float64)}
    lora[f"{Q}.diff"][0, 0] = 1e300
    with pytest.raises(LoraError, match="NaN or infinite values .or values beyond float32"):
        inspect(lora, layers, "x.safetensors")


@pytest.mark.parametrize("style", ["peft", "kohya"])
def test_mismatched_ranks_are_named(layers, style):
    down, up = SPELLINGS[style]
    lora = {f"{Q}{down}": torch.zeros(8, 96), f"{Q}{up}": torch.zeros(96, 4)}
    names = [s.split(".")[1] for s in (down, up)]
    with pytest.raises(LoraError, match=rf"{Q}: {names[0]} has rank 8 but {names[1]} rank 4 "
                                        r"\(\[8, 96\] and \[96, 4\]\)"):
        inspect(lora, layers, "x.safetensors")
    with pytest.raises(LoraError, match="has rank 0"):
        inspect({f"{Q}{down}": torch.zeros(0, 96), f"{Q}{up}": torch.zeros(96, 0)}, layers, "x.safetensors")
    with pytest.raises(LoraError, match="are matrices"):
        inspect({f"{Q}{down}": torch.zeros(4, 96, 1, 1), f"{Q}{up}": torch.zeros(96, 4, 1, 1)}, layers, "x")


def test_two_names_for_one_entry_or_one_layer_are_refused(layers):
    with pytest.raises(LoraError, match="are the same entry of .* under two names"):
        inspect({**lora_pair(layers, Q), f"{Q}.lora_A.default.weight": torch.zeros(4, 96)}, layers, "x")
    with pytest.raises(LoraError, match=f"both patch {Q}"):
        inspect({**lora_pair(layers, Q), **lora_pair(layers, Q, name=f"diffusion_model.{Q}")}, layers, "x")
    with pytest.raises(LoraError, match="both a low-rank pair and a full difference"):
        inspect({**lora_pair(layers, Q), f"{Q}.diff": torch.zeros(96, 96)}, layers, "x")


def fp16_layers(layers):
    return {name: Layer(layer.out_features, layer.in_features, layer.bias, torch.float16)
            for name, layer in layers.items()}


@pytest.mark.parametrize("kind", ["low rank", "diff", "dora"])
def test_a_change_that_overflows_the_weights_dtype_is_refused_naming_lora_and_strength(layers, kind):
    if kind == "diff":
        lora = {f"{Q}.diff": torch.full((96, 96), 20_000.0)}
    else:   # rank 1, alpha 1: every entry of up @ down is 20000
        lora = {f"{Q}.lora_A.weight": torch.full((1, 96), 200.0), f"{Q}.lora_B.weight": torch.full((96, 1), 100.0),
                f"{Q}.alpha": torch.tensor(1.0)}
        if kind == "dora":
            lora.update({f"{Q}.dora_scale": torch.full((96, 1), 20_000.0), f"{Q}.lora_A.weight": torch.zeros(1, 96)})
    assert inspect(lora, fp16_layers(layers), "big.safetensors", strength=3.0).targets == {Q: Q}   # 60000 fits
    with pytest.raises(LoraError, match=rf"big.safetensors at strength -4 would change {Q}.weight by up to 8e\+04, "
                                        r"more than float16 weights hold \(65504\)"):
        inspect(lora, fp16_layers(layers), "big.safetensors", strength=-4.0)


def test_a_change_that_overflows_float32_is_refused(layers):
    lora = {f"{Q}.lora_A.weight": torch.full((2, 96), 1e20), f"{Q}.lora_B.weight": torch.full((96, 2), 1e20)}
    plain = {name: Layer(layer.out_features, layer.in_features) for name, layer in layers.items()}
    with pytest.raises(LoraError, match=rf"x.safetensors: {Q}'s low-rank product reaches inf, more than float32 holds"):
        inspect(lora, plain, "x.safetensors")
    lora = {f"{Q}.lora_A.weight": torch.full((2, 96), 1e3), f"{Q}.lora_B.weight": torch.full((96, 2), 1e3)}
    with pytest.raises(LoraError, match=r"at strength 1e\+36 would change .* by up to 2e\+42, more than float32 "):
        inspect(lora, plain, "x.safetensors", strength=1e36)


@pytest.mark.parametrize("lora, match", [
    # up @ down is 2e5 before alpha / rank scales it down: low-VRAM patches overflow in float16
    ({".lora_A.weight": torch.full((1, 96), 1000.0), ".lora_B.weight": torch.full((96, 1), 200.0),
      ".alpha": torch.tensor(1e-5)}, rf"{Q}'s low-rank product reaches 2e\+05, more than float16 holds \(65504\)"),
    ({".lora_A.weight": torch.full((1, 96), 1e5), ".lora_B.weight": torch.full((96, 1), 1e-6)},
     rf"{Q}.lora_A.weight holds values up to 1e\+05, more than float16 holds"),
])
def test_tensors_that_overflow_float16_arithmetic_are_refused(layers, lora, match):
    with pytest.raises(LoraError, match=match):
        inspect({Q + suffix: t for suffix, t in lora.items()}, fp16_layers(layers), "x.safetensors")
    assert inspect({Q + suffix: t for suffix, t in lora.items()}, layers, "x.safetensors").targets   # float32: fine


def test_a_change_that_dwarfs_the_layers_weights_is_refused(layers):
    lora = {f"{Q}.lora_A.weight": torch.full((1, 96), 10.0), f"{Q}.lora_B.weight": torch.full((96, 1), 10.0)}
    peak = layers[Q].peak()
    with pytest.raises(LoraError, match=rf"at strength 2 would change {Q}.weight by up to 200, more than 1000 times "
                                        rf"its largest weight \({peak:.3g}\)"):
        inspect(lora, layers, "x.safetensors", strength=2.0)
    assert inspect(lora, layers, "x.safetensors", strength=1e-3).targets     # 0.2: fine


@pytest.mark.parametrize("dtype", ["float16", "float32 with its weights"])
def test_the_cheap_bound_never_refuses_a_change_that_is_small(layers, dtype):
    """Large factors whose product cancels: the norm bound says 1e6 (beyond float16 and 1000 times the
    weights), up @ down is 0."""
    down, up = torch.zeros(2, 96), torch.zeros(96, 2)
    down[1], up[:, 0] = 1e3, 1e3
    model = fp16_layers(layers) if dtype == "float16" else layers
    assert inspect({f"{Q}.lora_A.weight": down, f"{Q}.lora_B.weight": up}, model, "x").targets == {Q: Q}


# ------------------------------------------------------------------ through the node, with the ComfyUI double

@pytest.fixture(scope="module")
def comfy(tmp_path_factory, net):
    sys.path.insert(0, str(DOUBLE))
    import folder_paths
    base = tmp_path_factory.mktemp("comfy")
    folder_paths.reset(base)
    (base / "models" / "loras").mkdir(parents=True)
    nodes = importlib.import_module("nodes")
    from nodes.loaders import UniAVGenHandle
    patcher = importlib.import_module("comfy.model_patcher").ModelPatcher(UniAVGenHandle(net, None), "cpu", "cpu")
    yield dict(loras=base / "models" / "loras", lora=importlib.import_module("comfy.lora"), model=patcher,
               loader=nodes.NODE_CLASS_MAPPINGS["UniAVGenLoraLoader"])
    sys.path.remove(str(DOUBLE))


def through_node(comfy, lora, strength=1.0, name="test.safetensors"):
    """The patched model, the node's message and what ComfyUI's load_lora was given."""
    save_file(lora, str(comfy["loras"] / name))
    calls = len(comfy["lora"].calls)
    out = comfy["loader"]().apply(model=comfy["model"], lora_name=name, strength=strength)
    given = comfy["lora"].calls[calls:]
    return out["result"][0], out["ui"]["text"][0], given[0] if given else None


def patched_weight(comfy, patched, key):
    original = comfy["model"].model.state_dict()[key]
    return comfy["lora"].calculate_weight(patched.patches[key], original.float().clone(), key)


def test_the_node_hands_comfyui_only_checked_entries_under_its_names(comfy, layers, caplog):
    lora = {**lora_pair(layers, Q, style="default", name=f"diffusion_model.{Q}"),
            **lora_pair(layers, "audio_blocks.1.ffn.0", style="kohya", alpha=2.0),
            f"{Q}.reshape_weight": torch.tensor([1 << 20, 1 << 20]), f"{Q}.lora_mid.weight": torch.ones(4, 4),
            "blocks.1.self_attn.q.hada_w1_a": torch.ones(96, 4), "notes": torch.zeros(3),
            "blocks.1.self_attn.q.lora_B.weight": torch.ones(96, 4),
            "blocks.1.self_attn.q.lora_A.weight": torch.ones(4, 96) * 1e-3}
    patched, text, (given, to_load) = through_node(comfy, lora, strength=0.5)
    assert set(given) == {f"{Q}.lora_A.weight", f"{Q}.lora_B.weight", "audio_blocks.1.ffn.0.lora_A.weight",
                          "audio_blocks.1.ffn.0.lora_B.weight", "audio_blocks.1.ffn.0.alpha",
                          "blocks.1.self_attn.q.lora_A.weight", "blocks.1.self_attn.q.lora_B.weight"}
    assert to_load == {layer: f"diffusion_model.{layer}.weight"
                       for layer in (Q, "audio_blocks.1.ffn.0", "blocks.1.self_attn.q")}
    assert "lora key not loaded" not in caplog.text                 # ComfyUI read every entry it was given
    assert set(patched.patches) == set(to_load.values())
    assert text.startswith("test.safetensors: LoRA rank 4: 3 layers patched (1 in audio_blocks, 2 in blocks)")
    for key in ("reshape_weight", "lora_mid", "LoHa", "not a LoRA entry", f"{Q}.reshape_weight", "notes"):
        assert key in text


@pytest.mark.parametrize("lora, strength, match", [
    ({f"{Q}.lora_A.weight": torch.zeros(4, 96)}, 1.0, "has lora_A.weight but no lora_B.weight"),
    ({f"{Q}.lora_A.weight": torch.zeros(8, 96), f"{Q}.lora_B.weight": torch.zeros(96, 4)}, 1.0, "rank 8 but"),
    ({f"{Q}.diff": torch.full((96, 96), float("nan"))}, 1.0, f"test.safetensors: {Q}.diff contains NaN"),
    ({f"{Q}.diff": torch.full((96, 96), 100.0)}, 4.0, "at strength 4 would change .* more than 1000 times"),
    ({f"{Q}.hada_w1_a": torch.ones(96, 4)}, 1.0, "applies to no layer .*LoHa"),
])
def test_the_node_refuses_before_comfyui_sees_anything(comfy, lora, strength, match):
    calls = len(comfy["lora"].calls)
    with pytest.raises(LoraError, match=match):
        through_node(comfy, lora, strength)
    assert len(comfy["lora"].calls) == calls


def test_the_node_refuses_an_unreadable_file(comfy):
    (comfy["loras"] / "broken.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(LoraError, match="broken.safetensors is not a readable .safetensors LoRA"):
        comfy["loader"]().apply(model=comfy["model"], lora_name="broken.safetensors", strength=1.0)


@pytest.mark.parametrize("kind", ["peft default", "kohya alpha", "diff", "diff_b", "dora rows", "dora columns"])
def test_each_kind_applied_changes_the_weight_as_trained(comfy, net, layers, kind):
    strength, module = 0.7, net.get_submodule(Q)
    weight, bias = module.weight.detach().clone(), module.bias.detach().clone()
    gen = torch.Generator().manual_seed(1)
    down, up = torch.randn(4, 96, generator=gen), torch.randn(96, 4, generator=gen) * 0.01
    if kind == "peft default":
        lora = {f"{Q}.lora_A.default.weight": down, f"{Q}.lora_B.default.weight": up}
        want = weight + strength * up @ down
    elif kind == "kohya alpha":
        lora = {f"{Q}.lora_down.weight": down, f"{Q}.lora_up.weight": up, f"{Q}.alpha": torch.tensor(2.0)}
        want = weight + strength * 2.0 / 4 * up @ down
    elif kind == "diff":
        delta = torch.randn(96, 96, generator=gen) * 0.01
        lora, want = {f"{Q}.diff": delta}, weight + strength * delta
    elif kind == "diff_b":
        delta = torch.randn(96, generator=gen) * 0.01
        lora, want = {f"{Q}.diff_b": delta}, bias + strength * delta
    else:                                # DoRA at strength 1: the changed weight rescaled to the magnitudes m
        strength, shape = 1.0, (96, 1) if kind == "dora rows" else (1, 96)
        m = torch.rand(shape, generator=gen) + 0.5
        lora = {f"{Q}.lora_A.weight": down, f"{Q}.lora_B.weight": up, f"{Q}.dora_scale": m}
        changed = weight + up @ down
        # per input column the norms are the changed weight's; per output row ComfyUI takes the original's
        want = changed * m / (changed.norm(dim=0, keepdim=True) if shape[0] == 1 else weight.norm(dim=1, keepdim=True))
    patched, text, _ = through_node(comfy, lora, strength)
    key = f"diffusion_model.{Q}.{'bias' if kind == 'diff_b' else 'weight'}"
    got = patched_weight(comfy, patched, key)
    assert not torch.allclose(got, bias if kind == "diff_b" else weight)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert "1 layers patched (1 in blocks)" in text

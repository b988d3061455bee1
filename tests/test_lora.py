"""LoRA files: names in every accepted layout map onto the model's Linears; LoRAs of other
models are refused with what they seem to be."""
import pytest
import torch

from uniavgen_core.model.config import UniAVGenConfig
from uniavgen_core.lora import LoraError, aliases, inspect, layer_name
from uniavgen_core.model.dit import UniAVGenModel

CONFIG = UniAVGenConfig(dim=96, ffn_dim=160, num_heads=3, num_layers=4, audio_dim=64, audio_ffn_dim=128,
                        audio_num_heads=2, text_dim=64, interaction_layers=(0, 2))


@pytest.fixture(scope="module")
def layers():
    with torch.device("meta"):
        model = UniAVGenModel(CONFIG)
    return {n: (m.out_features, m.in_features) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)}


def lora_pair(layers, layer, rank=4, style="peft", name=None):
    out_f, in_f = layers[layer]
    name = name or layer
    down, up = torch.randn(rank, in_f), torch.randn(out_f, rank)
    if style == "peft":
        return {f"{name}.lora_A.weight": down, f"{name}.lora_B.weight": up}
    return {f"{name}.lora_down.weight": down, f"{name}.lora_up.weight": up, f"{name}.alpha": torch.tensor(2.0)}


def test_own_names_in_peft_and_kohya_layouts(layers):
    lora = {**lora_pair(layers, "blocks.1.self_attn.q", name="diffusion_model.blocks.1.self_attn.q"),
            **lora_pair(layers, "audio_blocks.3.ffn.2", style="kohya", name="lora_unet_audio_blocks_3_ffn_2"),
            **lora_pair(layers, "a2v_blocks.1.k", name="transformer.a2v_blocks.1.k")}
    report = inspect(lora, layers, "mine.safetensors")
    assert report.targets == {"diffusion_model.blocks.1.self_attn.q": "blocks.1.self_attn.q",
                              "lora_unet_audio_blocks_3_ffn_2": "audio_blocks.3.ffn.2",
                              "transformer.a2v_blocks.1.k": "a2v_blocks.1.k"}
    assert report.rank == 4 and not report.ignored
    assert "3 layers (1 in a2v_blocks, 1 in audio_blocks, 1 in blocks)" in report.summary()


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
    lora = {**lora_pair(layers, "blocks.0.self_attn.q"), "blocks.29.self_attn.q.lora_A.weight": torch.zeros(4, 96),
            "blocks.29.self_attn.q.lora_B.weight": torch.zeros(96, 4)}
    report = inspect(lora, layers, "x")
    assert list(report.targets) == ["blocks.0.self_attn.q"] and report.ignored == ["blocks.29.self_attn.q"]
    assert "1 entries ignored (no such layer in this model): blocks.29.self_attn.q" in report.summary()


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
])
def test_a_lora_of_another_family_is_named(layers, keys, family):
    with pytest.raises(LoraError, match=f"matches no layer of UniAVGen: it looks like .*{family}"):
        inspect({k: torch.zeros(2, 2) for k in keys}, layers, "other.safetensors")


def test_a_file_without_lora_tensors_is_refused(layers):
    with pytest.raises(LoraError, match="has no LoRA tensors"):
        inspect({"blocks.0.self_attn.q.weight": torch.zeros(96, 96)}, layers, "model.safetensors")


def test_every_linear_has_aliases_and_layer_names_strip_suffixes(layers):
    table = aliases(layers)
    assert all(table[name] == name and table["lora_unet_" + name.replace(".", "_")] == name for name in layers)
    assert layer_name("a.b.lora_B.weight") == "a.b" and layer_name("a.b.alpha") == "a.b"
    assert layer_name("a.b.weight") is None

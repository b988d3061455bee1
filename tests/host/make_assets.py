"""Tiny assets for the real-host run, written into a ComfyUI folder (run with ComfyUI's python).

    make_assets.py COMFY_DIR GOLDEN_DIR VOCAB

Every name says it is a test asset, and the host must be one `make host-test` created (it holds
the marker file MARKER), so that nothing here can pass for, or replace, a user's real files:

models/uniavgen/UniAVGen_test_tiny/    the golden tiny DiT (official sharded layout) + vocab.txt
models/uniavgen/uniavgen_test_tiny_bigvgan/   a tiny random BigVGAN (Hugging Face layout)
models/vae/uniavgen_test_random_wan22_vae.safetensors   a randomly initialised FULL-SIZE Wan2.2 VAE
models/loras/uniavgen_test_tiny_lora.safetensors   a random LoRA on the tiny DiT (its own and Wan diffusers names)
models/uniavgen/UniAVGen_test_tiny_lora_merged.safetensors   the tiny DiT with that LoRA merged by hand
models/uniavgen/UniAVGen_test_tiny_fp8.safetensors   the tiny DiT as scaled fp8
The workflows' input files are the pack's example_inputs/, which the pack itself copies into
input/ when ComfyUI starts.
"""
import shutil
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))      # the repo's uniavgen_core
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))      # the tests' helpers
from helpers import save_tiny_vocoder  # noqa: E402


def wan22_vae(path):
    """Random full-size Wan2.2 VAE with ComfyUI's own class and constructor arguments."""
    from comfy.cli_args import args
    args.cpu = True
    import comfy.ldm.wan.vae2_2 as vae2_2
    from safetensors.torch import save_file
    torch.manual_seed(20250822)
    model = vae2_2.WanVAE(dim=160, z_dim=48, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                          temperal_downsample=[False, True, True], dropout=0.0)
    for m in model.modules():
        if isinstance(m, torch.nn.modules.conv._ConvNd):
            torch.nn.modules.conv._ConvNd.reset_parameters(m)
    save_file({k: v.to(torch.bfloat16).contiguous() for k, v in model.state_dict().items()}, str(path))


MARKER = ".uniavgen-host-test"
EXAMPLE_INPUTS = ("uniavgen_face.png", "uniavgen_voice.wav", "uniavgen_speech.wav", "uniavgen_clip.mp4")
DIT, VOCODER = "UniAVGen_test_tiny", "uniavgen_test_tiny_loud_bigvgan"
VAE = "uniavgen_test_random_wan22_vae.safetensors"
MERGED, FP8 = "UniAVGen_test_tiny_lora_merged.safetensors", "UniAVGen_test_tiny_fp8.safetensors"
LORA, LORA_STRENGTH = "uniavgen_test_tiny_lora.safetensors", 0.8
LORA_LAYERS = {                     # LoRA layer name -> the tiny DiT's layer
    "diffusion_model.blocks.0.self_attn.q": "blocks.0.self_attn.q",
    "diffusion_model.blocks.3.ffn.0": "blocks.3.ffn.0",
    "audio_blocks.1.cross_attn.v": "audio_blocks.1.cross_attn.v",
    "a2v_blocks.0.o": "a2v_blocks.0.o",
    "transformer.blocks.2.attn1.to_out.0": "blocks.2.self_attn.o",     # diffusers' Wan name
}


def lora_assets(comfy: Path, dit: Path, vocab: Path):
    """A rank-4 LoRA (alpha 2) and the same update merged by hand: W + s * alpha / rank * B @ A."""
    import json
    from safetensors.torch import save_file
    from uniavgen_core.checkpoint.convert import convert
    from uniavgen_core.checkpoint.loading import load_model
    model = load_model(dit, dtype=torch.float32)
    gen = torch.Generator().manual_seed(7)
    lora, state = {}, {k: v.clone() for k, v in model.state_dict().items()}
    for name, layer in LORA_LAYERS.items():
        weight = state[f"{layer}.weight"]
        down = torch.randn(4, weight.shape[1], generator=gen) * 0.5
        up = torch.randn(weight.shape[0], 4, generator=gen) * 0.5
        lora.update({f"{name}.lora_A.weight": down, f"{name}.lora_B.weight": up, f"{name}.alpha": torch.tensor(2.0)})
        state[f"{layer}.weight"] = weight + LORA_STRENGTH * 2.0 / 4 * (up @ down)
    (comfy / "models" / "loras").mkdir(parents=True, exist_ok=True)
    save_file(lora, str(comfy / "models" / "loras" / LORA))
    merged = comfy / "models" / "uniavgen" / MERGED
    save_file(state, str(merged), metadata={"uniavgen_config": json.dumps(model.config.to_dict()),
                                            "uniavgen_vocab": vocab.read_text(encoding="utf-8").replace("\r\n", "\n")})
    fp8 = comfy / "models" / "uniavgen" / FP8
    if not fp8.exists():
        convert(dit, fp8, "fp8", vocab=vocab)


def main(comfy, golden, vocab):
    comfy, golden = Path(comfy).resolve(), Path(golden).resolve()
    sys.path.insert(0, str(comfy))
    if not (comfy / MARKER).is_file():
        sys.exit(f"{comfy} was not created by make host-test (no {MARKER} in it): test assets go only into a "
                 f"host the test made; point COMFY at a new folder")
    dit = comfy / "models" / "uniavgen" / DIT
    dit.mkdir(parents=True, exist_ok=True)
    for f in golden.iterdir():
        if f.name.startswith("diffusion_pytorch_model") or f.name == "config.json":
            if not (dit / f.name).exists():
                (dit / f.name).symlink_to(f)
    shutil.copy(vocab, dit / "vocab.txt")
    lora_assets(comfy, dit, Path(vocab))
    voc = comfy / "models" / "uniavgen" / VOCODER
    if not (voc / "config.json").is_file():
        save_tiny_vocoder(voc, loud=True)           # audible: clip 1's speech is clip 2's reference voice
    vae = comfy / "models" / "vae" / VAE
    if not vae.is_file():
        vae.parent.mkdir(parents=True, exist_ok=True)
        wan22_vae(vae)
    # the workflows' inputs are the pack's shipped examples, copied in by the pack when ComfyUI
    # starts: earlier test inputs under those names are removed (this is a test host) to prove it
    for name in EXAMPLE_INPUTS:
        (comfy / "input" / name).unlink(missing_ok=True)

if __name__ == "__main__":
    main(*sys.argv[1:4])

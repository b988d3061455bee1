"""Every node's function on tiny assets, through the ComfyUI host double (tests/comfy_double)."""
import importlib
import math
import os
import shutil
import sys
import time
from functools import partial
from pathlib import Path

import pytest
import torch

from helpers import REPO
from helpers import save_tiny_vocoder, tone
from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer

DOUBLE = Path(__file__).parent / "comfy_double"
MINI, MINI_CODEC = "UniAVGen-mini.safetensors", "UniAVGen-mini-video-codec.safetensors"
GRIFFIN_LIM = "griffin-lim (weight-free)"
tone200 = partial(tone, freq=200.0, amplitude=0.3)


@pytest.fixture(scope="module")
def comfy(tmp_path_factory, golden_dir, speech_vocab):
    """The double on sys.path, a models tree with the tiny DiT, its vocab and a tiny vocoder."""
    sys.path.insert(0, str(DOUBLE))
    import folder_paths
    base = tmp_path_factory.mktemp("comfy")
    folder_paths.reset(base)
    dit = base / "models" / "uniavgen" / "UniAVGen"
    dit.mkdir(parents=True)
    for f in golden_dir.iterdir():
        if f.name.startswith("diffusion_pytorch_model") or f.name == "config.json":
            (dit / f.name).symlink_to(f)
    shutil.copy(speech_vocab, dit / "vocab.txt")
    pytest.importorskip("transformers")
    save_tiny_vocoder(base / "models" / "uniavgen" / "code2wav_bigvgan_model")
    (base / "models" / "diffusion_models").mkdir(parents=True)
    nodes = importlib.import_module("nodes")
    nodes.register_folders()
    from fake_vae import FakeWanVAE
    yield dict(nodes=nodes, fp=folder_paths, base=base, vae=FakeWanVAE(), mm=importlib.import_module(
        "comfy.model_management"), utils=importlib.import_module("comfy.utils"),
        preview=importlib.import_module("latent_preview"))
    sys.path.remove(str(DOUBLE))


def _call(comfy, name, **kwargs):
    cls = comfy["nodes"].NODE_CLASS_MAPPINGS[name]
    return getattr(cls(), cls.FUNCTION)(**kwargs)


def run(comfy, name, **kwargs):
    out = _call(comfy, name, **kwargs)
    return out["result"] if isinstance(out, dict) else out


def messages(comfy, name, **kwargs):
    out = _call(comfy, name, **kwargs)
    return out["result"], out["ui"]["text"]


def caption(width=64, rows=7, seed=0):
    gen = torch.Generator().manual_seed(seed)
    feats = torch.zeros(1, 512, width)
    feats[0, :rows] = torch.randn(rows, width, generator=gen)
    return [[feats, {"pooled_output": None}]]


def test_node_definitions_follow_the_house_rules(comfy):
    mapping = comfy["nodes"].NODE_CLASS_MAPPINGS
    assert len(mapping) >= 8
    for name, cls in mapping.items():
        assert name.startswith("UniAVGen") and cls.CATEGORY == "UniAVGen" and cls.DESCRIPTION
        assert callable(getattr(cls, cls.FUNCTION)) and len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES)
        spec = cls.INPUT_TYPES()
        for section in ("required", "optional"):
            for input_name, (kind, options) in spec.get(section, {}).items():
                assert options.get("tooltip"), f"{name}.{input_name} has no tooltip"
                if isinstance(kind, list):
                    assert options.get("default", kind[0] if kind else None) in kind or not kind
        assert name in comfy["nodes"].NODE_DISPLAY_NAME_MAPPINGS


def test_folders_registered_safely_and_choices_listed(comfy):
    fp = comfy["fp"]
    paths, exts = fp.folder_names_and_paths["uniavgen"]
    assert exts == fp.supported_pt_extensions and str(comfy["base"] / "models" / "uniavgen") in paths
    (comfy["base"] / "models" / "uniavgen" / "notes.txt").write_text("not a model")
    single = comfy["base"] / "models" / "diffusion_models" / "uniavgen_merged.safetensors"
    single.write_bytes(b"")
    loader = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenModelLoader"].INPUT_TYPES()
    choices = loader["required"]["model"][0]
    assert "UniAVGen/" in choices and "uniavgen_merged.safetensors" in choices
    assert not any("00001-of" in c or c.endswith(".txt") for c in choices)      # shards and notes hidden
    vocoders = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenVocoderLoader"].INPUT_TYPES()["required"]["vocoder"][0]
    assert vocoders == ["code2wav_bigvgan_model/", "griffin-lim (weight-free)"]
    single.unlink()


def test_shipped_small_model_and_codec_are_listed_without_copying(comfy):
    from nodes import folders
    fp = comfy["fp"]
    for key, exts in (("uniavgen", fp.supported_pt_extensions), ("uniavgen_codecs", {".safetensors"})):
        paths, registered = fp.folder_names_and_paths[key]
        assert paths[-2:] == [str(comfy["base"] / "models" / key), str(folders.BUILTIN / key)] and registered == exts
    loader = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenModelLoader"]
    assert MINI in loader.INPUT_TYPES()["required"]["model"][0] and loader.VALIDATE_INPUTS(model=MINI) is True
    codecs = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenVideoCodecLoader"]
    assert codecs.INPUT_TYPES()["required"]["codec"][0] == [MINI_CODEC]
    assert "models/uniavgen_codecs" in codecs.VALIDATE_INPUTS(codec="other.safetensors")
    assert folders.resolve(MINI, folders.DIT_KEYS, "UniAVGen model") == folders.BUILTIN / "uniavgen" / MINI


def _age(root, seconds=100):
    """Every folder under root modified `seconds` ago (older than the listing's racy window)."""
    old = time.time() - seconds
    for folder, _, _ in os.walk(root):
        os.utime(folder, (old, old))


def test_model_listing_is_cached_until_a_folder_changes(comfy, monkeypatch):
    from nodes import folders
    models = comfy["base"] / "models"
    _age(models)
    walks = []
    real_walk = os.walk
    monkeypatch.setattr(folders.os, "walk", lambda *a, **k: walks.append(a[0]) or real_walk(*a, **k))
    first = folders.dit_choices()
    walked = len(walks)
    assert walked > 0 and folders.dit_choices() == first and len(walks) == walked      # served from the cache
    extra = models / "diffusion_models" / "sub"
    extra.mkdir()
    (extra / "new.safetensors").write_bytes(b"")
    assert "sub/new.safetensors" in folders.dit_choices() and len(walks) > walked
    (extra / "new.safetensors").unlink()
    extra.rmdir()
    assert "sub/new.safetensors" not in folders.dit_choices()


def test_link_loops_and_back_links_are_listed_once(comfy):
    from nodes import folders
    root = comfy["base"] / "models" / "uniavgen"
    (root / "loop").symlink_to(root, target_is_directory=True)
    (root / "UniAVGen" / "back").symlink_to(root / "UniAVGen", target_is_directory=True)
    try:
        choices = folders.dit_choices()
        assert choices.count("UniAVGen/") == 1 and not any(c.startswith(("loop/", "UniAVGen/back")) for c in choices)
    finally:
        (root / "loop").unlink()
        (root / "UniAVGen" / "back").unlink()


def test_models_linked_in_from_a_shared_store_load(comfy, tmp_path):
    """A folder and a file linked into models/uniavgen from elsewhere are listed and load; names
    still cannot leave the folders (test_choices_cannot_escape_the_model_folders)."""
    from nodes import folders
    store = tmp_path / "store"
    shutil.copytree(comfy["base"] / "models" / "uniavgen" / "UniAVGen", store / "UniAVGen_shared", symlinks=True)
    root = comfy["base"] / "models" / "uniavgen"
    (root / "shared").symlink_to(store / "UniAVGen_shared", target_is_directory=True)
    (root / "mini_link.safetensors").symlink_to(folders.BUILTIN / "uniavgen" / MINI)
    try:
        assert {"shared/", "mini_link.safetensors"} <= set(folders.dit_choices())
        for name in ("shared/", "mini_link.safetensors"):
            (loaded,) = run(comfy, "UniAVGenModelLoader", model=name, weight_dtype="fp32")
            assert loaded.model.diffusion_model.config.num_layers in (6, 30)
    finally:
        (root / "shared").unlink()
        (root / "mini_link.safetensors").unlink()


def test_example_inputs_are_copied_once_and_never_over_a_users_file(comfy):
    from nodes import examples
    inputs = comfy["base"] / "input"
    inputs.mkdir(exist_ok=True)
    (inputs / "uniavgen_voice.wav").write_bytes(b"the user's own recording")
    copied = comfy["nodes"].install_example_inputs()
    assert sorted(p.name for p in copied) == ["uniavgen_clip.mp4", "uniavgen_face.png", "uniavgen_long_speech.wav",
                                              "uniavgen_speech.wav"]
    assert (inputs / "uniavgen_voice.wav").read_bytes() == b"the user's own recording"
    assert (inputs / "uniavgen_face.png").read_bytes() == (examples.EXAMPLES / "uniavgen_face.png").read_bytes()
    assert comfy["nodes"].install_example_inputs() == []


@pytest.mark.parametrize("state", ["dangling link", "link to a file outside", "a file in place of input/",
                                   "unwritable input/"])
def test_the_example_copy_never_writes_outside_input_and_never_stops_the_pack(comfy, tmp_path, monkeypatch,
                                                                             caplog, state):
    """Whatever state ComfyUI's input folder is in, the copy writes only new plain files inside it, and a
    folder that cannot take them is said once in the log instead of raising (the pack must load)."""
    from nodes import examples
    fp = comfy["fp"]
    base = tmp_path / "comfy_base"
    outside = tmp_path / "outside"
    outside.mkdir()
    inputs = base / "input"
    monkeypatch.setattr(fp, "get_input_directory", lambda: str(inputs))
    base.mkdir()
    if state == "a file in place of input/":
        inputs.write_bytes(b"not a folder")
    else:
        inputs.mkdir()
    if state == "dangling link":
        (inputs / "uniavgen_face.png").symlink_to(outside / "planted.png")
    if state == "link to a file outside":
        (outside / "mine.wav").write_bytes(b"the user's file")
        (inputs / "uniavgen_voice.wav").symlink_to(outside / "mine.wav")
    if state == "unwritable input/":
        real_open = os.open
        monkeypatch.setattr(examples.os, "open", lambda path, *a, **k: (_ for _ in ()).throw(
            PermissionError(13, "Permission denied", str(path))) if Path(path).parent == inputs else real_open(
            path, *a, **k))
    with caplog.at_level("INFO", logger="UniAVGen"):
        copied = comfy["nodes"].install_example_inputs()
    assert sorted(p.name for p in outside.iterdir()) == (["mine.wav"] if state == "link to a file outside" else [])
    if state == "link to a file outside":
        assert (outside / "mine.wav").read_bytes() == b"the user's file"
    assert all(p.parent == inputs and p.is_file() and not p.is_symlink() for p in copied)
    if state == "a file in place of input/":
        assert copied == [] and inputs.read_bytes() == b"not a folder"
    if state == "unwritable input/":
        assert copied == [] and list(inputs.iterdir()) == []
    if state in ("dangling link", "link to a file outside"):
        assert len(copied) == 4 and (inputs / ("uniavgen_face.png" if state == "dangling link"
                                               else "uniavgen_voice.wav")).is_symlink()
    if state != "link to a file outside":
        assert sum("not copied" in r.getMessage() for r in caplog.records) == 1


def test_every_input_file_a_workflow_loads_ships_as_an_example():
    import json
    from nodes import examples
    wanted = set()
    for path in (REPO / "workflows" / "api").glob("*.json"):
        for node in json.loads(path.read_text()).values():
            for key in ("image", "audio", "file", "video"):
                value = node["inputs"].get(key)
                if isinstance(value, str) and "." in value:
                    wanted.add(value)
    assert wanted and wanted <= {p.name for p in examples.EXAMPLES.iterdir()}


def test_a_yaml_created_key_with_no_extensions_is_repaired(comfy):
    fp = comfy["fp"]
    saved = fp.folder_names_and_paths.pop("uniavgen")
    fp.add_model_folder_path("uniavgen", "/elsewhere/uniavgen")          # as extra_model_paths.yaml does
    assert fp.folder_names_and_paths["uniavgen"][1] == set()
    comfy["nodes"].register_folders()
    paths, exts = fp.folder_names_and_paths["uniavgen"]
    assert "/elsewhere/uniavgen" in paths and saved[0][0] in paths and exts == fp.supported_pt_extensions
    fp.folder_names_and_paths["uniavgen"] = saved


def test_loaders_say_where_a_missing_model_goes(comfy):
    loader = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenModelLoader"]
    assert loader.VALIDATE_INPUTS(model="UniAVGen/") is True
    assert "put the official UniAVGen folder" in loader.VALIDATE_INPUTS(model="gone/")
    vocoder = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenVocoderLoader"]
    assert "code2wav_bigvgan_model folder" in vocoder.VALIDATE_INPUTS(vocoder="nothing/")


def test_choices_cannot_escape_the_model_folders(comfy):
    from nodes import folders
    for bad in ("../../etc/passwd", "/etc/passwd", "UniAVGen/../../x", "a\x00b.safetensors", "x" * 300 + ".safetensors",
                "UniAVGen/" + "d" * 256 + "/m.safetensors", "", None, 7):
        with pytest.raises(ValueError, match="not a name from the model list"):
            folders.resolve(bad, folders.DIT_KEYS, "UniAVGen model")
    with pytest.raises(FileNotFoundError, match="missing.safetensors' not found in .*models/uniavgen"):
        folders.resolve("missing.safetensors", folders.DIT_KEYS, "UniAVGen model")


@pytest.fixture(scope="module")
def model(comfy):
    (patcher,) = run(comfy, "UniAVGenModelLoader", model="UniAVGen/", weight_dtype="fp32")
    return patcher


def test_model_loader_returns_a_model_patcher_with_comfy_ops(model):
    net = model.model.diffusion_model
    assert model.load_device.type == "cpu" and model.size > 0
    assert getattr(net.blocks[0].self_attn.q, "comfy_cast_weights", False)
    assert net.compute_dtype == torch.float32 and net.config.dim == 96


def test_model_loader_wrong_file_is_explained(comfy, tmp_path):
    from safetensors.torch import save_file
    bad = comfy["base"] / "models" / "diffusion_models" / "wan22_ti2v.safetensors"
    save_file({"patch_embedding.weight": torch.zeros(8, 48, 1, 2, 2), "blocks.0.self_attn.q.weight": torch.zeros(8, 8)},
              bad)
    try:
        with pytest.raises(ValueError, match="plain Wan2.2-TI2V-5B"):
            run(comfy, "UniAVGenModelLoader", model="wan22_ti2v.safetensors", weight_dtype="auto")
    finally:
        bad.unlink()


def speech(comfy, model, text="Hello there.", ref=""):
    (s,) = run(comfy, "UniAVGenSpeechText", model=model, text=text, language="auto", reference_text=ref)
    return s


def test_speech_text_reports_unknown_characters_and_empty_text(comfy, model):
    (s,), ui = messages(comfy, "UniAVGenSpeechText", model=model, text="It’s fine 😀", language="en")
    assert s.tokens.unknown == ["😀"] and s.text == "It's fine 😀"      # the release's vocab.txt has "'", not "’"
    assert any("1 typographic quote" in m for m in ui)
    assert any("not in the speech vocabulary" in m and "letters in both cases, digits" in m for m in ui)
    for text, said in (("  ", "(empty)"), (" ?! ... ", "(only '?! ...')"), ("—「」", "(only")):
        _, ui = messages(comfy, "UniAVGenSpeechText", model=model, text=text, language="auto")
        assert any(f"has no words {said}" in m and "A2V" in m for m in ui), ui     # A2V needs none: said so
    ravg = speech(comfy, model, "Hi.", ref="Yes")
    assert ravg.null.chars == ["Y", "e", "s", " "]


def image(h=96, w=160, frames=1):
    y, x = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    return torch.stack([y, x, (y + x) / 2], -1)[None].repeat(frames, 1, 1, 1)


def reference(comfy, **kw):
    args = dict(image=image(), vae=comfy["vae"], resolution="short side", short_side=64, crop="none", aspect="keep")
    args.update(kw)
    return run(comfy, "UniAVGenReferenceImage", **args)


def test_reference_image_sizes_latent_and_mask(comfy):
    ref, img, mask = reference(comfy)
    assert img.shape == (1, 64, 96, 3) and ref.latent.shape == (48, 1, 4, 6) and mask.shape == (1, 64, 96)
    ref, img, _ = reference(comfy, resolution="official (short side 736)")
    assert img.shape == (1, 736, 1248, 3)


def test_reference_image_says_when_it_upscales_or_is_too_wide(comfy):
    def ui_for(img, short_side=64):
        return messages(comfy, "UniAVGenReferenceImage", image=img, vae=comfy["vae"], resolution="short side",
                        short_side=short_side, crop="none", aspect="keep")[1]
    assert ui_for(image(96, 160)) == []
    assert any("upscaled 4.0x" in m and "soft" in m for m in ui_for(image(32, 48), short_side=128))
    assert any("2.5:1, wider than the model was trained on" in m for m in ui_for(image(32, 80)))
    with pytest.raises(ValueError, match=r"2000x4 px, 500.0:1; pictures up to 4:1 are taken"):
        reference(comfy, image=image(4, 2000), resolution="official (short side 736)")


def test_reference_face_crop_falls_back_visibly_and_uses_a_face(comfy, monkeypatch):
    (ref, img, mask), ui = messages(comfy, "UniAVGenReferenceImage", image=image(), vae=comfy["vae"],
                                    resolution="short side", short_side=64, crop="face", aspect="1:1")
    assert img.shape == (1, 64, 64, 3) and any("cropped around the centre" in m for m in ui)
    assert float(mask.sum()) == 0
    import nodes.inputs as inputs
    monkeypatch.setattr(inputs, "detect_face", lambda frame, root: (20.0, 100.0, 60.0, 140.0))
    (ref, img, mask), ui = messages(comfy, "UniAVGenReferenceImage", image=image(), vae=comfy["vae"],
                                    resolution="short side", short_side=64, crop="face", aspect="1:1")
    assert not ui and img.shape == (1, 64, 64, 3)
    rows, cols = torch.nonzero(mask[0], as_tuple=True)
    assert 0 < float(mask.mean()) < 0.5 and cols.float().mean() > 32       # the face sits right of centre


def test_wan21_vae_is_refused(comfy):
    from fake_vae import FakeWanVAE
    with pytest.raises(ValueError, match="16 latent channels.*Wan2.2 VAE"):
        reference(comfy, vae=FakeWanVAE(latent_channels=16))


def test_video_encode_resamples_to_16_fps_and_4k_plus_1(comfy):
    (video, frames), ui = messages(comfy, "UniAVGenVideoEncode", images=image(frames=40), fps=30.0,
                                   vae=comfy["vae"], resolution="short side", short_side=64)
    assert video.frames == 21 and frames.shape == (21, 64, 96, 3) and video.latent.shape == (48, 6, 4, 6)
    assert any("to 21 frames at 16 fps" in m for m in ui)
    with pytest.raises(ValueError, match="at least 5"):
        run(comfy, "UniAVGenVideoEncode", images=image(frames=3), fps=16.0, vae=comfy["vae"],
            resolution="short side", short_side=64)


def sampler_args(comfy, model, **kw):
    args = dict(model=model, speech=speech(comfy, model), positive=caption(), negative=caption(rows=1, seed=1),
                task="auto", duration_seconds=0.5625, steps=2, shift=5.0, seed=7, video_cfg=3.0, audio_cfg=2.0,
                macfg_fraction=0.5, slg_layer=11, reference=reference(comfy)[0])
    args.update(kw)
    return args


def test_sampler_says_when_the_clip_is_far_past_the_trained_length(comfy, model):
    assert model.model.trained_frames == 81                         # the release: 5.0625 s
    _, ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model, duration_seconds=8.0625, steps=1))
    assert any("8.06 s is far past the 5.06 s this model was trained on" in m for m in ui), ui
    _, ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model, steps=1))
    assert not any("far past" in m for m in ui)


def test_trained_length_comes_from_the_loaded_model(comfy, mini):
    from uniavgen_core.mini.pipeline import MINI_SAMPLING
    _, ui = messages(comfy, "UniAVGenModelLoader", model=MINI, weight_dtype="auto")
    assert mini[0].model.trained_frames == 49 and ui == [
        "trained on 3.06 s clips (49 frames)"]
    _, ui = messages(comfy, "UniAVGenModelLoader", model="UniAVGen/", weight_dtype="fp32")
    assert ui[0].startswith("trained on 5.06 s clips (81 frames")
    _, ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, mini[0], duration_seconds=5.0625, steps=1,
                                                               reference=reference(comfy, vae=mini[1])[0]))
    assert any("5.06 s is far past the 3.06 s this model was trained on" in m for m in ui), ui
    spec = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenSampler"].INPUT_TYPES()["required"]
    tip = lambda name: spec[name][1]["tooltip"]
    assert "loaded model was trained on" in tip("duration_seconds") and "Model Loader" in tip("duration_seconds")
    assert "release: 5.06 s, UniAVGen-mini: 3.06 s" in tip("duration_seconds")     # 81 and 49 frames
    assert f"UniAVGen-mini: {MINI_SAMPLING.steps})" in tip("steps")
    assert f"UniAVGen-mini: {MINI_SAMPLING.audio_cfg:g})" in tip("audio_cfg")
    assert f"UniAVGen-mini: {MINI_SAMPLING.video_cfg:g})" in tip("video_cfg")


def test_sampler_avg_outputs_native_latent_mel_and_mask(comfy, model):
    comfy["utils"].updates.clear()
    comfy["preview"].enabled = True
    try:
        (latent, mel, mask), ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model))
    finally:
        comfy["preview"].enabled = False
    assert ui[0] == "task: AVG"
    assert latent["samples"].shape == (1, 48, 3, 4, 6)                       # 9 frames = 0.5625 s
    assert mel["mel"].shape == (1, 56, 80) and mask.shape == (9, 64, 96)
    assert float(mask.min()) >= 0 and float(mask.max()) <= 1
    assert [u[0] for u in comfy["utils"].updates] == [1, 2] and comfy["preview"].decoded
    assert comfy["mm"].loaded[-1][0] == [model] and comfy["mm"].loaded[-1][1] > 0
    # the LATENT is in the VAE's own space: process_in recovers the model's normalised latent,
    # and its first frame is the reference latent written back
    from comfy.latent_formats import Wan22
    normalised = Wan22().process_in(latent["samples"])
    ref = reference(comfy)[0].latent
    assert torch.allclose(normalised[0, :, :1], ref, atol=1e-5)
    decoded = comfy["vae"].decode(latent["samples"])
    assert decoded.shape == (1, 9, 64, 96, 3)


def test_sampler_ravg_a2v_v2a_and_auto_task(comfy, model):
    (voice,) = run(comfy, "UniAVGenAudioEncode", audio=tone200(1.0, 44100, 2), role="reference voice (RAVG)")
    (drive,) = run(comfy, "UniAVGenAudioEncode", audio=tone200(2.0, 16000, 1), role="driving audio (A2V)")
    (video, _) = run(comfy, "UniAVGenVideoEncode", images=image(frames=9), fps=16.0, vae=comfy["vae"],
                     resolution="short side", short_side=64)
    (_, mel, _), ui = messages(comfy, "UniAVGenSampler", **sampler_args(
        comfy, model, voice=voice, speech=speech(comfy, model, "Hi.", ref="Yes")))
    assert ui[0] == "task: RAVG" and mel["mel"].shape == (1, 56, 80)
    (_, mel, _), ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model, driving_audio=drive))
    assert ui[0] == "task: A2V" and any("trimmed" in m for m in ui)
    (latent, _, _), ui = messages(comfy, "UniAVGenSampler", **sampler_args(
        comfy, model, driving_video=video, reference=None, duration_seconds=5.0))
    assert ui[0] == "task: V2A" and any("dubbing all of it" in m for m in ui)
    from comfy.latent_formats import Wan22
    assert torch.allclose(Wan22().process_in(latent["samples"])[0], video.latent, atol=1e-5)
    (long_video, _) = run(comfy, "UniAVGenVideoEncode", images=image(frames=17), fps=16.0, vae=comfy["vae"],
                          resolution="short side", short_side=64)
    (latent, mel, _), ui = messages(comfy, "UniAVGenSampler", **sampler_args(
        comfy, model, driving_video=long_video, reference=None, duration_seconds=0.5625))
    assert any("dubbing the first 0.5625 s of the 1.062 s video" in m for m in ui)
    assert latent["samples"].shape[2] == 3 and mel["mel"].shape[1] == 56
    assert torch.allclose(Wan22().process_in(latent["samples"])[0], long_video.latent[:, :3], atol=1e-5)


def test_sampler_bad_inputs_are_explained(comfy, model):
    from uniavgen_core.frontend.jobs import JobError
    with pytest.raises(JobError, match="RAVG needs a reference voice"):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, task="RAVG"))
    (voice,) = run(comfy, "UniAVGenAudioEncode", audio=tone200(1.0, 44100, 2), role="reference voice (RAVG)")
    with pytest.raises(JobError, match="encoded as 'reference voice"):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, driving_audio=voice))
    with pytest.raises(JobError, match="umT5-XXL features of width 64"):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, positive=caption(width=4096)))
    with pytest.raises(JobError, match="needs a reference face"):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, reference=None))
    (video, _) = run(comfy, "UniAVGenVideoEncode", images=image(frames=9), fps=16.0, vae=comfy["vae"],
                     resolution="short side", short_side=32)
    with pytest.raises(JobError, match="differ in size"):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, driving_video=video))


def test_sampler_honours_interrupt(comfy, model):
    comfy["mm"].interrupt_current_processing(True)
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model))
    assert not comfy["mm"].processing_interrupted()


class FakeSampler:
    """A SAMPLER as ComfyUI's KSAMPLER runs one: the model sampling's noise scaling, Euler on the data prediction
    x <- x + (x - denoised) / sigma * (sigma_next - sigma), the callback after each call of the model. `extra`
    stands for what other samplers do: read a part of a ComfyUI MODEL, or hook into its CFG."""

    def __init__(self, extra=None):
        self.extra, self.seeds = extra, []

    def sample(self, model_wrap, sigmas, extra_args, callback, noise, latent_image=None, denoise_mask=None,
               disable_pbar=False):
        from comfy.model_sampling import CONST
        sampling = model_wrap.inner_model.model_sampling
        assert isinstance(sampling, CONST) and model_wrap.model_patcher.get_model_object("model_sampling") is sampling
        options = {}
        if self.extra == "model":
            model_wrap.inner_model.latent_format.process_in(noise)
        elif self.extra == "cfg hook":
            options["sampler_post_cfg_function"] = [lambda args: args["denoised"]]
        self.seeds.append(extra_args["seed"])
        x = sampling.noise_scaling(sigmas[0], noise, latent_image)
        for i in range(len(sigmas) - 1):
            denoised = model_wrap(x, sigmas[i] * x.new_ones(len(x)), model_options=options, seed=extra_args["seed"])
            callback(i, denoised, x, len(sigmas) - 1)
            x = x + (x - denoised) / sigmas[i] * (sigmas[i + 1] - sigmas[i])
        return sampling.inverse_noise_scaling(sigmas[-1], x)


def test_a_comfyui_sampler_and_sigmas_drive_the_sampler(comfy, model):
    """A SAMPLER (Euler), UniAVGen Schedule's sigmas, or both: the pack's own Euler's clip to float32 rounding,
    with the progress bar, previews and face masks."""
    from helpers import rel_l2
    schedule = lambda **kw: run(comfy, "UniAVGenSchedule", **{"steps": 3, "shift": 5.0, "schedule": "release",
                                                                "macfg_fraction": 0.5, **kw})[0]
    ours = run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, steps=3))
    fake = FakeSampler()
    for extra in (dict(sampler=fake), dict(sigmas=schedule()), dict(sampler=fake, sigmas=schedule())):
        comfy["utils"].updates.clear()
        comfy["preview"].enabled = True
        try:
            (latent, mel, mask) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, steps=3, **extra))
        finally:
            comfy["preview"].enabled = False
        assert rel_l2(latent["samples"], ours[0]["samples"]) <= 1e-5 and rel_l2(mel["mel"], ours[1]["mel"]) <= 1e-5
        assert mask.shape == ours[2].shape and [u[:2] for u in comfy["utils"].updates] == [(1, 3), (2, 3), (3, 3)]
        assert all(u[2] is not None for u in comfy["utils"].updates)
    assert fake.seeds == [7, 7]
    (latent, _, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, sigmas=schedule(steps=5)))
    assert comfy["utils"].updates[-1][:2] == (5, 5)                 # the sigmas set the steps


def test_the_schedule_node_gives_the_schedules_sigmas(comfy):
    from uniavgen_core.sampling.schedule import SCHEDULES, build, macfg_switch
    spec = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenSchedule"].INPUT_TYPES()["required"]
    assert spec["schedule"][0] == list(SCHEDULES) and list(spec) == ["steps", "shift", "schedule", "macfg_fraction"]
    for name in SCHEDULES:
        (sigmas,) = run(comfy, "UniAVGenSchedule", steps=12, shift=5.0, schedule=name, macfg_fraction=0.4)
        assert sigmas.dtype == torch.float32 and sigmas.device.type == "cpu" and sigmas.shape == (13,)
        assert torch.equal(sigmas, build(name, 12, 5.0, 0.4).keys / 1000)
        assert float(sigmas[0]) == pytest.approx(1.0) and float(sigmas[-1]) == 0.0
    assert float(torch.tensor(macfg_switch(0.4, 5.0)) / 1000) in sigmas.tolist()      # beta: the switch is a step
    sampler = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenSampler"].INPUT_TYPES()
    assert list(sampler["optional"])[4:6] == ["sampler", "sigmas"]
    assert sampler["optional"]["sampler"][0] == "SAMPLER" and sampler["optional"]["sigmas"][0] == "SIGMAS"


@pytest.mark.parametrize("sigmas, message", [
    ([14.6146, 5.0, 0.0292, 0.0], "start at 14.61, above 1.*sigma_max.*UniAVGen Schedule, which makes this model's"),
    ([1.0, 0.5, 0.03], "end at 0.03, not at 0"),
])
def test_sigmas_that_do_not_fit_a_flow_model_are_explained(comfy, model, sigmas, message):
    from uniavgen_core.frontend.jobs import JobError
    with pytest.raises(JobError, match=message):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, sigmas=torch.tensor(sigmas)))


@pytest.mark.parametrize("extra, message", [
    ("model", "needs a part of a ComfyUI MODEL .*AttributeError.*latent_format"),
    ("cfg hook", "hooks into ComfyUI's CFG .sampler_post_cfg_function."),
])
def test_a_sampler_that_cannot_drive_uniavgen_is_named(comfy, model, extra, message):
    from nodes.samplers import SamplerError
    with pytest.raises(SamplerError, match=f"sampler 'FakeSampler' cannot drive UniAVGen: .*{message}"):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, sampler=FakeSampler(extra), steps=1))


def test_a_comfyui_sampler_honours_interrupt(comfy, model):
    comfy["mm"].interrupt_current_processing(True)
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, sampler=FakeSampler()))
    assert not comfy["mm"].processing_interrupted()


SAMPLING_WIDGETS = ["preset", "solver", "schedule", "cache"]


def test_the_pack_sampling_choices_are_optional_widgets_after_the_old_inputs(comfy):
    """Appended after every input a saved workflow has, so its widget values keep their places, and optional, so an
    API prompt without them runs as before; their menus are the core's."""
    from uniavgen_core.sampling.presets import PRESETS, solver_choices
    from uniavgen_core.sampling.schedule import SCHEDULES
    spec = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenSampler"].INPUT_TYPES()
    assert list(spec["required"]) == ["model", "speech", "positive", "negative", "task", "duration_seconds", "steps",
                                      "shift", "seed", "video_cfg", "audio_cfg", "macfg_fraction", "slg_layer"]
    assert list(spec["optional"]) == ["reference", "voice", "driving_audio", "driving_video", "sampler", "sigmas",
                                      *SAMPLING_WIDGETS]
    opt = spec["optional"]
    assert opt["preset"][0] == ["custom", *PRESETS] and opt["preset"][1]["default"] == "custom"
    assert opt["solver"][0] == solver_choices() and opt["solver"][1]["default"] == "euler"
    assert {"euler", "heun", "dpmpp_2m", "unipc", "unipc_bh1", "unipc_order3"} <= set(opt["solver"][0])
    assert opt["schedule"][0] == list(SCHEDULES) and opt["schedule"][1]["default"] == "release"
    assert opt["cache"][0] == "FLOAT" and opt["cache"][1]["default"] == 0.0 and opt["cache"][1]["max"] == 1.0
    tip = lambda name: opt[name][1]["tooltip"]
    for name, preset in PRESETS.items():
        assert f"{name}" in tip("preset") and preset.describe() in tip("preset")
    for name in opt["solver"][0]:
        assert name in tip("solver"), name
    assert "0 is off" in tip("cache") and "audio separately" in tip("cache")
    assert "step cache still applies" in tip("sampler") and "step cache still applies" in tip("sigmas")


def test_the_default_choices_are_the_old_sampling_bit_for_bit(comfy, model):
    before, ui_before = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model))
    after, ui_after = messages(comfy, "UniAVGenSampler", **sampler_args(
        comfy, model, preset="custom", solver="euler", schedule="release", cache=0.0))
    assert torch.equal(after[0]["samples"], before[0]["samples"]) and torch.equal(after[1]["mel"], before[1]["mel"])
    assert torch.equal(after[2], before[2]) and ui_after == ui_before


def test_a_preset_sets_steps_solver_schedule_and_cache(comfy, model):
    """fast over the node's steps 2 is 12 steps of adams (order 2 with its corrector, the dubbed audio by UniPC up to
    MA-CFG's switch) on the beta_clean schedule, as set by hand, and says so."""
    comfy["utils"].updates.clear()
    (latent, mel, _), ui = messages(comfy, "UniAVGenSampler", **sampler_args(
        comfy, model, preset="fast", solver="heun", schedule="beta", cache=0.5))
    assert comfy["utils"].updates[-1][:2] == (12, 12)
    assert any(m.startswith("preset fast: 12 steps of adams, order 2, with its corrector, dubbing start unipc, on "
                            "the beta_clean schedule")
               for m in ui), ui
    (by_hand, by_hand_mel, _), ui = messages(comfy, "UniAVGenSampler", **sampler_args(
        comfy, model, steps=12, solver="adams_unipc_dubbing", schedule="beta_clean"))
    assert torch.equal(latent["samples"], by_hand["samples"]) and torch.equal(mel["mel"], by_hand_mel["mel"])
    assert not any("preset" in m for m in ui)


def test_the_choices_reach_the_core(comfy, model, monkeypatch):
    import nodes.sampling
    seen = []
    real = nodes.sampling.sample
    monkeypatch.setattr(nodes.sampling, "sample", lambda net, requests, params, **kw: (
        seen.append(params), real(net, requests, params, **kw))[1])
    (latent, _, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, solver="unipc_order3",
                                                                   schedule="beta", cache=0.2))
    (p,) = seen
    assert (p.steps, p.solver, p.solver_options, p.schedule, p.cache) == (2, "unipc", {"order": 3}, "beta", 0.2)
    assert bool(torch.isfinite(latent["samples"]).all())


def test_with_a_comfyui_sampler_the_choices_but_the_solver_apply(comfy, model, monkeypatch):
    """ComfyUI's sampler replaces the pack's solver (said when one other than Euler was chosen); the schedule and the
    step cache still apply to it, and connected sigmas replace the steps and schedule (said when they were chosen)."""
    import nodes.samplers
    from uniavgen_core.sampling.cache import StepCache
    runs = []
    real = nodes.samplers.prepare
    monkeypatch.setattr(nodes.samplers, "prepare", lambda *a, **kw: (runs.append(real(*a, **kw)), runs[-1])[1])
    _, ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model, sampler=FakeSampler(), steps=3,
                                                               solver="dpmpp_2m", schedule="beta", cache=0.3))
    assert "ComfyUI's sampler 'FakeSampler' steps in place of the solver dpmpp_2m; disconnect it to use dpmpp_2m" in ui
    assert isinstance(runs[-1].velocity, StepCache) and runs[-1].velocity.threshold == 0.3
    assert runs[-1].schedule.breaks and len(runs[-1].schedule.keys) == 4       # beta: MA-CFG's switch on a step
    (sigmas,) = run(comfy, "UniAVGenSchedule", steps=5, shift=5.0, schedule="release", macfg_fraction=0.5)
    _, ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model, sampler=FakeSampler(), sigmas=sigmas,
                                                               preset="fast"))
    assert "the noise levels given (5 steps) replace the 12 steps on the beta_clean schedule" in ui
    assert "ComfyUI's sampler 'FakeSampler' steps in place of the solver adams; disconnect it to use adams" in ui
    _, ui = messages(comfy, "UniAVGenSampler", **sampler_args(comfy, model, sampler=FakeSampler(), sigmas=sigmas))
    assert not any("in place of" in m or "replace" in m for m in ui)       # the old inputs alone: as before


@pytest.mark.parametrize("choice, message", [
    (dict(preset="quick"), "unknown preset 'quick': choose custom .* or one of release, fast, balanced"),
    (dict(solver="rk4"), "unknown solver 'rk4': choose one of euler, .*unipc_order3"),
    (dict(schedule="karras"), "unknown schedule 'karras' .choose from release, shifted, beta"),
    (dict(cache=float("nan")), "cache must be a number from 0 .off. to 1, got nan"),
    (dict(cache=1.5), "cache must be a number from 0 .off. to 1, got 1.5"),
    (dict(preset="fast", solver="rk4"), "unknown solver 'rk4'"),
])
def test_a_bad_sampling_choice_is_refused_before_any_work(comfy, model, choice, message):
    from uniavgen_core.frontend.jobs import JobError
    loads = len(comfy["mm"].loaded)
    with pytest.raises(JobError, match=message):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, **choice))
    assert len(comfy["mm"].loaded) == loads


def test_audio_decode_gives_24k_audio(comfy, model):
    (vocoder,) = run(comfy, "UniAVGenVocoderLoader", vocoder="code2wav_bigvgan_model/", precision="fp32")
    (_, mel, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, model))
    (audio,) = run(comfy, "UniAVGenAudioDecode", vocoder=vocoder, mel=mel)
    assert audio["sample_rate"] == 24000 and audio["waveform"].shape == (1, 1, 56 * 240)


def test_griffin_lim_needs_no_file_and_decodes(comfy, model):
    loader = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenVocoderLoader"]
    assert loader.VALIDATE_INPUTS(vocoder=GRIFFIN_LIM) is True
    assert GRIFFIN_LIM in loader.VALIDATE_INPUTS(vocoder="nothing/")
    (vocoder,) = run(comfy, "UniAVGenVocoderLoader", vocoder=GRIFFIN_LIM, precision="fp32")
    (_, mel, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, model))
    (audio,) = run(comfy, "UniAVGenAudioDecode", vocoder=vocoder, mel=mel)
    assert audio["sample_rate"] == 24000 and audio["waveform"].shape == (1, 1, 56 * 240)
    assert 0 < float(audio["waveform"].abs().max()) <= 1


@pytest.fixture(scope="module")
def mini(comfy):
    (patcher,) = run(comfy, "UniAVGenModelLoader", model=MINI, weight_dtype="auto")
    (vae,) = run(comfy, "UniAVGenVideoCodecLoader", codec=MINI_CODEC)
    return patcher, vae


def test_codec_vae_round_trip_is_the_codecs_own(comfy, mini):
    from comfy.latent_formats import Wan22
    from nodes.inputs import encode_frames
    vae = mini[1]
    frames = image(h=64, w=96, frames=5)
    own = vae.codec.encode(frames)
    raw = vae.encode(frames)                                 # the Wan2.2 VAE's own space, like ComfyUI's VAE
    assert vae.latent_channels == 48 and raw.shape == (1, 48, 2, 4, 6)
    assert torch.allclose(Wan22().process_in(raw)[0], own, atol=1e-5)
    assert torch.allclose(encode_frames(vae, frames), own, atol=1e-5)       # what the pack's encoders see
    decoded = vae.decode(raw)                                # what VAEDecode calls, then folds the batch
    assert decoded.shape == (1, 5, 64, 96, 3)
    assert torch.allclose(decoded[0], vae.codec.decode(own), atol=1e-5)


def test_codec_loader_refuses_a_file_of_another_kind(comfy):
    from safetensors.torch import save_file
    folder = comfy["base"] / "models" / "uniavgen_codecs"
    folder.mkdir(parents=True, exist_ok=True)
    save_file({"x": torch.zeros(1)}, folder / "vae.safetensors")
    try:
        with pytest.raises(ValueError, match="not a patch-PCA video codec"):
            run(comfy, "UniAVGenVideoCodecLoader", codec="vae.safetensors")
    finally:
        (folder / "vae.safetensors").unlink()


def test_caption_encode_gives_conditioning_and_explains_other_models(comfy, mini, model):
    from uniavgen_core.mini.codecs.caption_hash import HashedCaptionEncoder
    (cond,) = run(comfy, "UniAVGenCaptionEncode", model=mini[0], text="A person with green skin")
    features, extra = cond[0]
    assert features.shape == (1, 5, 64) and extra == {}
    assert torch.equal(features[0], HashedCaptionEncoder(64).encode("a person with green skin"))
    (empty,) = run(comfy, "UniAVGenCaptionEncode", model=mini[0], text=" ")
    assert empty[0][0].shape == (1, 0, 64)
    with pytest.raises(ValueError, match="no built-in caption encoder.*CLIPTextEncode"):
        run(comfy, "UniAVGenCaptionEncode", model=model, text="a face")


def test_synthetic_face_is_deterministic_per_seed(comfy):
    face, text = run(comfy, "UniAVGenSyntheticFace", seed=5, size=128)
    again, same = run(comfy, "UniAVGenSyntheticFace", seed=5, size=128)
    other, _ = run(comfy, "UniAVGenSyntheticFace", seed=6, size=128)
    assert face.shape == (1, 128, 128, 3) and face.dtype == torch.float32 and 0 <= float(face.min())
    assert torch.equal(face, again) and text == same and text.startswith("a person with")
    assert not torch.equal(face, other)
    assert run(comfy, "UniAVGenSyntheticFace", seed=5, size=96)[0].shape == (1, 96, 96, 3)
    with pytest.raises(ValueError, match="multiple of 32"):
        run(comfy, "UniAVGenSyntheticFace", seed=5, size=100)


def test_speech_text_fits_capitals_to_the_small_models_vocabulary(comfy, mini):
    (s,), ui = messages(comfy, "UniAVGenSpeechText", model=mini[0], text="Hello! I have 3 cats", language="auto",
                        reference_text="")
    assert s.text == "hello! i have 3 cats" and s.tokens.unknown == ["3"]
    assert ui[0].startswith("lower-cased 2 letter(s) this model only knows in lower case")
    assert "'3'" in ui[1] and "write numbers as words" in ui[1]


def test_mini_model_runs_with_nothing_downloaded(comfy, mini):
    """The mini demo workflow's chain, shortened: face -> captions -> codec -> sampler -> frames + speech."""
    model, vae = mini
    face, text = run(comfy, "UniAVGenSyntheticFace", seed=1, size=128)
    (positive,) = run(comfy, "UniAVGenCaptionEncode", model=model, text=text)
    (negative,) = run(comfy, "UniAVGenCaptionEncode", model=model, text="")
    ref, img, _ = run(comfy, "UniAVGenReferenceImage", image=face, vae=vae, resolution="short side", short_side=128,
                      crop="none", aspect="keep")
    assert img.shape == (1, 128, 128, 3)
    args = sampler_args(comfy, model, speech=speech(comfy, model, "hello there."), positive=positive,
                        negative=negative, reference=ref)
    (latent, mel, _), ui = messages(comfy, "UniAVGenSampler", **args)
    assert "skip-layer guidance off: layer 11 is beyond this model's 6 layers" in ui
    assert latent["samples"].shape == (1, 48, 3, 8, 8) and torch.isfinite(latent["samples"]).all()
    frames = vae.decode(latent["samples"])
    assert frames.shape == (1, 9, 128, 128, 3)
    (vocoder,) = run(comfy, "UniAVGenVocoderLoader", vocoder=GRIFFIN_LIM, precision="fp32")
    (audio,) = run(comfy, "UniAVGenAudioDecode", vocoder=vocoder, mel=mel)
    assert audio["waveform"].shape == (1, 1, 56 * 240)
    _, ui = messages(comfy, "UniAVGenSampler", **dict(args, slg_layer=-1))
    assert not any("skip-layer" in m for m in ui)


def test_convert_node_writes_one_fp8_file_the_loader_keeps_in_fp8(comfy, model, speech_vocab):
    _, ui = messages(comfy, "UniAVGenConvertModel", model="UniAVGen/", format="fp8", filename="tiny_fp8")
    path = comfy["base"] / "models" / "uniavgen" / "tiny_fp8.safetensors"
    assert path.is_file() and "wrote" in ui[0]
    before = path.stat().st_mtime_ns
    _, ui = messages(comfy, "UniAVGenConvertModel", model="UniAVGen/", format="fp8", filename="tiny_fp8")
    assert ui[0].startswith("skipped:") and "never overwritten" in ui[0] and path.stat().st_mtime_ns == before
    assert math.isnan(comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenConvertModel"].IS_CHANGED())   # never cached
    with pytest.raises(ValueError, match="letters, digits"):
        run(comfy, "UniAVGenConvertModel", model="UniAVGen/", format="bf16", filename="../escape")
    (fp8_model,) = run(comfy, "UniAVGenModelLoader", model="tiny_fp8.safetensors", weight_dtype="auto")
    net = fp8_model.model.diffusion_model
    assert net.blocks[0].self_attn.q.weight.dtype == torch.float8_e4m3fn
    # built from ComfyUI's scaled-fp8 layers: unquantised Linears carry a scale of 1
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert all(type(m).__qualname__ == "scaled_fp8_ops.<locals>.scaled_fp8_op.Linear" for m in linears)
    assert net.blocks[0].self_attn.q.scale_weight != 1 and net.time_projection[1].scale_weight == 1
    with torch.no_grad():
        x = torch.randn(2, net.config.dim, dtype=torch.bfloat16)
        q = net.blocks[0].self_attn.q
        want = x.float() @ (q.weight.float() * q.scale_weight).T + q.bias.float()
        assert torch.allclose(q(x).float(), want, rtol=2e-2, atol=2e-2)
    (words,) = run(comfy, "UniAVGenSpeechText", model=fp8_model, text="Hi", language="en")   # embedded vocab
    assert words.tokens.ids == SpeechTokenizer.from_file(speech_vocab).encode("Hi", "en").ids
    (latent, mel, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, fp8_model, speech=words))
    assert latent["samples"].shape == (1, 48, 3, 4, 6) and torch.isfinite(mel["mel"]).all()
    path.unlink()


def test_lora_loader_hands_low_rank_patches_to_the_model_patcher(comfy, model):
    from safetensors.torch import save_file
    folder = comfy["base"] / "models" / "loras"
    folder.mkdir(exist_ok=True)
    net = model.model.diffusion_model
    gen = torch.Generator().manual_seed(0)
    lora = {}
    for name, layer in (("diffusion_model.blocks.0.self_attn.q", "blocks.0.self_attn.q"),
                        ("audio_blocks.4.ffn.2", "audio_blocks.4.ffn.2"),
                        ("transformer.blocks.1.attn2.to_v", "blocks.1.cross_attn.v"),
                        ("blocks.99.self_attn.q", "blocks.0.self_attn.q")):
        linear = net.get_submodule(layer)
        lora[f"{name}.lora_A.weight"] = torch.randn(2, linear.in_features, generator=gen)
        lora[f"{name}.lora_B.weight"] = torch.randn(linear.out_features, 2, generator=gen)
    save_file(lora, str(folder / "tiny_lora.safetensors"))
    save_file({"lora_unet_down_blocks_0_proj_in.lora_down.weight": torch.zeros(2, 4)}, str(folder / "sd.safetensors"))
    loader = comfy["nodes"].NODE_CLASS_MAPPINGS["UniAVGenLoraLoader"]
    assert loader.INPUT_TYPES()["required"]["lora_name"][0] == ["sd.safetensors", "tiny_lora.safetensors"]
    assert "not in models/loras" in loader.VALIDATE_INPUTS(lora_name="gone.safetensors")

    (patched,), ui = messages(comfy, "UniAVGenLoraLoader", model=model, lora_name="tiny_lora.safetensors", strength=0.7)
    assert set(patched.patches) == {"diffusion_model.blocks.0.self_attn.q.weight",
                                    "diffusion_model.audio_blocks.4.ffn.2.weight",
                                    "diffusion_model.blocks.1.cross_attn.v.weight"}
    assert all(p[0][0] == 0.7 for p in patched.patches.values()) and not model.patches     # the input is untouched
    assert "rank 2: 3 layers" in ui[0] and "1 entries ignored" in ui[0] and "blocks.99.self_attn.q" in ui[0]
    (twice,) = run(comfy, "UniAVGenLoraLoader", model=patched, lora_name="tiny_lora.safetensors", strength=-1.0)
    assert [p[0] for p in twice.patches["diffusion_model.blocks.0.self_attn.q.weight"]] == [0.7, -1.0]   # chained
    (same,) = run(comfy, "UniAVGenLoraLoader", model=model, lora_name="tiny_lora.safetensors", strength=0.0)
    assert same is model
    with pytest.raises(ValueError, match="looks like a Stable Diffusion LoRA"):
        run(comfy, "UniAVGenLoraLoader", model=model, lora_name="sd.safetensors", strength=1.0)
    with pytest.raises(ValueError, match="not a number"):
        run(comfy, "UniAVGenLoraLoader", model=model, lora_name="tiny_lora.safetensors", strength=float("nan"))


def test_an_overflow_while_sampling_names_the_loras_applied(comfy, model):
    """The loader records each LoRA and strength with the model (ComfyUI copies model_options into every
    clone); when a step overflows, the sampler's message names them. The double's patcher does not apply
    patches, so the overflowing weight is made by hand where ComfyUI would apply the LoRA."""
    (fresh,) = run(comfy, "UniAVGenModelLoader", model="UniAVGen/", weight_dtype="fp32", block_swap=0)
    (one,) = run(comfy, "UniAVGenLoraLoader", model=fresh, lora_name="tiny_lora.safetensors", strength=0.5)
    (two,) = run(comfy, "UniAVGenLoraLoader", model=one, lora_name="tiny_lora.safetensors", strength=-2.0)
    net = two.model.diffusion_model
    saved = net.blocks[0].ffn[0].weight.detach().clone()
    try:
        with torch.no_grad():
            net.blocks[0].ffn[0].weight.mul_(1e37)
        with pytest.raises(FloatingPointError, match="LoRAs applied: tiny_lora.safetensors at 0.5, "
                                                     "tiny_lora.safetensors at -2; try without them"):
            run(comfy, "UniAVGenSampler", **sampler_args(comfy, two, steps=1))
        with pytest.raises(FloatingPointError) as plain:
            run(comfy, "UniAVGenSampler", **sampler_args(comfy, fresh, steps=1))
        assert "LoRA" in str(plain.value) and "LoRAs applied" not in str(plain.value)   # none were applied
    finally:
        with torch.no_grad():
            net.blocks[0].ffn[0].weight.copy_(saved)


def test_block_swap_from_the_loader(comfy):
    (swapped,) = run(comfy, "UniAVGenModelLoader", model="UniAVGen/", weight_dtype="fp32", block_swap=6)
    (latent, _, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, swapped))
    net = swapped.model.diffusion_model
    assert net.block_swap.layers == list(range(24, 30))
    # the memory manager is told the resident size and patches in place (into the swapped CPU copies)
    whole = comfy["mm"].module_size(swapped.model)
    assert swapped.size == whole - net.block_swap.host_bytes and net.block_swap.host_bytes > 0
    assert swapped.weight_inplace_update
    (again, _, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, swapped))       # parked, same result
    assert torch.equal(latent["samples"], again["samples"])


def test_caption_zero_padding_is_dropped_and_overlong_prompts_warned(comfy):
    from nodes.sampling import caption_features
    feats, msgs = caption_features(caption(rows=7), 64, 512, "positive")
    assert feats.shape == (7, 64) and not msgs
    assert caption_features(caption(rows=0), 64, 512, "negative")[0].shape == (0, 64)
    long = [[torch.randn(1, 600, 64), {}]]
    feats, msgs = caption_features(long, 64, 512, "positive")
    assert feats.shape == (512, 64) and "longer than 512 tokens" in msgs[0]


def test_chaining_nodes_join_clips_of_any_length_in_step(comfy):
    rate = 24000
    for frames_1, frames_2 in ((9, 9), (81, 17), (13, 97)):
        clip_1 = torch.rand(frames_1, 8, 12, 3)
        (face,) = run(comfy, "UniAVGenLastFrame", images=clip_1)
        assert torch.equal(face[0], clip_1[-1])
        clip_2 = torch.cat([face, torch.rand(frames_2 - 1, 8, 12, 3)])
        audio_1 = {"waveform": torch.rand(1, 1, frames_1 * rate // 16), "sample_rate": rate}
        audio_2 = {"waveform": torch.rand(1, 1, frames_2 * rate // 16), "sample_rate": rate}
        images, audio = run(comfy, "UniAVGenJoinClips", images_1=clip_1, audio_1=audio_1, images_2=clip_2,
                            audio_2=audio_2)
        assert images.shape[0] == frames_1 + frames_2 - 1 and torch.equal(images[frames_1 - 1], clip_1[-1])
        assert audio["waveform"].shape[-1] == images.shape[0] * rate // 16          # picture and sound in step
        assert torch.equal(audio["waveform"][..., frames_1 * 1500:], audio_2["waveform"][..., 1500:])
    assert messages(comfy, "UniAVGenJoinClips", images_1=clip_1, audio_1=audio_1, images_2=clip_2,
                    audio_2=audio_2)[1] == []


@pytest.mark.parametrize("which", [1, 2])
@pytest.mark.parametrize("seconds_off", [-2.5, -0.13, 0.13, 4.0])
def test_join_clips_keeps_a_clip_with_audio_of_another_length_in_step_and_says_so(comfy, which, seconds_off):
    """Audio far from its pictures' length (wired from another clip, cut upstream) is fitted to them and
    named; the joined sound then lines up with the joined pictures, whichever clip was off."""
    rate, frames = 24000, (33, 49)
    clips = [torch.rand(n, 8, 12, 3) for n in frames]
    waves = [torch.rand(1, 2, n * rate // 16) for n in frames]
    off = waves[which - 1]
    waves[which - 1] = torch.rand(1, 2, max(1, off.shape[-1] + round(seconds_off * rate)))
    (images, audio), ui = messages(comfy, "UniAVGenJoinClips", images_1=clips[0], audio_1={"waveform": waves[0],
                                   "sample_rate": rate}, images_2=clips[1], audio_2={"waveform": waves[1],
                                   "sample_rate": rate})
    assert audio["waveform"].shape[-1] == images.shape[0] * rate // 16
    assert len(ui) == 1 and ("first" if which == 1 else "second") in ui[0]
    assert ("padded with silence" if seconds_off < 0 else "cut") in ui[0]
    start = 0 if which == 1 else frames[0] * 1500 - 1500       # where the fitted clip's audio lies in the join
    kept = min(waves[which - 1].shape[-1], frames[which - 1] * 1500) - (which - 1) * 1500
    source = waves[which - 1][..., (which - 1) * 1500:][..., :kept]
    assert torch.equal(audio["waveform"][..., start + (which - 1) * 1500:][..., :kept], source)


def test_join_clips_refuses_what_cannot_be_joined(comfy):
    rate = 24000
    clip_1, clip_2 = torch.rand(9, 8, 12, 3), torch.rand(9, 8, 12, 3)
    audio_1 = audio_2 = {"waveform": torch.rand(1, 1, 9 * 1500), "sample_rate": rate}
    with pytest.raises(ValueError, match="audio rates differ"):
        run(comfy, "UniAVGenJoinClips", images_1=clip_1, audio_1=audio_1, images_2=clip_2,
            audio_2={"waveform": audio_2["waveform"], "sample_rate": 44100})
    with pytest.raises(ValueError, match="differ in size"):
        run(comfy, "UniAVGenJoinClips", images_1=clip_1, audio_1=audio_1, images_2=torch.rand(5, 4, 4, 3),
            audio_2=audio_2)


@pytest.mark.parametrize("where", ["reference", "video"])
@pytest.mark.parametrize("damage", ["nan", "inf", "zero_height", "zero_width", "no_frames"])
def test_broken_pictures_are_refused_before_the_vae(comfy, where, damage):
    pictures = image(frames=9)
    if damage in ("nan", "inf"):
        pictures[0, 10, 10, 1] = float(damage)
    else:
        pictures = {"zero_height": pictures[:, :0], "zero_width": pictures[:, :, :0], "no_frames": pictures[:0]}[damage]
    with pytest.raises(ValueError, match="NaN, infinite|at least one pixel"):
        if where == "reference":
            reference(comfy, image=pictures, vae=None)
        else:
            run(comfy, "UniAVGenVideoEncode", images=pictures, fps=16.0, vae=None, resolution="short side",
                short_side=64)


@pytest.mark.parametrize("name", ["shift", "video_cfg", "audio_cfg", "macfg_fraction"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_sampler_refuses_non_finite_settings_before_loading(comfy, model, name, value):
    """ComfyUI's min/max check lets NaN through; the sampler names the setting before any work."""
    with pytest.raises(ValueError, match=name):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, **{name: value}))


def test_sampler_refuses_a_non_finite_prompt(comfy, model):
    bad = caption()
    bad[0][0][0, 3] = float("nan")
    with pytest.raises(ValueError, match="caption contains NaN"):
        run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, positive=bad, steps=1))


def sixteen_bit_png_as_load_image_reads_it(h=64, w=96):
    """A 16-bit greyscale portrait-like ramp through the steps ComfyUI's LoadImage takes."""
    import io

    import numpy as np
    from PIL import Image
    y, x = np.mgrid[0:h, 0:w]
    values = (20000 + 40000 * np.exp(-((y - h / 2) ** 2 + (x - w / 2) ** 2) / 400)).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(values).save(buffer, format="PNG")
    picture = Image.open(io.BytesIO(buffer.getvalue()))
    if picture.mode == "I":
        picture = picture.point(lambda v: v * (1 / 255))
    return torch.from_numpy(np.array(picture.convert("RGB")).astype(np.float32) / 255)[None]


@pytest.mark.parametrize("picture, tone", [
    (sixteen_bit_png_as_load_image_reads_it(), "white"),
    (torch.full((1, 64, 96, 3), 0.02) + 0.003 * torch.rand(1, 64, 96, 3), "black"),
    (torch.full((1, 64, 96, 3), 0.5).index_fill_(1, torch.tensor([3]), 0.9), "one flat colour"),
])
def test_a_nearly_flat_picture_is_named_in_the_reference_and_the_video(comfy, picture, tone):
    _, ui = messages(comfy, "UniAVGenReferenceImage", image=picture, vae=comfy["vae"], resolution="short side",
                     short_side=64, crop="none", aspect="keep")
    assert any(f"almost all {tone}" in m and "16-bit" in m for m in ui), ui
    _, ui = messages(comfy, "UniAVGenVideoEncode", images=picture.expand(9, -1, -1, -1), fps=16.0,
                     vae=comfy["vae"], resolution="short side", short_side=64)
    assert any(f"almost all {tone}" in m for m in ui), ui


def test_a_picture_with_a_flat_background_is_not_called_flat(comfy):
    portrait = torch.ones(1, 64, 96, 3)                            # a white studio background ...
    portrait[:, 20:50, 35:60] = image()[:, 20:50, 35:60]           # ... around a face-sized patch of detail
    _, ui = messages(comfy, "UniAVGenReferenceImage", image=portrait, vae=comfy["vae"], resolution="short side",
                     short_side=64, crop="none", aspect="keep")
    assert not any("almost all" in m for m in ui)
    assert not any("almost all" in m for m in messages(comfy, "UniAVGenReferenceImage", image=image(), vae=comfy[
        "vae"], resolution="short side", short_side=64, crop="none", aspect="keep")[1])


# ---------------------------------------------------------------- long talks: Extend and Long Sampler

def mini_args(comfy, mini, text="hello there.", **kw):
    model, vae = mini
    face, _ = run(comfy, "UniAVGenSyntheticFace", seed=1, size=64)
    (positive,) = run(comfy, "UniAVGenCaptionEncode", model=model, text="a person talking")
    (negative,) = run(comfy, "UniAVGenCaptionEncode", model=model, text="")
    ref = run(comfy, "UniAVGenReferenceImage", image=face, vae=vae, resolution="short side", short_side=64,
              crop="none", aspect="keep")[0]
    args = dict(model=model, speech=speech(comfy, model, text), positive=positive, negative=negative, steps=1,
                shift=5.0, seed=11, video_cfg=3.0, audio_cfg=4.0, macfg_fraction=0.5, slg_layer=-1, reference=ref)
    args.update(kw)
    return args


def extend_args(args, latent, mel, **kw):
    out = {k: v for k, v in args.items()}
    out.update(latent=latent, mel=mel, overlap=4, duration_seconds=0.0)
    out.update(kw)
    return out


def test_extend_continues_on_the_seam_timeline_and_stitches(comfy, model, monkeypatch):
    import nodes.long as long
    from comfy.latent_formats import Wan22
    (latent, mel, _) = run(comfy, "UniAVGenSampler", **sampler_args(comfy, model, steps=1))      # 3 latent frames
    seen = []
    real = long.make_job
    monkeypatch.setattr(long, "make_job", lambda inputs, *a: seen.append(inputs) or real(inputs, *a))
    args = {k: v for k, v in sampler_args(comfy, model, steps=1).items() if k not in ("task", "duration_seconds")}
    (out, out_mel), ui = messages(comfy, "UniAVGenExtend", **extend_args(args, latent, mel, overlap=2,
                                                                          duration_seconds=0.5))
    prior_video, prior_mel = seen[0].prior
    assert torch.allclose(prior_video, Wan22().process_in(latent["samples"])[0, :, 1:], atol=1e-5)
    # the prior frames 1..2 start on picture 4 = mel row 25 and cover the clip's last 31 rows, up to its end
    assert torch.equal(prior_mel, mel["mel"][0, 25:]) and prior_mel.shape[0] == 56 - 25
    assert seen[0].seconds == 13 / 16                                          # 2 prior + 2 new frames
    assert out["samples"].shape == (1, 48, 5, 4, 6) and out_mel["mel"].shape == (1, 25 * 5 - 19, 80)
    assert torch.equal(out["samples"][:, :, :3], latent["samples"]) and torch.equal(out_mel["mel"][:, :56], mel["mel"])
    assert out_mel["seconds"] == 17 / 16
    assert ui[0] == "task: CONTINUATION" and any("0.5 s after the 0.5625 s so far" in m for m in ui), ui


@pytest.mark.parametrize("task", ["AVG", "A2V", "V2A"])
def test_two_extends_equal_one_long_job_of_the_same_segments(comfy, mini, monkeypatch, task):
    """Sampler -> Extend -> Extend with each segment's seed and transcript is the Long Sampler's job."""
    import nodes.long as long
    from comfy.latent_formats import Wan22
    from uniavgen_core.frontend.long import segment_seed
    text = "hello there. how are you today? i am fine, thank you."
    drive = None
    if task == "A2V":
        (drive,) = run(comfy, "UniAVGenAudioEncode", audio=tone200(121 / 16, 24000, 1), role="driving audio (A2V)")
    extra = {} if drive is None else dict(driving_audio=drive)
    if task == "V2A":
        (video, _) = run(comfy, "UniAVGenVideoEncode", images=image(frames=121), fps=16.0, vae=mini[1],
                         resolution="short side", short_side=64)
        extra = dict(driving_video=video, reference=None)
    args = mini_args(comfy, mini, text, **extra)
    results = []
    real = long.generate_long
    monkeypatch.setattr(long, "generate_long", lambda *a, **k: results.append(real(*a, **k)) or results[-1])
    (whole, whole_mel), _ = messages(comfy, "UniAVGenLongSampler", **args, task="auto", overlap=4,
                                     duration_seconds=121 / 16, chars_per_second=0.0)
    result = results[0]
    assert [(s.start, s.frames, s.prior) for s in result.segments] == [(0, 13, 0), (9, 13, 4), (18, 13, 4)]
    assert whole["samples"].shape[2] == 31 and whole_mel["mel"].shape[1] == 25 * 31 - 19
    assert [t.name for t in result.tasks] == [task] + [f"{task}_CONTINUATION".replace("AVG_", "")] * 2
    say = lambda i: speech(comfy, mini[0], result.texts[i]) if task != "A2V" else args["speech"]
    (latent, mel, _) = run(comfy, "UniAVGenSampler", **dict(args, speech=say(0)), task="auto",
                           duration_seconds=49 / 16)
    for i in (1, 2):
        latent, mel = run(comfy, "UniAVGenExtend", **extend_args(args, latent, mel, speech=say(i),
                                                                  seed=segment_seed(11, i)))
    assert latent["samples"].shape == whole["samples"].shape and mel["mel"].shape == whole_mel["mel"].shape
    assert torch.allclose(Wan22().process_in(latent["samples"]), Wan22().process_in(whole["samples"]), atol=1e-4)
    assert torch.allclose(mel["mel"], whole_mel["mel"], atol=1e-4)


def test_the_long_sampler_makes_the_whole_length_with_progress_and_interrupt(comfy, mini):
    args = mini_args(comfy, mini, "hello there. how are you today? i am fine, thank you. and you? good.")
    comfy["utils"].updates.clear()
    (latent, mel), ui = messages(comfy, "UniAVGenLongSampler", **args, task="auto", overlap=4, duration_seconds=0.0,
                                 chars_per_second=6.0)
    segments = int(ui[0].split()[0])
    frames = 13 + (segments - 1) * 9
    assert segments >= 2 and latent["samples"].shape == (1, 48, frames, 4, 4)
    assert mel["mel"].shape == (1, 25 * frames - 19, 80) and mel["seconds"] == (4 * frames - 3) / 16
    assert [u[:2] for u in comfy["utils"].updates] == [(i + 1, segments) for i in range(segments)]
    assert any(m.startswith("segment 2: ") for m in ui)
    (drive,) = run(comfy, "UniAVGenAudioEncode", audio=tone200(5.0, 24000, 1), role="driving audio (A2V)")
    (latent, mel), ui = messages(comfy, "UniAVGenLongSampler", **dict(args, driving_audio=drive), task="auto",
                                 overlap=4, duration_seconds=0.0, chars_per_second=0.0)
    assert latent["samples"].shape[2] == 21 and ui[0].startswith("2 segments")            # 5 s: 81 pictures
    comfy["mm"].interrupt_current_processing(True)
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        run(comfy, "UniAVGenLongSampler", **args, task="auto", overlap=4, duration_seconds=0.0, chars_per_second=0.0)
    assert not comfy["mm"].processing_interrupted()


def test_extend_and_long_sampler_explain_bad_inputs(comfy, mini):
    from uniavgen_core.frontend.jobs import JobError
    args = mini_args(comfy, mini)
    (latent, mel, _) = run(comfy, "UniAVGenSampler", **args, task="auto", duration_seconds=49 / 16)
    with pytest.raises(JobError, match="connect the latent and the mel of the same clip"):
        run(comfy, "UniAVGenExtend", **extend_args(args, latent, {"mel": mel["mel"][:, :-1]}))
    with pytest.raises(JobError, match="leaves nothing new"):
        run(comfy, "UniAVGenExtend", **extend_args(args, latent, mel, overlap=13))
    with pytest.raises(JobError, match="expected the LATENT of one clip"):
        run(comfy, "UniAVGenExtend", **extend_args(args, {"samples": torch.zeros(1, 48, 4, 4)}, mel))
    (drive,) = run(comfy, "UniAVGenAudioEncode", audio=tone200(2.0, 24000, 1), role="driving audio (A2V)")
    with pytest.raises(JobError, match="nothing left to follow"):
        run(comfy, "UniAVGenExtend", **extend_args(args, latent, mel, driving_audio=drive))
    (voice,) = run(comfy, "UniAVGenAudioEncode", audio=tone200(1.0, 24000, 1), role="reference voice (RAVG)")
    with pytest.raises(JobError, match="encoded as 'reference voice"):
        run(comfy, "UniAVGenExtend", **extend_args(args, latent, mel, driving_audio=voice))
    long_args = dict(args, task="auto", overlap=4, duration_seconds=0.0, chars_per_second=0.0)
    with pytest.raises(JobError, match="at most 600 s"):
        run(comfy, "UniAVGenLongSampler", **dict(long_args, duration_seconds=700.0))
    with pytest.raises(JobError, match="overlap 13"):
        run(comfy, "UniAVGenLongSampler", **dict(long_args, overlap=13, duration_seconds=8.0))
    with pytest.raises(JobError, match="needs a reference face"):
        run(comfy, "UniAVGenLongSampler", **dict(long_args, reference=None))


def _decoded(path):
    import av
    import numpy as np
    with av.open(str(path)) as box:
        pictures = np.stack([f.to_ndarray(format="rgb24") for f in box.decode(box.streams.video[0])])
        return pictures, dict(box.metadata), box.streams.audio[0].rate


def test_save_long_video_writes_the_whole_clip_a_few_seconds_at_a_time(comfy, mini):
    import numpy as np
    _, vae = mini
    gen = torch.Generator().manual_seed(3)
    latent = {"samples": vae.encode(image(h=64, w=96, frames=4 * 22 + 1))}           # 23 latent frames
    latent["samples"] += 0.05 * torch.randn(latent["samples"].shape, generator=gen)
    audio = tone200(89 / 16, 24000, 2)
    calls = []
    decode = vae.decode
    vae.decode = lambda samples: calls.append(samples.shape[2]) or decode(samples)
    comfy["utils"].updates.clear()
    try:
        out = _call(comfy, "UniAVGenSaveLongVideo", vae=vae, latent=latent, audio=audio,
                    filename_prefix="UniAVGen/long_test", tile_frames=4, context_frames=2, prompt={"1": {}},
                    extra_pnginfo={"workflow": {"nodes": []}})
    finally:
        vae.decode = decode
    saved = out["ui"]["images"][0]
    assert out["ui"]["animated"] == (True,) and saved["subfolder"] == "UniAVGen" and saved["type"] == "output"
    path = Path(comfy["fp"].get_output_directory()) / saved["subfolder"] / saved["filename"]
    pictures, metadata, rate = _decoded(path)
    whole = (decode(latent["samples"])[0].clamp(0, 1) * 255).round().numpy()
    assert pictures.shape == whole.shape == (89, 64, 96, 3)               # every picture once, in order
    assert np.abs(pictures.astype(float) - whole).mean() < 3               # as the whole decode, after h264
    assert calls == [4, 6, 6, 6, 6, 5] and max(calls) < latent["samples"].shape[2]     # never the whole latent
    assert [u[:2] for u in comfy["utils"].updates] == [(i + 1, 6) for i in range(6)]
    assert rate == 24000 and '"nodes"' in metadata["workflow"] and "prompt" in metadata
    again = _call(comfy, "UniAVGenSaveLongVideo", vae=vae, latent=latent, audio=audio,
                  filename_prefix="UniAVGen/long_test", tile_frames=64, context_frames=1)
    assert again["ui"]["images"][0]["filename"] != saved["filename"] and path.exists()    # never over a file


def test_save_long_video_stops_cleanly_and_explains_bad_inputs(comfy, mini):
    _, vae = mini
    latent = {"samples": vae.encode(image(h=64, w=96, frames=33))}
    folder = Path(comfy["fp"].get_output_directory()) / "UniAVGen"
    before = set(folder.iterdir()) if folder.exists() else set()
    args = dict(vae=vae, latent=latent, audio=tone200(2.0, 24000, 1), filename_prefix="UniAVGen/stopped",
                tile_frames=2, context_frames=1)
    comfy["mm"].interrupt_current_processing(True)
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        _call(comfy, "UniAVGenSaveLongVideo", **args)
    assert not comfy["mm"].processing_interrupted() and set(folder.iterdir()) == before     # no half-written file
    with pytest.raises(ValueError, match="expected the LATENT of one video"):
        _call(comfy, "UniAVGenSaveLongVideo", **dict(args, latent={"samples": torch.zeros(48, 9, 4, 4)}))
    with pytest.raises(ValueError, match="expected an AUDIO"):
        _call(comfy, "UniAVGenSaveLongVideo", **dict(args, audio={"waveform": torch.zeros(1, 24000)}))
    bad = {"waveform": torch.full((1, 1, 24000), float("nan")), "sample_rate": 24000}
    with pytest.raises(ValueError, match="NaN"):
        _call(comfy, "UniAVGenSaveLongVideo", **dict(args, audio=bad))
    with pytest.raises(Exception, match="outside the output folder"):
        _call(comfy, "UniAVGenSaveLongVideo", **dict(args, filename_prefix="../../escape"))


def test_parallel_devices_give_the_one_device_clip_and_end_with_unload_models(comfy, model, mini):
    """Two CPU ranks from the node: the Sampler's clip, face masks and progress as on one device, a long job's
    segments too; the ranks stay for the next run, stop at an interrupt, and end when ComfyUI unloads models."""
    from helpers import child_processes, rel_l2
    args = sampler_args(comfy, model, steps=2)
    alone = run(comfy, "UniAVGenSampler", **args)
    (ranked,), ui = messages(comfy, "UniAVGenParallelDevices", model=model, devices="cpu, cpu", mode="cfg")
    assert ui == ["2 ranks (cfg) on cpu, cpu: they start at the first sample and keep the model until "
                  "'unload models'"] and not child_processes()
    for _ in range(2):                                          # started once, then reused
        comfy["utils"].updates.clear()
        latent, mel, mask = run(comfy, "UniAVGenSampler", **dict(args, model=ranked))
        assert rel_l2(latent["samples"], alone[0]["samples"]) <= 1e-5 and rel_l2(mel["mel"], alone[1]["mel"]) <= 1e-5
        assert rel_l2(mask, alone[2]) <= 1e-5 and [u[:2] for u in comfy["utils"].updates] == [(1, 2), (2, 2)]
        assert len(ranks := child_processes()) == 2
    comfy["mm"].interrupt_current_processing(True)
    with pytest.raises(comfy["mm"].InterruptProcessingException):
        run(comfy, "UniAVGenSampler", **dict(args, model=ranked))
    assert child_processes() == ranks                           # every rank stopped at the same step, and stays
    comfy["mm"].unload_all_models()
    assert not child_processes()
    latent, _, _ = run(comfy, "UniAVGenSampler", **dict(args, model=ranked))     # started again
    assert rel_l2(latent["samples"], alone[0]["samples"]) <= 1e-5 and len(child_processes()) == 2
    comfy["mm"].unload_all_models()
    long_args = mini_args(comfy, mini, "hello there. how are you today?")
    long_job = dict(task="auto", overlap=4, duration_seconds=0.0, chars_per_second=6.0)
    whole, whole_mel = run(comfy, "UniAVGenLongSampler", **long_args, **long_job)
    (on_ranks,) = run(comfy, "UniAVGenParallelDevices", model=mini[0], devices="cpu,cpu", mode="ulysses")
    latent, mel = run(comfy, "UniAVGenLongSampler", **dict(long_args, model=on_ranks), **long_job)
    assert latent["samples"].shape == whole["samples"].shape and whole["samples"].shape[2] > 13      # 2+ segments
    assert rel_l2(latent["samples"], whole["samples"]) <= 1e-5 and rel_l2(mel["mel"], whole_mel["mel"]) <= 1e-5
    comfy["mm"].unload_all_models()
    assert not child_processes()


def test_parallel_devices_refuse_what_they_cannot_run_before_any_work(comfy, model):
    from uniavgen_core.frontend.jobs import JobError
    from helpers import child_processes
    (same,), ui = messages(comfy, "UniAVGenParallelDevices", model=model, devices="cpu", mode="cfg")
    assert same is model and ui == ["one device (cpu): sampling as usual, on ComfyUI's device"]
    for devices, mode, message in (("cpu, cpu, cpu", "cfg", "on 2 ranks"), ("cpu,cpu,cpu", "cfg+ulysses", "even"),
                                   ("cpu; cpu", "cfg", "not a device name"), ("cuda:0, cuda:1", "cfg", "CUDA")):
        with pytest.raises(JobError, match=message):
            run(comfy, "UniAVGenParallelDevices", model=model, devices=devices, mode=mode)
    (ranked,) = run(comfy, "UniAVGenParallelDevices", model=model, devices="cpu, cpu", mode="cfg")
    lora = ranked.clone()
    lora.patches["diffusion_model.blocks.0.self_attn.q.weight"] = []
    for extra, message in ((dict(model=lora), "LoRAs"), (dict(sampler=FakeSampler()), "ComfyUI sampler"),
                           (dict(cache=0.1), "step cache")):
        with pytest.raises(JobError, match=message):
            run(comfy, "UniAVGenSampler", **{**sampler_args(comfy, model), "model": ranked, **extra})
    with pytest.raises(JobError, match="LoRAs"):
        run(comfy, "UniAVGenParallelDevices", model=lora, devices="cpu, cpu", mode="cfg")
    (four,) = run(comfy, "UniAVGenParallelDevices", model=model, devices="cpu, cpu, cpu, cpu", mode="ulysses")
    with pytest.raises(JobError, match="4 Ulysses ranks for 3 video frames"):
        run(comfy, "UniAVGenSampler", **{**sampler_args(comfy, model, duration_seconds=0.3125), "model": four})
    assert not child_processes()

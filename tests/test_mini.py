"""The shipped small model: training-set building, loading through the public API, the demo."""
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from safetensors import safe_open

from uniavgen_core import demo

from uniavgen_core import units
from uniavgen_core.audio.levels import measure, read_audio
from uniavgen_core.mini.codecs.video_pca import PCAFitter
from uniavgen_core.checkpoint.loading import load_model
from uniavgen_core.cli import demo as demo_cli
from uniavgen_core.mini.pipeline import MiniPipeline
from uniavgen_core.synthetic.clips import make_clip
from uniavgen_core.training import data

FRAMES = 17


@pytest.fixture(scope="module")
def codec_file(tmp_path_factory):
    fitter = PCAFitter()
    for seed in range(3):
        fitter.add(make_clip(1000 + seed, frames=FRAMES).frames)
    path = tmp_path_factory.mktemp("codec") / "codec.safetensors"
    fitter.finish().save(path)
    return path


def contents(path):
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys()}, f.metadata()


def test_training_set_is_deterministic_and_loads(tmp_path, codec_file):
    seeds = [3, 4, 5]
    a = data.build(tmp_path / "a.safetensors", seeds, codec_file, 64, frames=FRAMES, workers=1)
    b = data.build(tmp_path / "b.safetensors", seeds, codec_file, 64, frames=FRAMES, workers=2)
    (ta, ma), (tb, mb) = contents(a), contents(b)        # the same set for any worker count
    assert ma == mb and ta.keys() == tb.keys() and all(torch.equal(ta[k], tb[k]) for k in ta)
    examples = data.load(a)
    assert len(examples) == 3
    e = examples[0]
    assert e.latent.shape == (48, units.latent_frames(FRAMES), 8, 8)
    assert e.mel.shape == (units.mel_frames(FRAMES), 80) and e.face.shape == (4, 4)
    clip = make_clip(3, frames=FRAMES)
    tok = data.tokenizer()
    assert e.text_ids.tolist() == tok.encode(clip.text, "en").ids and not tok.encode(clip.text, "en").unknown
    assert e.caption.shape[1] == 64 and e.ref_mel.shape[0] > 100
    with pytest.raises(ValueError, match="not a UniAVGen training set"):
        data.load(codec_file)


def test_shipped_model_is_small_and_self_contained():
    size = demo.MODEL.stat().st_size + demo.CODEC.stat().st_size
    assert size <= 10 * 2 ** 20, size
    model = load_model(demo.MODEL)
    n = sum(p.numel() for p in model.parameters())
    assert 1.5e6 <= n <= 5e6 and len(model.a2v_blocks) == len(model.config.interaction_layers) >= 2
    pipe = MiniPipeline(demo.MODEL, demo.CODEC)
    assert pipe.tokenizer.encode("hello there.", "en").unknown == []


def test_demo_text_is_checked():
    pipe = MiniPipeline(demo.MODEL, demo.CODEC)
    fitted = demo.check_text(pipe, "  Hello   THERE ")
    assert fitted.text == "hello there" and "lower-cased 6 letter(s)" in fitted.messages()[0]
    with pytest.raises(demo.DemoError, match="no words"):
        demo.check_text(pipe, "   ")
    with pytest.raises(demo.DemoError, match=r"'#' '1'.*write numbers as words"):
        demo.check_text(pipe, "Room #1")


@pytest.mark.parametrize("text", [",.?!", " - ' . ", "?" * 40, "\u201c\u2014\u201d"])
def test_a_demo_text_without_words_is_refused_as_such(text):
    with pytest.raises(demo.DemoError, match="no words"):
        demo.check_text(MiniPipeline(demo.MODEL, demo.CODEC), text)


@pytest.mark.parametrize("length", [92, 5_000, 5_000_000])
def test_a_demo_text_longer_than_the_clip_holds_is_refused_at_once(length):
    pipe = MiniPipeline(demo.MODEL, demo.CODEC)
    start = time.perf_counter()
    with pytest.raises(demo.DemoError, match=f"has {length} characters; a 3.06 s clip holds at most about 91"):
        demo.check_text(pipe, ("ab c" * length)[:length])
    assert time.perf_counter() - start < 2


def test_the_demo_refuses_a_bad_out_or_steps_before_generating(tmp_path, capsys):
    target = tmp_path / "mine.mp4"
    target.write_bytes(b"the user's video")
    assert demo_cli.main(["--out", str(target)]) == 2
    assert "is a file: give a folder" in capsys.readouterr().err and target.read_bytes() == b"the user's video"
    for steps in ("0", "-3", "5000"):
        with pytest.raises(SystemExit) as stop:
            demo_cli.main(["--out", str(tmp_path / "out"), "--steps", steps])
        assert stop.value.code == 2 and "--steps must be 1 to 1000" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_reduced_demo_writes_watchable_files(tmp_path):
    result = demo.run(tmp_path, "hi there.", steps=2)
    names = sorted(Path(f).name for f in result["files"])
    assert names == ["a2v.mp4", "avg.mp4", "contact_sheet.png", "v2a.mp4"]
    for name in ("avg", "a2v", "v2a"):
        with av.open(str(tmp_path / f"{name}.mp4")) as box:
            video, audio = box.streams.video[0], box.streams.audio[0]
            assert video.codec_context.name == "h264" and audio.codec_context.name == "aac"
            assert audio.codec_context.sample_rate == 24000
            frames = sum(1 for _ in box.decode(video=0))
        assert frames == 49
        assert abs(float(video.duration * video.time_base) - 49 / 16) < 0.07
        assert abs(float(audio.duration * audio.time_base) - 49 / 16) < 0.1
        heard = measure(read_audio(tmp_path / f"{name}.mp4")[0])         # what a player decodes
        assert heard.clipped <= 0.001 and heard.peak < 1 and heard.active_db > -40, (name, heard)
    assert (tmp_path / "contact_sheet.png").stat().st_size > 10_000


def test_shipped_codec_keeps_faces_and_mouths():
    """Round trip of held-out synthetic clips through the shipped video codec (measured on 16
    clips: 25.4 dB mean, 23.4 dB worst; mouth tracks r >= 0.89 against the originals)."""
    from uniavgen_core.mini.codecs.video_pca import PatchPCACodec
    from uniavgen_core.training import lipsync
    codec = PatchPCACodec.load(demo.CODEC)
    psnrs = []
    for seed in data.DataConfig().held_out_seeds(4):
        clip = make_clip(seed)
        back = codec.decode(codec.encode(clip.frames))
        psnrs.append(float(10 * torch.log10(1 / (clip.frames - back).pow(2).mean())))
        mouth = [lipsync.mouth_openness(x, clip.mouth_box) for x in (clip.frames, back)]
        assert float(torch.corrcoef(torch.tensor(np.stack(mouth)))[0, 1]) > 0.8
    assert min(psnrs) > 22.5 and sum(psnrs) / len(psnrs) > 24, psnrs


def test_evaluation_reports_both_metrics_and_the_nulls():
    """A reduced evaluation of the shipped model (2 validation clips, 2 steps): every task scored with the
    high-passed metric and the plain correlation, each against its shuffled null, in JSON and in the tables."""
    import dataclasses

    from uniavgen_core.mini.pipeline import MINI_SAMPLING
    from uniavgen_core.training import evaluate
    results = evaluate.evaluate(str(demo.MODEL), str(demo.CODEC), clips=2, ablations=False, split="validation",
                                params=dataclasses.replace(MINI_SAMPLING, steps=2), log=lambda m: None)
    assert results["detrend_frames"] == 9 and set(results["tasks"]) == {"avg", "a2v", "v2a"}
    for entry in [results["tasks"][t]["default"] for t in ("avg", "a2v", "v2a")]:
        for part in (entry, entry["plain"]):
            assert part["summary"]["n"] == part["null"]["n"] == 2
            assert np.isfinite(part["summary"]["mean_confidence"]) and np.isfinite(part["null"]["median_r0"])
    assert results["plain"]["ceiling"]["n"] == results["ceiling"]["n"] == 2
    text = evaluate.markdown(results)
    assert "High-passed over 9 frames" in text and "Plain correlation" in text
    assert text.count("| V2A default |") == 2 and text.count("| AVG shuffled (null) |") == 2
    assert all(results["tasks"][t]["default"]["minus_null"]["confidence"]["n"] == 2 for t in ("avg", "a2v", "v2a"))
    assert "| V2A | " in text
    face = results["face"]      # the floors, and A2V (the only task that remakes the clip's own pictures)
    assert all(0 < face[k]["mean"] < 1 and face[k]["ci"][0] <= face[k]["mean"] for k in ("codec", "still"))
    assert 0 < results["tasks"]["a2v"]["default"]["face"]["mean"] < 1
    assert not any("face" in results["tasks"][t]["default"] for t in ("avg", "v2a"))
    assert "| A2V default | " in text and "| real, through the codec (floor) |" in text


def test_face_error_is_the_rmse_over_the_face_mask_after_the_first_picture():
    from uniavgen_core.synthetic.clips import make_clip
    from uniavgen_core.training.evaluate import face_error
    clip = make_clip(3, frames=17, size=64)
    assert face_error(clip.frames, clip) == 0.0
    shifted = clip.frames.clone()
    shifted[1:] += 0.1
    shifted[0] += 0.7                               # the first picture is the reference: not scored
    assert abs(face_error(shifted, clip) - 0.1) < 1e-5
    outside = clip.frames.clone()
    outside[:, clip.face_mask == 0] += 0.5         # off the face: not scored
    assert face_error(outside, clip) == 0.0


# ---------------------------------------------------------- the evaluation and golden-vector command lines

EVAL_BAD = [
    (["--clips", "1"], "--clips 1: must be from 2 to"), (["--clips", "0"], "--clips 0"),
    (["--clips", "-4"], "--clips -4"), (["--clips", "20000"], "--clips 20000"),
    (["--steps", "0"], "--steps 0: must be from 1 to 1000"), (["--steps", "5000"], "--steps 5000"),
    (["--cfg", "nan", "1"], "--cfg nan 1.0: the guidance scales"), (["--cfg", "1", "-2"], "--cfg 1.0 -2.0"),
    (["--cfg", "inf", "1"], "--cfg inf 1.0"), (["--detrend-frames", "-1"], "--detrend-frames -1: must be from 0"),
    (["--detrend-frames", "50"], "--detrend-frames 50"),
]


@pytest.mark.parametrize("extra, named", EVAL_BAD)
def test_evaluation_arguments_out_of_range_are_refused_before_any_work(tmp_path, capsys, extra, named):
    from uniavgen_core.cli import evaluate
    out = tmp_path / "results.json"
    assert evaluate.main([str(demo.MODEL), str(demo.CODEC), "--out", str(out), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and named in err and "Traceback" not in err, err
    assert not out.exists()


def test_evaluation_paths_are_checked_before_any_work(tmp_path, capsys, monkeypatch):
    from uniavgen_core.cli import evaluate
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: pytest.fail("the evaluation ran"))
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    cases = [([tmp_path / "none.safetensors", demo.CODEC], "the model"),
             ([demo.MODEL, tmp_path / "none.safetensors"], "the video codec"),
             ([demo.MODEL, tmp_path], "is not a file"),
             ([demo.MODEL, demo.CODEC, "--out", tmp_path], "--out " + str(tmp_path) + " is a folder"),
             ([demo.MODEL, demo.CODEC, "--out", blocker / "r.json"], "is a file: give a folder")]
    for argv, named in cases:
        assert evaluate.main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and named in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"] and blocker.read_text() == "mine"
    # a file of another kind as the model is a message, not a traceback
    monkeypatch.undo()
    assert evaluate.main([str(demo.CODEC), str(demo.CODEC), "--clips", "2"]) == 2
    assert "is not a self-contained small model" in capsys.readouterr().err


def test_a_missing_small_model_is_named_as_missing(tmp_path):
    from uniavgen_core.checkpoint.loading import CheckpointError
    from uniavgen_core.mini.pipeline import MiniPipeline
    with pytest.raises(CheckpointError, match="no small model at .*none.safetensors"):
        MiniPipeline(tmp_path / "none.safetensors")


def test_golden_runner_arguments_are_checked_before_any_case(golden_dir, tmp_path, capsys):
    from uniavgen_core.cli import golden
    blocker = tmp_path / "a-file"
    blocker.write_text("mine")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "golden.json").write_text('{"cases": {"avg": {"task": 0}}}')
    torn = tmp_path / "torn"
    torn.mkdir()
    (torn / "frontend.safetensors").write_bytes(b"\x07" * 40)
    notjson = tmp_path / "notjson"
    notjson.mkdir()
    (notjson / "tokenizer.json").write_text("{ not json")
    out = tmp_path / "out"
    cases = [([tmp_path / "missing", "--out", out], "GOLDEN_DIR"),
             ([blocker, "--out", out], "is not a folder"),
             ([golden_dir, "--out", blocker], "--out " + str(blocker) + " is a file"),
             ([golden_dir, "--out", out, "--vocab", tmp_path / "vocab.txt"], "--vocab"),
             ([tmp_path / "out-is-not-here-either", "--out", out], "does not exist"),
             ([broken, "--out", out], "lack some of task, lat_frames"),
             ([torn, "--out", out], "frontend.safetensors is not a readable safetensors file"),
             ([notjson, "--out", out], "notjson/tokenizer.json"),
             ([blocker.parent / "empty", "--out", out], "does not exist")]
    for argv, named in cases:
        assert golden.main([str(a) for a in argv]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and named in err and "Traceback" not in err, err
    (tmp_path / "empty").mkdir()
    assert golden.main([str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "holds none of golden.json" in capsys.readouterr().err
    assert not out.exists() and blocker.read_text() == "mine"

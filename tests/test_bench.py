"""The benchmark script runs (a tiny shape; the real tables come from benchmarks/bench.py)."""
import sys

import pytest
import torch
import torch._dynamo

from helpers import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
import bench  # noqa: E402
import memory_estimate as est  # noqa: E402
import mode_parity  # noqa: E402
from uniavgen_core.model.memory import activation_bytes  # noqa: E402


def test_benchmark_modes_run_and_report():
    device = torch.device("cpu")
    rows = [bench.run_mode(bench.SHAPES["tiny"], mode, device, steps=1) for mode in ("resident", "fp8+swap2")]
    assert all(r["flops"] > 0 and r["step"] > 0 and r["floor"] > 0 for r in rows)
    text = bench.table(rows, "tiny", device)
    assert "| fp8+swap2 | float32 | sdpa |" in text and "step / floor" in text


def test_a_failing_mode_is_a_row_not_a_crash():
    device = torch.device("cpu")
    rows = [bench.try_mode(bench.SHAPES["tiny"], mode, device, steps=1) for mode in ("swap99", "resident+sage")]
    assert "error" in rows[0] and "choose 0..4" in rows[0]["error"]
    assert rows[1]["attention"] == "sdpa"               # sage needs CUDA: the loader's fallback, logged
    text = bench.table(rows, "tiny", device)
    assert "| swap99 | failed: ValueError: block swap of 99 layer pairs" in text
    assert "| resident+sage | float32 | sdpa |" in text


def test_memory_estimate_follows_live_tensors_and_swap():
    with est.LiveBytes(set()) as tracker:
        a = torch.ones(1000, device="meta")            # 4000 bytes
        b = a * 2                                        # 8000 alive
        del a
        c = b + 1                                        # 8000 alive again (a was freed)
        del b
        d = c[:10].clone()                               # 4040: a 40-byte copy, the view adds nothing
        del c, d
    assert tracker.peak == 8000
    rows = {m: est.estimate(bench.SHAPES["tiny"], m) for m in ("resident", "fp8", "swap4", "fp8+swap4")}
    layers = est.layer_bytes(est.meta_model(bench.SHAPES["tiny"]["config"], fp8=False))
    assert rows["resident"]["resident"] - rows["swap4"]["resident"] == sum(layers)
    assert rows["swap4"]["in_flight"] == sum(sorted(layers)[-2:])
    assert rows["fp8+swap4"]["in_flight"] < rows["swap4"]["in_flight"]
    assert rows["fp8"]["resident"] < rows["resident"]["resident"]
    for r in rows.values():
        assert r["activations"] > 0 and r["total"] == r["resident"] + r["in_flight"] + r["activations"]


def test_every_mode_stays_within_bf16_tolerance_of_the_golden_runs(golden_dir, fp8_checkpoint):
    rows = mode_parity.run_modes(golden_dir, fp8_checkpoint)
    print(rows)
    assert set(rows["float32"]) == {"avg.video", "avg.audio", "a2v.video"}
    assert max(rows["float32"].values()) < 1e-3                   # the golden tolerance of whole runs
    for mode, errs in rows.items():
        assert max(errs.values()) < 0.05, mode                    # bf16 rounding, accumulated over the run
    assert rows["bf16 swap15"] == rows["bf16"]                    # block swap moves weights, nothing else
    torch._dynamo.reset()


def test_the_memory_managers_estimate_bounds_the_measured_peak():
    """The Sampler node reserves activation_bytes for ComfyUI; the meta-device measurement of the
    same step must fit in it, without the reservation being wasteful."""
    for name in ("official", "mid"):
        shape = bench.SHAPES[name]
        measured = est.estimate(shape, "resident")["activations"]
        reserved = activation_bytes(shape["config"], shape["frames"], shape["h"], shape["w"], shape["mel"], batch=2)
        print(name, measured / 2 ** 30, reserved / 2 ** 30)
        assert measured < reserved < 1.5 * measured + 256 * 2 ** 20, name


def test_gpu_check_without_a_gpu_says_so_and_stops():
    import subprocess

    import pytest
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: make gpu-check runs for real")
    proc = subprocess.run([sys.executable, "benchmarks/gpu_check.py", "--no-results", "--out", "/nonexistent/x"],
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "no CUDA GPU here" in proc.stderr and "Traceback" not in proc.stderr


def test_mini_diagnosis_reports_convergence_and_channels(tmp_path, capsys):
    """The diagnosis of the shipped small model on 1 clip, Euler at 12 and 24 steps, one guidance scale: every
    figure finite, one spread and error per latent channel, and the printed summary."""
    import json

    import mini_diagnosis
    from uniavgen_core import demo

    out = tmp_path / "d.json"
    assert mini_diagnosis.main([str(demo.MODEL), str(demo.CODEC), "--clips", "1", "--max-steps", "24",
                                "--cfg", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["steps"] == [12, 24]
    for rows in result["convergence"].values():
        assert all(len(d) == 1 and 0 < d[0] < 1 for d in rows.values())
    entry = result["channels"]["3.0"]
    assert len(entry["generated_std"]) == len(entry["pixel_error"]) == 48 and entry["error_over_still"] > 0
    assert "error / still copy" in capsys.readouterr().out


def test_mini_diagnosis_compares_grids_and_profiles_the_velocity(tmp_path, capsys):
    """The grids, profile and roughness sections on 1 clip with a short reference and trajectory: a distance per
    clip for every solver and grid asked for, finite and positive; a roughness per latent channel; bands of noise
    levels covering the trajectory, one of them holding MA-CFG's switch; bad arguments refused before any work."""
    import json

    import mini_diagnosis
    from uniavgen_core import demo

    out = tmp_path / "d.json"
    assert mini_diagnosis.main([str(demo.MODEL), str(demo.CODEC), "--clips", "1", "--sections", "grids", "profile",
                                "roughness",
                                "--grids", "euler:beta", "ab2:beta", "--reference-steps", "16", "--profile-steps",
                                "48", "--guidance", "2", "2", "--shift", "3", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    assert "convergence" not in result and set(result["grids"]) == {"euler:beta", "ab2:beta"}
    for rows in result["grids"].values():
        assert set(rows) == {"video", "pixel", "audio"} and all(len(d) == 1 and 0 < d[0] < 1 for d in rows.values())
    rows = result["profile"]
    assert sum(r["evaluations"] for r in rows) >= 48 - len(rows)     # bands of one evaluation are not shown
    assert [r["switch"] for r in rows].count(True) == 1     # MA-CFG's switch lies in one band, its jump left out
    assert all(r[m]["total"] > 0 for r in rows for m in ("video", "audio"))
    for row in result["roughness"].values():
        assert len(row["channels"]) == 48 and 0 < row["latent"] < 1 and 0 < row["pixel"] < 1
    assert "ab2:beta at 12 steps" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        mini_diagnosis.main([str(demo.MODEL), str(demo.CODEC), "--grids", "rk9:beta"])
    assert "--grids rk9:beta: give SOLVER:SCHEDULE" in capsys.readouterr().err
    for bad, said in ((["--shift", "0"], "--shift / --guidance: shift 0 is outside"),
                      (["--reference-steps", "0"], "--reference-steps 0: must be from 1"),
                      (["--profile-steps", "8"], "--profile-steps 8: must be from 16")):
        with pytest.raises(SystemExit):
            mini_diagnosis.main([str(demo.MODEL), str(demo.CODEC), *bad])
        assert said in capsys.readouterr().err
    with pytest.raises(SystemExit):
        mini_diagnosis.main([str(tmp_path / "none.safetensors"), str(demo.CODEC)])
    assert "no small model at" in capsys.readouterr().err


def _mouth_clip(path, drive, envelope, stereo_pcm=False):
    """A grey picture whose "mouth" darkens as `drive` [frames] rises, with a 220 Hz tone at the level `envelope`
    [frames]: through the pack's mp4 writer, or as packed 16-bit stereo PCM in Matroska (another decoder path)."""
    import av
    import numpy as np
    from uniavgen_core.mp4 import write_mp4
    rate, fps = 24000, 16
    per_frame = rate // fps
    tone = torch.sin(torch.arange(len(envelope) * per_frame) / rate * 2 * torch.pi * 220)
    wave = tone * (0.02 + 0.5 * envelope).repeat_interleave(per_frame)
    pictures = torch.full((len(drive), 64, 64, 3), 0.5)
    for i, level in enumerate(drive.tolist()):
        pictures[i, 24:40, 20:44] = 0.5 - 0.4 * level
    if not stereo_pcm:
        write_mp4(path, pictures, wave, fps=fps)
        return path
    with av.open(str(path), "w") as box:
        video = box.add_stream("ffv1", rate=fps)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        sound = box.add_stream("pcm_s16le", rate=rate, layout="stereo")
        for picture in (pictures * 255).round().to(torch.uint8).numpy():
            box.mux(video.encode(av.VideoFrame.from_ndarray(picture, format="rgb24")))
        box.mux(video.encode(None))
        samples = (wave.clamp(-1, 1) * 32767).round().short().numpy()
        frame = av.AudioFrame.from_ndarray(np.stack([samples, samples], 1).reshape(1, -1), format="s16",
                                           layout="stereo")
        frame.sample_rate = rate
        box.mux(sound.encode(frame))
        box.mux(sound.encode(None))
    return path


def _bursts(seed, frames=48):
    """Speech in bursts of 4 frames: a closed mouth and quiet audio half of the time."""
    level = torch.rand(frames // 4, generator=torch.Generator().manual_seed(seed)) * 2 - 1
    return level.clamp(min=0).repeat_interleave(4)


def test_the_demo_sync_check_tells_a_mouth_that_follows_the_audio_from_one_that_does_not(tmp_path, capsys):
    """A mouth that opens with the audio's level passes, in the pack's mp4 and in packed stereo PCM; the same audio
    under a mouth that opens at other times, or four frames late, fails (no better than its null); a silent clip is
    an error, not a score."""
    import demo_sync_check
    speech = _bursts(0)
    clips = [_mouth_clip(tmp_path / "synced.mp4", speech, speech),
             _mouth_clip(tmp_path / "synced_pcm.mkv", speech, speech, stereo_pcm=True),
             _mouth_clip(tmp_path / "other.mp4", _bursts(1), speech),
             _mouth_clip(tmp_path / "late.mp4", speech.roll(4), speech)]
    assert [demo_sync_check.main([str(c)]) for c in clips] == [0, 0, 1, 1]
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if "." in line and "|" in line]
    scores = {row[1].strip(): (float(row[2]), float(row[3])) for row in rows}
    assert scores["synced.mp4"][0] > 0.7 and scores["synced_pcm.mkv"][0] > 0.7
    for name in ("other.mp4", "late.mp4"):        # no better than the audio at unrelated alignments
        assert scores[name][0] < scores[name][1] + 0.1, scores
    silent = _mouth_clip(tmp_path / "silent.mp4", speech, torch.full((48,), -0.04))
    assert demo_sync_check.main([str(silent)]) == 2
    assert "silent" in capsys.readouterr().err


def test_mini_diagnosis_splits_the_solver_error_into_static_and_moving_elements(tmp_path, capsys):
    """The static section on 1 clip with a short reference: the moving elements are a small share (the synthetic
    faces move at the mouth and the eyes); static and moving, and the channel groups, each split the same whole
    error; the clean estimate of the real clip comes closer as the noise falls; the velocity's error on validation
    and training clips at every noise level."""
    import json

    import mini_diagnosis
    from uniavgen_core import demo

    out = tmp_path / "d.json"
    assert mini_diagnosis.main([str(demo.MODEL), str(demo.CODEC), "--clips", "1", "--sections", "static",
                                "--reference-steps", "16", "--out", str(out)]) == 0
    entry = json.loads(out.read_text())["static"]
    assert 0 < entry["moving_share"] < 0.3
    for parts in entry["squared_error"].values():
        groups = sum(v for k, v in parts.items() if k.startswith("channels"))
        assert all(v > 0 for v in parts.values())
        assert abs(parts["static"] + parts["moving"] - groups) <= 1e-6 * groups
    clean = entry["clean_estimate_rms"]
    assert clean["0.02"]["static"] < clean["0.5"]["static"] < clean["0.98"]["static"]
    errors = entry["velocity_mse"]
    assert set(errors) == {"validation", "training"} and errors["validation"] != errors["training"]
    assert all(set(e) == set(clean) and all(0 < x < 10 for x in e.values()) for e in errors.values())
    assert "of the generated latent elements move" in capsys.readouterr().out

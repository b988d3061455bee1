"""Long talks from the command line (any recording, any transcript) and what is measured at their joins."""
import wave as wavefile
from pathlib import Path

import numpy as np
import pytest
import torch

from uniavgen_core import demo, units
from uniavgen_core.cli import demo as demo_cli
from uniavgen_core.demo.long import read_recording
from uniavgen_core.mini.pipeline import MiniPipeline
from uniavgen_core.sampling import SamplingParams, Task
from uniavgen_core.synthetic.clips import make_clip, recording
from uniavgen_core.training import long_talks, seams

PARAMS = SamplingParams(steps=1, shift=5.0, video_cfg=3.0, audio_cfg=4.0, slg_layer=-1)


def write_wav(path: Path, samples: np.ndarray, rate: int) -> Path:
    """[N, channels] float in [-1, 1] -> 16-bit PCM wav."""
    with wavefile.open(str(path), "wb") as f:
        f.setnchannels(samples.shape[1])
        f.setsampwidth(2)
        f.setframerate(rate)
        f.writeframes((samples * 32000).astype("<i2").tobytes())
    return path


def tone(seconds: float, rate: int, channels: int = 2) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return np.repeat((0.5 * np.sin(2 * np.pi * 220 * t))[:, None], channels, axis=1)


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory):
    """7 s of synthetic speech at 44.1 kHz stereo, as a user's recording would come."""
    voice = make_clip(9_300_001, frames=17).voice
    wave = recording(voice, 7.0, 5)[0][: 7 * 24000]
    resampled = torch.nn.functional.interpolate(wave[None, None], scale_factor=44100 / 24000, mode="linear")[0, 0]
    stereo = np.repeat(resampled.numpy()[:, None], 2, axis=1)
    return write_wav(tmp_path_factory.mktemp("rec") / "talk.wav", stereo, 44100)


# ---------------------------------------------------------------- reading any recording

def test_a_recording_at_any_rate_and_channel_count_is_read_as_24_khz_mono(tmp_path):
    path = write_wav(tmp_path / "a.wav", tone(2.0, 44100), 44100)
    got = read_recording(path)
    assert got.dim() == 1 and abs(got.shape[0] - 48000) <= 64
    assert abs(float(got.abs().max()) - 0.5 * 32000 / 32768) < 0.02       # the level is kept
    spectrum = np.abs(np.fft.rfft(got.numpy()))
    assert abs(np.argmax(spectrum) * 24000 / got.shape[0] - 220) < 2       # and the pitch


@pytest.mark.parametrize("make, message", [
    (lambda p: p, "no such file"),
    (lambda p: (p.write_text("not audio at all"), p)[1], "cannot be read as audio"),
    (lambda p: write_wav(p, np.zeros((24000, 1)), 24000), "holds no sound"),
    (lambda p: write_wav(p, tone(2.0, 8000, 1), 8000), "is 2.0 s; at most 1 s are taken: trim it"),
])
def test_a_recording_that_cannot_drive_a_talk_is_refused_with_what_to_do(tmp_path, make, message):
    with pytest.raises(demo.DemoError, match=message):
        read_recording(make(tmp_path / "x.wav"), limit=1.0)


# ---------------------------------------------------------------- the command line

@pytest.mark.parametrize("args, message", [
    (["--audio", "x.wav"], "--audio FILE goes with --task a2v"),
    (["--task", "a2v"], "--audio FILE goes with --task a2v, which needs it"),
    (["--task", "avg"], "--task avg needs --text"),
    (["--task", "avg", "--text", "hi.", "--seconds", "700"], "--seconds must be more than 0 and at most 600"),
    (["--task", "long", "--seconds", "30"], "--seconds goes with --task avg"),
    (["--task", "long", "--overlap", "5"], "--overlap must be 0.25 to 2 seconds"),
])
def test_arguments_that_do_not_go_together_are_refused_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as stop:
        demo_cli.main(args + ["--out", str(tmp_path / "out")])
    assert stop.value.code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_any_recording_drives_a_long_talk_and_any_transcript_is_spoken(tmp_path, speech_wav, capsys):
    import av

    assert demo_cli.main(["--task", "a2v", "--audio", str(speech_wav), "--out", str(tmp_path), "--steps", "1"]) == 0
    assert demo_cli.main(["--task", "avg", "--text", "the dog ran to the park. a girl found a red ball!",
                          "--seconds", "6", "--out", str(tmp_path), "--steps", "1"]) == 0
    assert "3 segments of 13 latent frames" in capsys.readouterr().err
    for name, seconds in (("long_a2v", 7.0), ("long_avg", 6.0)):
        assert (tmp_path / f"{name}_contact_sheet.png").stat().st_size > 10_000
        with av.open(str(tmp_path / f"{name}.mp4")) as box:
            video, sound = box.streams.video[0], box.streams.audio[0]
            assert (video.width, video.height, sound.rate) == (256, 256, 24000)
            frames = sum(1 for _ in box.decode(video))
        assert abs(frames / units.FPS - seconds) <= 0.3


# ---------------------------------------------------------------- what is measured at the joins

def test_a_jump_at_a_join_is_found_and_smooth_motion_is_not():
    t = torch.arange(97, dtype=torch.float32)
    frames = (0.5 + 0.1 * torch.sin(t / 5))[:, None, None, None].expand(97, 8, 8, 3).clone()
    smooth = seams.picture_changes(frames)
    frames[49:] += 0.2                                  # picture 49 starts a segment, a step in brightness
    jumped = seams.picture_changes(frames)
    assert seams.join_pictures([None, type("S", (), {"start": 9, "prior": 4})()]) == [49]
    assert np.argmax(jumped) == 48 and jumped[48] > 5 * smooth.max()
    steps = seams.colour_steps(frames)
    others = np.delete(steps, [0, 47, 48, 49, len(steps) - 1])      # the steps whose windows straddle it
    assert np.nanargmax(steps) == 48 and steps[48] > 0.15 and steps[48] > 3 * others.max()


def test_clicks_and_gaps_at_joins_are_found_in_the_wave_and_natural_pauses_are_not_gaps():
    rng = np.random.default_rng(0)
    t = np.arange(24000 * 4) / 24000                            # voiced sound: low partials of random phase
    speech = torch.from_numpy(sum(0.05 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6.3))
                                  for f in range(150, 700, 50)).astype("float32"))
    smooth = seams.audio_joins(speech, [32])                    # picture 32: 2 s
    assert smooth["click_ratio_max"] < 1.5 and smooth["gaps"] == 0
    clicked = speech.clone()
    clicked[48000:] += 0.3
    assert seams.audio_joins(clicked, [32])["click_ratio_max"] > 3
    gapped = speech.clone()
    gapped[47000:49000] = 0
    found = seams.audio_joins(gapped, [32])
    assert found["gaps"] == 1 and 0 < found["silent_fraction"] < 0.03 and smooth["silent_fraction"] == 0
    assert seams.audio_joins(gapped, [32], driving=gapped)["gaps"] == 0


def test_face_drift_is_the_face_regions_error_per_window():
    ref = torch.zeros(8, 8, 3)
    frames = torch.zeros(96, 8, 8, 3)
    frames[48:, :4] = 0.5                           # the face (top half) changes in the second window
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[:4] = True
    assert np.allclose(seams.face_drift(frames, ref, mask, 48), [0.0, 0.5])
    frames[:, 4:] = 1.0                             # outside the face: not counted
    assert np.allclose(seams.face_drift(frames, ref, mask, 48), [0.0, 0.5])


def test_the_last_picture_chain_lays_clips_end_to_end_on_the_same_timeline():
    pipe = MiniPipeline(demo.MODEL, demo.CODEC)
    clip = make_clip(9_300_002, frames=49)
    wave, _ = recording(clip.voice, 8.0, 3)
    given = {"wave": wave[: 8 * 24000]}
    first = long_talks.continuation(pipe, clip, Task.A2V, given, 0, PARAMS, 4)
    chained = long_talks.chain(pipe, clip, Task.A2V, given, 0, PARAMS, first.frames.shape[0])
    assert chained.frames.shape == first.frames.shape and chained.joins == [49, 97]
    assert torch.equal(chained.wave, first.wave)                 # A2V carries the recording itself
    assert first.joins == [49, 85, 121] and first.frames.shape[0] == 129

"""The long driver: segments of the trained length on the seam timeline, each later one a continuation whose
clean start is exactly the stitched result's end, transcripts cut into segments, limits, and a run of each
task on the shipped small model."""
from fractions import Fraction
from types import SimpleNamespace

import pytest
import torch

from uniavgen_core import demo, units
from uniavgen_core.audio.inputs import level_driving_audio
from uniavgen_core.audio.mel import log_mel, normalise
from uniavgen_core.frontend import long
from uniavgen_core.frontend.jobs import Inputs, JobError, make_job
from uniavgen_core.frontend.long import (LONG_MAX_SECONDS, Segment, frames_for, generate_long, overlap_frames,
                                         pack_transcript, plan, segment_seed, share_transcript)
from uniavgen_core.mini.pipeline import MiniPipeline
from uniavgen_core.sampling import SamplingParams, Task, sample
from uniavgen_core.sampling.tasks import continued
from uniavgen_core.synthetic.clips import make_clip

PARAMS = SamplingParams(steps=1, shift=5.0, video_cfg=3.0, audio_cfg=4.0, slg_layer=-1)
TEXT = "the dog ran to the park. a girl found a red ball! we like to sing, dance and play all day."


# ---------------------------------------------------------------- the seam timeline

def test_the_timeline_stays_aligned_over_any_number_of_segments():
    """For every segment length, overlap and total: the segments tile the stitched frames; each takes the
    stitched result's last frames and the mel rows they cover, which end where the stitched mel ends; the
    stitched result is 1 + 4 (F - 1) pictures and mel_frames of that many rows after every segment; and each
    segment's generated audio starts in the mel row where its first generated picture starts."""
    checked = 0
    for seg in range(2, 24):
        for overlap in range(1, seg):
            for total in list(range(2, 3 * seg + 3)) + [157, 2401]:
                segments = plan(total, seg, overlap)
                assert segments[0] == Segment(0, 0, min(seg, total), 0)
                end, pictures, rows = segments[0].end, segments[0].pictures, segments[0].rows
                assert rows == units.mel_frames(pictures)
                for s in segments[1:]:
                    assert s.frames == seg and overlap <= s.prior < seg and s.start + s.prior == end
                    assert s.prior == overlap or s is segments[-1]        # only the last takes more
                    # its picture 0 is the last picture of stitched frame `start`; its row 0 that picture's time
                    assert s.picture == units.video_frames(s.start + 1) - 1 if s.start else s.picture == 0
                    assert Fraction(s.mel_start, units.MEL_RATE) == Fraction(s.picture, units.FPS)
                    # its clean rows are the last ones of the stitched mel
                    assert s.mel_start + s.prior_rows == rows
                    # stitched: its generated frames and rows appended
                    end, pictures, rows = s.end, pictures + s.new_pictures, rows + s.rows - s.prior_rows
                    assert pictures == units.video_frames(end) and rows == units.mel_frames(pictures)
                    assert s.mel_start + s.rows == rows
                    # the first generated row holds the start of the first generated picture
                    first_picture = Fraction(s.picture + units.video_frames(s.prior), units.FPS)
                    first_row = s.mel_start + s.prior_rows
                    assert Fraction(first_row, units.MEL_RATE) <= first_picture < Fraction(first_row + 1,
                                                                                         units.MEL_RATE)
                    checked += 1
                assert end == total and pictures == units.video_frames(total)
                assert len(segments) == 1 or segments[-1].frames == seg
    assert checked > 10_000


def test_a_continuation_segment_starts_on_the_last_picture_of_its_first_prior_frame():
    """The worked example of the module docstring: 13-frame segments, overlap 4."""
    first, second = plan(30, 13, 4)[:2]
    assert (first.start, first.end, first.pictures, first.rows) == (0, 13, 49, 306)
    assert (second.start, second.prior, second.picture, second.mel_start) == (9, 4, 36, 225)
    assert second.prior_rows == units.mel_frames(13) == 81 and second.mel_start + second.prior_rows == 306
    assert second.picture + units.video_frames(4) == 49       # its first generated picture: stitched picture 49


def test_the_overlap_is_a_whole_number_of_frames_from_seconds_and_is_checked():
    assert overlap_frames(1.0) == 4 and overlap_frames(0.1) == 1 and overlap_frames(2.2) == 9
    for bad in (0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="overlap must be a positive number of seconds"):
            overlap_frames(bad)
    for overlap in (0, 13, 20):
        with pytest.raises(ValueError, match=f"an overlap of {overlap} latent frames does not fit segments of 13 "
                                             r"\(3.06 s\): it must be at least 1 and at most 12"):
            plan(40, 13, overlap)
    with pytest.raises(ValueError, match="whole number of latent frames"):
        plan(40, 13, 2.5)
    with pytest.raises(ValueError, match="2 to 2401"):
        plan(2402, 13, 4)
    assert frames_for(3.0625) == 13 and frames_for(600) == 2401 and frames_for(8.0, up=True) == 33
    with pytest.raises(JobError, match="at most 600 s .10 minutes"):
        frames_for(600.1)


def test_the_segment_after_a_clip_is_the_one_the_plan_puts_there():
    """UniAVGen Extend's segment: after any clip the plan stitched so far, with the trained length, it is the plan's
    next segment (all but a last one, which takes a longer prior); a driving audio or video that ends sooner
    shortens the new part, and one that ends before the clip is refused."""
    for segment in (13, 21):
        for overlap in (1, 4, segment - 1):
            segments = plan(segment + 6 * (segment - overlap), segment, overlap)
            for before, after in zip(segments, segments[1:-1]):
                messages = []
                assert long.segment_after(before.end, overlap, 0.0, segment, None, None, messages) == Segment(
                    1, after.start, after.frames, after.prior) and not messages
    messages = []
    seg = long.segment_after(13, 4, 0.0, 13, (units.video_frames(13) + 10) * 1500, None, messages)
    assert seg.frames - seg.prior == 3 and "driving audio ends 0.62 s after" in messages[0]       # 10 pictures: 3
    seg = long.segment_after(13, 4, 2.0, 13, None, 16, messages)
    assert (seg.start, seg.frames, seg.prior) == (9, 7, 4) and "dubbing the rest" in messages[1]
    assert long.segment_after(13, 4, 2.0, 13, None, None, []).frames == 4 + 8           # 2 s: 8 latent frames
    with pytest.raises(JobError, match="nothing left to follow"):
        long.segment_after(13, 4, 0.0, 13, units.video_frames(13) * 1500, None, [])
    with pytest.raises(JobError, match="all dubbed already"):
        long.segment_after(13, 4, 0.0, 13, None, 13, [])
    with pytest.raises(JobError, match="at least 1 and at most the clip's 13"):
        long.segment_after(13, 14, 2.0, 13, None, None, [])


def test_segment_seeds_start_from_the_jobs_seed_and_stay_in_range():
    assert segment_seed(7, 0) == 7
    seeds = [segment_seed(2 ** 64 - 1, n) for n in range(200)]
    assert len(set(seeds)) == 200 and all(0 <= s < 2 ** 64 for s in seeds)


# ---------------------------------------------------------------- transcripts

def test_a_transcript_is_packed_in_whole_sentences_a_long_one_cut_at_pauses_then_words():
    assert pack_transcript("one two. three four! five six?", 2, 2, 6) == ["one two.", "three four!", "five six?"]
    assert pack_transcript("one two. three four! five six?", 10, 2, 5) == ["one two. three four! five six?"]
    assert pack_transcript("aa. bb. cc. dd.", 1.4, 1.0, 5) == ["aa. bb.", "cc.", "dd."]    # the first holds more
    # a sentence longer than a segment: at the comma, then between words (a word is never cut)
    cut = pack_transcript("we like to sing, dance and play all day long with friends.", 4, 3, 5)
    assert cut == ["we like to sing,", "dance and play", "all day long", "with friends."]
    assert pack_transcript("supercalifragilistic is long.", 2, 2, 5) == ["supercalifragilistic", "is long."]
    assert pack_transcript("it costs 3.5 euros. fine.", 1, 1, 20) == ["it costs 3.5 euros.", "fine."]
    # line breaks: one line a segment, whatever its length
    assert pack_transcript("first line, short\n\n  second line. two sentences here.\nthird", 10, 10, 15) == [
        "first line, short", "second line. two sentences here.", "third"]


def test_chinese_is_cut_at_its_own_punctuation_and_counted_in_syllables():
    text = "今天天气很好。我们去公园散步吧！你想一起来吗？"
    assert pack_transcript(text, 2, 2, 4) == ["今天天气很好。", "我们去公园散步吧！", "你想一起来吗？"]
    assert pack_transcript(text, 4, 4, 4) == ["今天天气很好。我们去公园散步吧！", "你想一起来吗？"]
    long_one = "我们今天早上一起去公园，然后去图书馆看书。"
    assert pack_transcript(long_one, 3, 3, 4) == ["我们今天早上一起去公园，", "然后去图书馆看书。"]
    assert pack_transcript("我们今天早上一起去公园散步。", 1, 1, 4) == ["我们今天", "早上一起", "去公园散", "步。"]


def test_a_transcript_over_a_fixed_length_is_shared_in_order_by_time():
    text = "one two three. four five six. seven eight nine. ten eleven twelve."
    assert share_transcript(text, [2.0, 2.0], 15) == ["one two three. four five six.",
                                                      "seven eight nine. ten eleven twelve."]
    shared = share_transcript(text, [3.0, 1.0, 1.0, 1.0, 0.2], 15)
    assert len(shared) == 5 and " ".join(s for s in shared if s) == text and shared[0].startswith("one two")
    # spread evenly over the time: a lone sentence lands where the middle of the time is
    assert share_transcript("just this.", [3.0, 2.0, 2.0], 15) == ["", "just this.", ""]
    assert share_transcript("just this.", [5.0, 2.0, 2.0], 15) == ["just this.", "", ""]


# ---------------------------------------------------------------- the driver on the shipped small model

@pytest.fixture(scope="module")
def pipe():
    return MiniPipeline(demo.MODEL, demo.CODEC)


@pytest.fixture(scope="module")
def clips():
    return [make_clip(seed, frames=49) for seed in (9_100_001, 9_100_002, 9_100_003)]


def driving(clips, seconds):
    wave = torch.cat([c.wave for c in clips])[: round(seconds * units.SAMPLE_RATE)]
    return level_driving_audio({"waveform": wave.reshape(1, 1, -1), "sample_rate": units.SAMPLE_RATE}).wave


def make_inputs(pipe, clip, text=TEXT, **given) -> Inputs:
    reference = None if "driving_video" in given else pipe.codec.encode(clip.frames[:1].float())
    return Inputs(pipe.speech(text), pipe.captions.encode(clip.caption), pipe.captions.encode(""), 11,
                  reference=reference, **given)


@pytest.fixture
def spy(monkeypatch):
    """Every segment's request and result, as the driver sampled them."""
    runs = []

    def sampled(model, requests, params, **kw):
        result = sample(model, requests, params, **kw)
        runs.append((requests[0], result))
        return result

    monkeypatch.setattr(long, "sample", sampled)
    return runs


def check_stitching(out, runs, trained_latent=13):
    """Each segment's clean start is exactly the stitched result's frames and rows it should be, and the
    stitched result is the segments' generated parts laid end to end."""
    assert len(runs) == len(out.segments) and out.tasks[0] != Task.CONTINUATION
    total = out.segments[-1].end
    assert out.video.shape == (48, total, 8, 8) and out.audio.shape == (units.mel_frames(units.video_frames(total)), 80)
    assert bool(torch.isfinite(out.video).all()) and bool(torch.isfinite(out.audio).all())
    for seg, (request, result), task, seed in zip(out.segments, runs, out.tasks, out.seeds):
        c = request.condition
        assert request.task == task == (out.tasks[0] if not seg.prior else continued(out.tasks[0]))
        assert request.seed == seed == segment_seed(11, seg.index)
        assert (request.latent_frames, request.mel_frames) == (seg.frames, seg.rows) and seg.frames == trained_latent
        if seg.prior:
            if task != Task.V2A_CONTINUATION:
                assert torch.equal(c.cond_latent, out.video[:, seg.start: seg.start + seg.prior])
            if task != Task.A2V_CONTINUATION:
                assert torch.equal(c.cond_mel, out.audio[seg.mel_start: seg.mel_start + seg.prior_rows])
        assert torch.equal(out.video[:, seg.start: seg.end], result.video[0, :, :])
        assert torch.equal(out.audio[seg.mel_start + seg.prior_rows: seg.mel_start + seg.rows],
                           result.audio[0, seg.prior_rows:])
        assert torch.equal(c.ref_latent, runs[0][0].condition.ref_latent)       # the same face throughout


def test_a2v_over_eight_seconds_of_audio(pipe, clips, spy):
    wave = driving(clips, 8.0)
    progress = []
    out = generate_long(pipe.model, make_inputs(pipe, clips[0], "", driving_audio=wave), pipe.trained_frames,
                        PARAMS, progress=progress.append)
    assert out.tasks == [Task.A2V] + [Task.A2V_CONTINUATION] * 3 and out.seconds == 129 / 16
    assert [(s.start, s.prior) for s in out.segments] == [(0, 0), (9, 4), (18, 4), (20, 11)]
    check_stitching(out, spy)
    fitted = torch.nn.functional.pad(wave, (0, out.audio.shape[0] * units.HOP - wave.shape[0]))
    for seg, (request, _) in zip(out.segments, spy):         # each segment is driven by its slice of the audio
        first = seg.mel_start * units.HOP
        assert torch.equal(request.condition.cond_mel, normalise(log_mel(fitted[first: first + seg.rows * units.HOP])))
    assert [(p.segment, p.segments) for p in progress] == [(i, 4) for i in range(4)]
    assert [p.fraction for p in progress] == [0.25, 0.5, 0.75, 1.0]
    assert "driving audio is 8.00 s; padded with 0.06 s of silence to the video's 8.06 s" in out.messages


def test_avg_of_three_sentences(pipe, clips, spy):
    spoken = []
    speak = lambda text: spoken.append(text) or pipe.speech(text)
    out = generate_long(pipe.model, make_inputs(pipe, clips[0]), pipe.trained_frames, PARAMS, speak=speak)
    assert out.texts == ["the dog ran to the park.", "a girl found a red ball!", "we like to sing,",
                         "dance and play all day."] == spoken
    assert out.tasks == [Task.AVG] + [Task.CONTINUATION] * 3 and out.video.shape[1] == 13 + 3 * 9
    check_stitching(out, spy)
    assert [r.condition.speech_ids.tolist() for r, _ in spy] == [pipe.speech(t).tokens.padded().tolist()
                                                                 for t in out.texts]


def test_v2a_of_an_eight_second_video_and_ravg_keeps_its_voice(pipe, clips, spy):
    frames = torch.cat([c.frames for c in clips])[:129]
    video = pipe.codec.encode(frames.float())
    out = generate_long(pipe.model, make_inputs(pipe, clips[0], driving_video=video), pipe.trained_frames, PARAMS,
                        speak=pipe.speech)
    assert out.tasks == [Task.V2A] + [Task.V2A_CONTINUATION] * 3 and torch.equal(out.video, video)
    check_stitching(out, spy)
    for seg, (request, _) in zip(out.segments, spy):         # each dubs its slice of the video, the same face
        assert torch.equal(request.condition.cond_latent, video[:, seg.start: seg.end])
        assert torch.equal(request.condition.ref_latent, video[:, :1])
    assert " ".join(t for t in out.texts if t) == TEXT
    spy.clear()
    voice = clips[1].ref_wave
    inputs = make_inputs(pipe, clips[0], voice=voice, seconds=9.0)
    speak = lambda text: pipe.speech(text, clips[1].ref_text)
    out = generate_long(pipe.model, inputs, pipe.trained_frames, PARAMS, speak=speak, overlap=overlap_frames(0.5))
    assert out.tasks == [Task.RAVG] + [Task.CONTINUATION] * 3 and out.video.shape[1] == frames_for(9.0)
    assert all(r.condition.ref_len > 0 for r, _ in spy)
    assert {s.prior for s in out.segments[1:-1]} == {2}
    check_stitching(out, spy)


def test_a_job_that_fits_one_segment_is_exactly_a_plain_sample(pipe, clips):
    short_video = pipe.codec.encode(clips[0].frames[:33].float())
    for inputs in (make_inputs(pipe, clips[0], "the dog ran."), make_inputs(pipe, clips[0], seconds=2.0),
                   make_inputs(pipe, clips[0], "", driving_audio=driving(clips, 2.5)),
                   make_inputs(pipe, clips[0], driving_video=short_video)):
        out = generate_long(pipe.model, inputs, pipe.trained_frames, PARAMS)
        plain = sample(pipe.model, [make_job(inputs, pipe.trained_frames, 6, PARAMS).request], PARAMS)
        assert len(out.segments) == 1 and out.seeds == [inputs.seed]
        assert torch.equal(out.video, plain.video[0]) and torch.equal(out.audio, plain.audio[0])


def test_progress_counts_every_step_of_every_segment_and_can_cancel(pipe, clips):
    seen = []
    params = SamplingParams(steps=2, slg_layer=-1)
    inputs = make_inputs(pipe, clips[0], "", driving_audio=driving(clips, 5.0))
    generate_long(pipe.model, inputs, pipe.trained_frames, params, progress=seen.append)
    assert [(p.segment, p.step.step, p.step.steps, p.segments) for p in seen] == [
        (s, i, 2, 2) for s in range(2) for i in range(2)]
    assert [p.fraction for p in seen] == [0.25, 0.5, 0.75, 1.0]

    def stop(p):
        if p.segment == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_long(pipe.model, inputs, pipe.trained_frames, params, progress=stop)


# ---------------------------------------------------------------- what does not fit

FAKE = SimpleNamespace(config=SimpleNamespace(num_layers=6))


@pytest.mark.parametrize("change, message", [
    (dict(overlap=13), r"overlap 13: at least 1 and at most 12 latent frames for this model's 13-frame \(3.06 s\)"),
    (dict(overlap=0), "overlap 0: at least 1"),
    (dict(inputs=dict(seconds=601.0)), "at most 600 s .10 minutes"),
    (dict(inputs=dict(speech="  ")), "the transcript is empty: give the text to speak"),
    (dict(speak=None), r"needs speak\(text\) -> Speech"),
    (dict(chars_per_second=40), "chars_per_second 40: more than 0 and at most 30"),
    (dict(inputs=dict(task="A2V")), "task A2V needs driving audio"),
])
def test_bad_settings_are_refused_before_any_sampling(pipe, clips, change, message):
    inputs = make_inputs(pipe, clips[0], TEXT + " " + TEXT)
    extra = change.get("inputs", {})
    if "speech" in extra:
        extra = {**extra, "speech": pipe.speech(extra["speech"])}
    inputs = Inputs(**{**inputs.__dict__, **extra})
    kw = {"speak": pipe.speech, **{k: v for k, v in change.items() if k != "inputs"}}
    with pytest.raises(JobError, match=message):
        generate_long(FAKE, inputs, pipe.trained_frames, PARAMS, **kw)


def test_inputs_over_the_limit_or_of_another_size_are_refused_with_what_to_change(pipe, clips):
    over = torch.zeros(1).expand(round((LONG_MAX_SECONDS + 1) * units.SAMPLE_RATE))
    with pytest.raises(JobError, match="the driving audio is 601.0 s; a long job takes at most 600 s"):
        generate_long(FAKE, make_inputs(pipe, clips[0], "", driving_audio=over), pipe.trained_frames, PARAMS)
    huge = torch.zeros(1, 1, 1, 1).expand(48, 2402, 8, 8)
    with pytest.raises(JobError, match="the driving video is 600.3 s; a long job dubs at most 600 s"):
        generate_long(FAKE, make_inputs(pipe, clips[0], driving_video=huge), pipe.trained_frames, PARAMS)
    video = torch.zeros(48, 30, 4, 4)
    inputs = make_inputs(pipe, clips[0], driving_video=video)
    inputs.reference = torch.zeros(48, 1, 8, 8)
    with pytest.raises(JobError, match=r"driving video latent \(4, 4\) and reference \(8, 8\) differ in size"):
        generate_long(FAKE, inputs, pipe.trained_frames, PARAMS, speak=pipe.speech)
    prior = (torch.zeros(48, 2, 8, 8), torch.zeros(31, 80))
    with pytest.raises(JobError, match="a long job starts from its reference picture .* give no previous clip"):
        generate_long(FAKE, make_inputs(pipe, clips[0], prior=prior), pipe.trained_frames, PARAMS)


def test_decode_windows_keep_every_picture_once_in_order():
    from uniavgen_core.frontend.long import decode_windows, kept_pictures
    for frames in (1, 2, 13, 23, 181):
        for tile in (1, 3, 8, 64):
            for context in (1, 2, 5):
                pictures = []
                for lo, start, end in decode_windows(frames, tile, context):
                    assert 0 <= lo <= start < end <= frames and end - start <= tile and start - lo <= context
                    # decoded alone, frame lo is one picture: the last of its four, stitched picture 4 lo
                    shown = list(range(4 * lo, 4 * lo + units.video_frames(end - lo)))
                    pictures += shown[kept_pictures(lo, start, end)]
                assert pictures == list(range(units.video_frames(frames)))
    for tile, context in ((0, 2), (4, 0)):
        with pytest.raises(ValueError, match="must each be at least 1 latent frame"):
            decode_windows(9, tile, context)

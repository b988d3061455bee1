"""The task table and the front end's one entry: task choice, durations, clean parts and messages for
every task, continuation included, as the nodes, the small model's pipeline and the demo use them."""
import itertools

import pytest
import torch

from helpers import rel_l2
from uniavgen_core import units
from uniavgen_core.audio.mel import log_mel, normalise
from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer
from uniavgen_core.frontend.jobs import Inputs, JobError, Speech, make_job
from uniavgen_core.sampling import SamplingParams, sample
from uniavgen_core.sampling.tasks import AUTO_ORDER, INPUT_NAMES, TASKS, Given, Task, choose
from uniavgen_core.synthetic.sentences import VOCAB

TOKENIZER = SpeechTokenizer.from_text("\n".join(VOCAB))
PARAMS = SamplingParams(steps=2, slg_layer=-1)


def test_every_task_is_in_the_table_and_auto_can_reach_it():
    assert set(TASKS) == set(Task) == set(AUTO_ORDER)
    for task in Task:
        assert choose("auto", set(TASKS[task].needs)) == task


@pytest.mark.parametrize("given", [set(c) for n in range(5) for c in itertools.combinations(INPUT_NAMES, n)])
def test_auto_takes_the_most_specific_task_the_inputs_allow_and_an_explicit_task_names_what_is_missing(given):
    chosen = choose("auto", given)
    assert set(TASKS[chosen].needs) <= given
    for task in AUTO_ORDER[:AUTO_ORDER.index(chosen)]:       # every task before it lacks something
        assert not set(TASKS[task].needs) <= given
    for task in Task:
        missing = [INPUT_NAMES[n] for n in TASKS[task].needs if n not in given]
        if missing:
            with pytest.raises(ValueError, match=f"task {task.name} needs {missing[0]}"):
                choose(task.name, given)
        else:
            assert choose(task.name, given) == task


def test_an_unknown_task_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="unknown task 'DUB'.*auto, AVG, RAVG, A2V, V2A, CONTINUATION"):
        choose("DUB", set())


def inputs(task="auto", seconds=1.3125, h=4, w=6, **given) -> Inputs:
    gen = torch.Generator().manual_seed(5)
    speech = Speech(TOKENIZER.encode("hello there."), TOKENIZER.null(), "hello there.")
    return Inputs(speech, torch.randn(7, 64, generator=gen), torch.zeros(0, 64), seed=3, task=task,
                  seconds=seconds, reference=torch.randn(48, 1, h, w, generator=gen), **given)


def prior(frames=2, rows=None, h=4, w=6):
    gen = torch.Generator().manual_seed(9)
    rows = units.mel_frames(units.video_frames(frames)) if rows is None else rows
    return torch.randn(48, frames, h, w, generator=gen), torch.randn(rows, 80, generator=gen)


def test_the_entry_lays_out_each_task_as_its_table_row_says():
    gen = torch.Generator().manual_seed(1)
    voice = torch.randn(24000, generator=gen).clamp(-1, 1) * 0.3
    speech = torch.randn(30000, generator=gen).clamp(-1, 1) * 0.3
    video = torch.randn(48, 9, 4, 6, generator=gen)
    given = {Task.AVG: {}, Task.RAVG: {"voice": voice}, Task.A2V: {"driving_audio": speech},
             Task.V2A: {"driving_video": video}, Task.CONTINUATION: {"prior": prior(), "voice": voice},
             Task.A2V_CONTINUATION: {"driving_audio": speech, "prior": prior()},
             Task.V2A_CONTINUATION: {"driving_video": video, "prior": prior()}}
    assert set(given) == set(Task)
    for task, extra in given.items():
        job = make_job(inputs(**extra), trained_frames=21, num_layers=2, params=PARAMS)
        r, spec = job.request, TASKS[task]
        assert r.task == task and job.messages[0] == f"task: {task.name}"
        c = r.condition
        spec.check_conditions(r.latent_frames, r.mel_frames, c.video_cond_frames, c.audio_cond_frames, c.ref_len)
        assert (c.ref_len > 0) == ("voice" in extra)
        if spec.audio == Given.ALL:       # the driving audio, fitted to the clip, is the clean mel
            fitted = torch.nn.functional.pad(speech, (0, r.mel_frames * units.HOP - speech.shape[0]))
            assert torch.equal(c.cond_mel, normalise(log_mel(fitted)))
        if spec.video == Given.PRIOR:
            assert torch.equal(c.cond_latent, given[task]["prior"][0])
        if spec.video == Given.ALL:       # the driving video's frames for the clip's length
            assert torch.equal(c.cond_latent, video[:, : r.latent_frames])
        if spec.audio == Given.PRIOR:
            assert torch.equal(c.cond_mel, given[task]["prior"][1])


def test_dubbing_follows_its_video_and_a_shorter_duration_dubs_only_the_start():
    video = torch.randn(48, 9, 4, 6)                         # 33 pictures, 2.06 s
    whole = make_job(inputs(seconds=None, driving_video=video), 21, 2, PARAMS)
    assert whole.duration.video_frames == 33 and whole.request.condition.video_cond_frames == 9
    start = make_job(inputs(seconds=1.3125, driving_video=video), 21, 2, PARAMS)
    assert start.duration.video_frames == 21 and "dubbing the first 1.312 s of the 2.062 s video" in start.messages
    longer = make_job(inputs(seconds=4.0, driving_video=video), 21, 2, PARAMS)
    assert longer.duration.video_frames == 33 and "the video is 2.062 s long: dubbing all of it" in longer.messages
    faceless = inputs(seconds=None, driving_video=video, task="V2A")
    faceless.reference = None                                # the face is the video's first frame
    assert torch.equal(make_job(faceless, 21, 2, PARAMS).request.condition.ref_latent, video[:, :1])


def test_the_entry_explains_what_does_not_fit():
    with pytest.raises(JobError, match="task RAVG needs a reference voice"):
        make_job(inputs(task="RAVG"), 21, 2, PARAMS)
    no_face = inputs()
    no_face.reference = None
    with pytest.raises(JobError, match="task AVG needs a reference face"):
        make_job(no_face, 21, 2, PARAMS)
    with pytest.raises(JobError, match=r"prior clip latent \(8, 8\) and reference \(4, 6\) differ in size"):
        make_job(inputs(prior=prior(h=8, w=8)), 21, 2, PARAMS)
    messages = make_job(inputs(task="AVG", voice=torch.zeros(2400)), 21, 2, PARAMS).messages
    assert "the reference voice is not used: AVG (joint generation) takes none" in messages
    messages = make_job(inputs(seconds=4.0), 21, 2, SamplingParams(slg_layer=5)).messages
    assert any("far past the 1.31 s this model was trained on" in m for m in messages)
    assert "skip-layer guidance off: layer 5 is beyond this model's 2 layers" in messages


def test_a_continuation_keeps_the_prior_clip_and_generates_what_follows(tiny_model):
    """The way a long-form driver uses it: the last frames of one generation and the mel rows they
    cover become the clean start of the next; the result starts with them exactly."""
    first = sample(tiny_model, [make_job(inputs(), 5, 2, PARAMS).request], PARAMS)
    k = 2
    rows = units.mel_frames(units.video_frames(k))
    tail = (first.video[0, :, -k:], first.audio[0, -rows:])
    job = make_job(inputs(prior=tail), 5, 2, PARAMS)
    assert job.request.task == Task.CONTINUATION
    nxt = sample(tiny_model, [job.request], PARAMS)
    assert torch.equal(nxt.video[0, :, :k], tail[0]) and torch.equal(nxt.audio[0, :rows], tail[1])
    again = sample(tiny_model, [job.request], PARAMS)
    assert rel_l2(again.video, nxt.video) == 0 and rel_l2(again.audio, nxt.audio) == 0


def test_each_task_is_carried_on_by_the_continuation_that_keeps_what_it_gives_whole():
    from uniavgen_core.sampling.tasks import continued
    assert {task: continued(task) for task in Task} == {
        Task.AVG: Task.CONTINUATION, Task.RAVG: Task.CONTINUATION, Task.CONTINUATION: Task.CONTINUATION,
        Task.A2V: Task.A2V_CONTINUATION, Task.A2V_CONTINUATION: Task.A2V_CONTINUATION,
        Task.V2A: Task.V2A_CONTINUATION, Task.V2A_CONTINUATION: Task.V2A_CONTINUATION}
    assert Task.CONTINUATION == 4 and [t.name for t in Task][:5] == ["AVG", "RAVG", "A2V", "V2A", "CONTINUATION"]
    # a prior with driving audio or a driving video picks the matching continuation
    assert choose("auto", {"prior", "driving_audio"}) == Task.A2V_CONTINUATION
    assert choose("auto", {"prior", "driving_video"}) == Task.V2A_CONTINUATION
    assert choose("auto", {"prior", "voice"}) == Task.CONTINUATION
    with pytest.raises(ValueError, match="task V2A_CONTINUATION needs a previous clip"):
        choose("V2A_CONTINUATION", {"driving_video"})


def test_a_prior_as_long_as_the_clip_is_refused_with_what_to_change():
    gen = torch.Generator().manual_seed(2)
    video = torch.randn(48, 6, 4, 6, generator=gen)                  # 21 pictures, as long as the clip
    with pytest.raises(JobError, match="prior clip's 6 latent frames cover all 6 of the 1.312 s clip"):
        make_job(inputs(prior=prior(frames=6)), 21, 2, PARAMS)
    with pytest.raises(JobError, match="prior clip's 131 mel rows cover all 131 of the 1.312 s clip"):
        make_job(inputs(prior=prior(frames=2, rows=131), driving_video=video), 21, 2, PARAMS)

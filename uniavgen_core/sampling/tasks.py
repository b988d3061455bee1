"""The task table: what each task needs, which parts of the clip it gives the model clean, and which
cross-modal interactions each guidance pass uses (docs/MODEL.md §6.3). The sampler, the guidance, the
front end, the training objective and the nodes all read it; none of them branches on a task by name.

One model does every task: they differ only in what is clean conditioning and what is generated.

    task               video given clean          audio given clean    voice      interactions (cond | null)
    AVG                the reference frame        nothing              -          both | both
    RAVG               the reference frame        nothing              needed     A2V (V2A: a setting) | both
    A2V                the reference frame        all of it            -          A2V | A2V
    V2A                every frame                nothing              -          V2A | V2A
    CONTINUATION       leading frames (prior)     the rows they cover  optional   both | both
    A2V_CONTINUATION   leading frames (prior)     all of it            -          A2V | A2V
    V2A_CONTINUATION   every frame                the prior's rows     -          V2A | V2A

A continuation starts from a prior clip's last latent frames and the mel rows they cover: CONTINUATION
generates both after them (joint generation with a new transcript), A2V_CONTINUATION the pictures for
the next slice of a driving audio given whole, V2A_CONTINUATION the speech for the next slice of a video
given whole. `continued` says which continuation carries a task on.

Modality-Aware CFG turns both interactions off in the unconditional pass of the early steps, whatever
the task; the table gives the passes of the other steps.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass


class Task(enum.IntEnum):
    AVG = 0            # joint audio + video from a reference face, caption and transcript
    RAVG = 1           # the same with a reference voice
    A2V = 2            # audio-driven video
    V2A = 3            # video-driven audio (dubbing)
    CONTINUATION = 4   # the next frames and audio after a prior clip's, given clean
    A2V_CONTINUATION = 5   # the next frames after a prior clip's, driven by the next slice of an audio
    V2A_CONTINUATION = 6   # the next audio after a prior clip's, for the next slice of a video


class Given(enum.Enum):
    """How much of a modality a task gives the model clean, from the start of the clip."""
    NONE = "none"          # nothing (audio)
    FIRST = "first"        # the first latent frame alone: the reference picture (video)
    PRIOR = "prior"        # a leading part, more than FIRST/NONE and less than all (a prior clip's end)
    ALL = "all"            # all of it: nothing of the modality is generated


class Voice(enum.Enum):
    UNUSED = "unused"
    OPTIONAL = "optional"
    NEEDED = "needed"


# What each input the front end may need is called in messages.
INPUT_NAMES = {"voice": "a reference voice", "driving_audio": "driving audio", "driving_video": "a driving video",
               "prior": "a previous clip"}


@dataclass(frozen=True)
class TaskSpec:
    task: Task
    title: str
    video: Given
    audio: Given
    voice: Voice
    a2v: bool                       # audio-to-video interaction in both passes
    v2a: bool                       # video-to-audio interaction in the unconditional pass ...
    v2a_cond_setting: bool = False  # ... and in the conditional one, unless this says the release turns it off
                                    # there and SamplingParams.ravg_cond_v2a decides (docs/MODEL.md §8.1)

    @property
    def needs(self) -> tuple[str, ...]:
        """The inputs (keys of INPUT_NAMES) the task cannot run without."""
        return tuple(name for name, needed in (
            ("voice", self.voice == Voice.NEEDED), ("driving_audio", self.audio == Given.ALL),
            ("driving_video", self.video == Given.ALL),
            ("prior", Given.PRIOR in (self.video, self.audio))) if needed)

    @property
    def joint(self) -> bool:
        """Both modalities generated from the reference alone (no clip given)."""
        return self.video == Given.FIRST and self.audio == Given.NONE

    @property
    def speaks(self) -> bool:
        """Whether the transcript is spoken (not when the audio is given whole)."""
        return self.audio != Given.ALL

    @property
    def reference_from_video(self) -> bool:
        """The face is the driving video's first frame."""
        return self.video == Given.ALL

    def interactions(self, ravg_cond_v2a: bool) -> tuple[tuple[bool, bool], tuple[bool, bool]]:
        """((A2V, V2A) of the conditional pass, (A2V, V2A) of the unconditional pass) outside MA-CFG."""
        v2a_cond = self.v2a and (not self.v2a_cond_setting or ravg_cond_v2a)
        return (self.a2v, v2a_cond), (self.a2v, self.v2a)

    def video_cond_frames(self, frames: int, prior: int) -> int:
        """Clean leading latent frames of a clip of `frames`, `prior` of them from a prior clip."""
        return {Given.FIRST: 1, Given.ALL: frames, Given.PRIOR: prior}[self.video]

    def audio_cond_rows(self, rows: int, prior: int) -> int:
        """Clean leading mel rows of a clip of `rows`, `prior` of them from a prior clip."""
        return {Given.NONE: 0, Given.ALL: rows, Given.PRIOR: prior}[self.audio]

    def check_conditions(self, frames: int, rows: int, video_cond: int, audio_cond: int, ref_rows: int):
        """A ValueError naming what is wrong when a request's clean parts do not fit the task."""
        name = self.task.name
        video_ok = {Given.FIRST: video_cond == 1, Given.ALL: video_cond == frames,
                    Given.PRIOR: 1 <= video_cond < frames}[self.video]
        if not video_ok:
            want = {Given.FIRST: "the reference frame alone (1)", Given.ALL: f"the whole video ({frames})",
                    Given.PRIOR: f"a prior clip's leading frames (1 to {frames - 1})"}[self.video]
            raise ValueError(f"{name} needs {want} as clean latent frames, got {video_cond}")
        audio_ok = {Given.NONE: audio_cond == 0, Given.ALL: audio_cond > 0,
                    Given.PRIOR: 0 < audio_cond < rows}[self.audio]
        if not audio_ok:
            want = {Given.NONE: "no clean mel rows", Given.ALL: "driving audio (cond_mel)",
                    Given.PRIOR: f"the prior clip's mel rows (1 to {rows - 1})"}[self.audio]
            raise ValueError(f"{name} needs {want}, got {audio_cond} row(s)")
        if self.voice == Voice.NEEDED and ref_rows == 0:
            raise ValueError(f"{name} needs a reference voice (ref_mel)")
        if self.voice == Voice.UNUSED and ref_rows:
            raise ValueError(f"{name} takes no reference voice; use RAVG (or CONTINUATION) to clone one")


TASKS = {spec.task: spec for spec in (
    TaskSpec(Task.AVG, "joint generation", Given.FIRST, Given.NONE, Voice.UNUSED, a2v=True, v2a=True),
    TaskSpec(Task.RAVG, "voice cloning", Given.FIRST, Given.NONE, Voice.NEEDED, a2v=True, v2a=True,
             v2a_cond_setting=True),
    TaskSpec(Task.A2V, "audio-driven video", Given.FIRST, Given.ALL, Voice.UNUSED, a2v=True, v2a=False),
    TaskSpec(Task.V2A, "dubbing", Given.ALL, Given.NONE, Voice.UNUSED, a2v=False, v2a=True),
    TaskSpec(Task.CONTINUATION, "continuation", Given.PRIOR, Given.PRIOR, Voice.OPTIONAL, a2v=True, v2a=True),
    TaskSpec(Task.A2V_CONTINUATION, "audio-driven video continuation", Given.PRIOR, Given.ALL, Voice.UNUSED,
             a2v=True, v2a=False),
    TaskSpec(Task.V2A_CONTINUATION, "dubbing continuation", Given.ALL, Given.PRIOR, Voice.UNUSED, a2v=False,
             v2a=True),
)}

# 'auto' takes the first task whose needed inputs are all given: the most specific one.
AUTO_ORDER = (Task.V2A_CONTINUATION, Task.A2V_CONTINUATION, Task.V2A, Task.A2V, Task.CONTINUATION, Task.RAVG,
              Task.AVG)


def continued(task: Task) -> Task:
    """The task that carries `task` on from a prior clip's end: a modality given whole stays given whole (the
    next slice of it), the other starts from the prior clip's last frames or rows. A continuation carries itself
    on."""
    spec = TASKS[task]
    carry = lambda given: Given.ALL if given == Given.ALL else Given.PRIOR
    want = (carry(spec.video), carry(spec.audio))
    return next(t for t, s in TASKS.items() if (s.video, s.audio) == want)


def choose(task: str, given: set[str]) -> Task:
    """The task for a user's choice ('auto' or a task's name) and the names of the inputs given
    (keys of INPUT_NAMES); an explicit task must have what it needs."""
    if task == "auto":
        return next(t for t in AUTO_ORDER if set(TASKS[t].needs) <= given)
    if task not in Task.__members__:
        raise ValueError(f"unknown task {task!r} (choose from auto, {', '.join(Task.__members__)})")
    chosen = Task[task]
    missing = [INPUT_NAMES[n] for n in TASKS[chosen].needs if n not in given]
    if missing:
        raise ValueError(f"task {chosen.name} needs {' and '.join(missing)}; connect it or set task to auto")
    return chosen

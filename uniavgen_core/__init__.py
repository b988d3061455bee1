"""UniAVGen in plain PyTorch: joint audio and video generation of a talking person.

    model/       the network (importable without anything else of this package but `units`)
    sampling/    requests, schedule, guidance, solvers and the sampling loop
    audio/       mel front end, audio inputs, speech tokenizer, vocoder
    checkpoint/  loading and converting weights
    frontend/    user inputs to requests;  codecs/, synthetic/, training/: the small model's world
    units        frame rates, strides and hop shared by all of them

Command-line tools: `python -m uniavgen_core.demo | train | convert | golden`.
"""
from .audio.mel import denormalise, log_mel, normalise
from .audio.speech_tokenizer import SpeechTokenizer
from .checkpoint.loading import CheckpointError, load_model
from .model import Condition, ModelOutput, Switches, UniAVGenConfig, UniAVGenModel
from .sampling import Request, SampleResult, SamplingParams, StepInfo, Task, sample
from .units import Duration

__all__ = ["denormalise", "log_mel", "normalise", "SpeechTokenizer", "CheckpointError", "load_model", "Condition",
           "ModelOutput", "Switches", "UniAVGenConfig", "UniAVGenModel", "Request", "SampleResult", "SamplingParams",
           "StepInfo", "Task", "sample", "Duration"]

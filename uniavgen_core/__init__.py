"""UniAVGen in plain PyTorch: joint audio and video generation of a talking person.

    model/       the network (imports nothing of this package but `units`)
    sampling/    requests, schedule, guidance, solvers and the sampling loop
    audio/       mel front end, audio inputs, speech tokenizer, vocoder
    checkpoint/  loading and converting weights
    lora/        which model layer each LoRA entry targets, each entry checked
    frontend/    user inputs to requests (one entry), picture framing, joining clips
    mini/, synthetic/, training/: the small model's world (its pipeline, codecs and clip writer; its data; its
                 training and evaluation)
    cli/         the command-line tools: `python -m uniavgen_core.cli.<tool>` (demo, train, convert, golden, ...)
    units        frame rates, sample rate, hop and strides shared by all of them

The public API below is resolved on first use, so importing one subpackage (e.g. `model`) loads
only what that subpackage imports.
"""
import importlib

_EXPORTS = {
    "denormalise": "audio.mel", "log_mel": "audio.mel", "normalise": "audio.mel",
    "SpeechTokenizer": "audio.speech_tokenizer",
    "CheckpointError": "checkpoint.loading", "load_model": "checkpoint.loading",
    "Condition": "model", "ModelOutput": "model", "Switches": "model", "UniAVGenConfig": "model",
    "UniAVGenModel": "model",
    "Request": "sampling", "SampleResult": "sampling", "SamplingParams": "sampling", "StepInfo": "sampling",
    "Task": "sampling", "sample": "sampling",
    "Duration": "units",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))

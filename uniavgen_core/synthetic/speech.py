"""Toy speech from espeak-ng (the `espeakng-loader` wheel), with word and phoneme timing.

The library is driven through ctypes in synchronous mode and loaded afresh for every utterance
(see `_Engine`). Output is resampled from espeak's 22,050 Hz to 24 kHz."""
from __future__ import annotations

import _ctypes
import ctypes
import os
import threading
import warnings
from dataclasses import dataclass

import numpy as np
import torch
import torchaudio.functional as AF

from ..units import SAMPLE_RATE

ESPEAK_RATE = 22_050

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 0x0001
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EVENT_END_OF_LIST, _EVENT_WORD, _EVENT_PHONEME = 0, 1, 7
_RATE, _PITCH, _RANGE = 1, 3, 4
_unload = getattr(_ctypes, "dlclose", None) or getattr(_ctypes, "FreeLibrary")
_MISSING = ("synthetic speech needs the espeak-ng library from the `espeakng-loader` wheel: "
            "pip install espeakng-loader==0.2.4")


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class _Engine:
    """espeak-ng loaded afresh for each utterance.

    The library keeps synthesis state between calls (pitch flutter and wave generator phases), so
    the same text would come out slightly differently each time; unloading and reloading it (about
    3 ms, mostly loading the voice) and seeding its random generator and libc's rand(), which it
    also draws on, makes every call reproducible."""

    def __init__(self):
        try:
            import espeakng_loader
            self.path, self.data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path().encode()
        except (ImportError, RuntimeError) as e:
            raise RuntimeError(_MISSING) from e
        self.libc = ctypes.CDLL(None) if os.name == "posix" else None     # the C runtime espeak draws rand() from
        self.shared = False     # set once another user of the library is seen in this process
        self.lock = threading.Lock()
        self.callback = _CALLBACK(self._collect)     # kept referenced: the library holds the pointer
        self.chunks, self.events = [], []

    def _collect(self, wav, n, events):
        if n > 0:
            self.chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            e = events[i]
            if e.type == _EVENT_WORD:
                self.events.append((_EVENT_WORD, e.text_position - 1, e.length, e.sample))
            elif e.type == _EVENT_PHONEME:
                self.events.append((_EVENT_PHONEME, e.id.string.decode().lstrip("',%="), 0, e.sample))
            i += 1
        return 0

    def synth(self, text: str, voice: Voice) -> tuple[np.ndarray, list]:
        """int16 samples at 22,050 Hz and the events (type, text position or phoneme, length, sample)."""
        with self.lock:
            try:
                lib = ctypes.CDLL(self.path)
            except OSError as e:
                raise RuntimeError(_MISSING) from e
            try:
                _declare(lib)
                if lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 100, self.data, _INITIALIZE_PHONEME_EVENTS) \
                        != ESPEAK_RATE:
                    raise RuntimeError(f"espeak-ng failed to initialise from {self.data.decode()}")
                try:
                    self._speak(lib, text, voice)
                finally:
                    lib.espeak_Terminate()
            finally:
                _unload(lib._handle)
            self._check_unloaded()
            wave = np.concatenate(self.chunks) if self.chunks else np.zeros(0, np.int16)
            return wave, self.events

    def _speak(self, lib, text: str, voice: Voice) -> None:
        lib.espeak_SetSynthCallback(self.callback)
        if lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice.name!r}")
        for param, value in ((_RATE, voice.rate), (_PITCH, voice.pitch), (_RANGE, voice.range)):
            lib.espeak_SetParameter(param, value, 0)
        lib.espeak_ng_SetRandSeed(1)
        if self.libc is not None:
            self.libc.srand(1)
        self.chunks, self.events = [], []
        raw = text.encode() + b"\0"
        if lib.espeak_Synth(raw, len(raw), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            raise RuntimeError(f"espeak-ng could not speak {text!r}")

    def _check_unloaded(self) -> None:
        if self.shared or not hasattr(os, "RTLD_NOLOAD"):
            return
        try:
            ctypes.CDLL(self.path, mode=os.RTLD_NOLOAD)    # fails once the library is unloaded
        except OSError:
            return
        self.shared = True
        warnings.warn("espeak-ng is also loaded by other code in this process, so it keeps its state between "
                      "utterances: synthetic speech is not bit-reproducible here")


def _declare(lib) -> None:
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]


_engine: _Engine | None = None


def _get_engine() -> _Engine:
    global _engine
    if _engine is None:
        _engine = _Engine()
    return _engine


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice ("en-us", "en-gb-x-rp+f3", ...), speaking rate in words/min, pitch and pitch
    range (0-99)."""
    name: str = "en-us"
    rate: int = 175
    pitch: int = 50
    range: int = 50


@dataclass
class Utterance:
    """`wave` [N] float32 at 24 kHz; `phonemes` (espeak name without stress marks, start s), pauses
    named "_"; `words` (first character in the text, length of the word without trailing punctuation,
    start s)."""
    wave: torch.Tensor
    phonemes: list[tuple[str, float]]
    words: list[tuple[int, int, float]]

    @property
    def seconds(self) -> float:
        return self.wave.shape[0] / SAMPLE_RATE


_ACCENTS = ("en-us", "en-us", "en", "en", "en-029", "en-gb-scotland", "en-gb-x-rp", "en-us-nyc", "en-gb-x-gbclan",
            "en-gb-x-gbcwmd")
_MALE = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "Andy", "Lee", "antonio", "gustave", "robert", "quincy",
         "travis", "michel", "john", "edward")
_FEMALE = ("f1", "f2", "f3", "f4", "f5", "Annie", "Andrea", "belinda", "linda", "steph", "steph2", "steph3",
           "anika")
PEAK = 0.6       # speech is scaled to this peak amplitude
_EDGE = 0.02     # trimming: samples below this fraction of the peak count as silence at the ends


def random_voice(rng: np.random.Generator) -> Voice:
    """An English accent with a male or female variant, rate 135-195 words/min, pitch 25-75, range 20-80."""
    variants = _MALE if rng.random() < 0.5 else _FEMALE
    accent = _ACCENTS[int(rng.integers(len(_ACCENTS)))]
    variant = variants[int(rng.integers(len(variants)))]
    return Voice(f"{accent}+{variant}", int(rng.integers(135, 196)), int(rng.integers(25, 76)),
                 int(rng.integers(20, 81)))


def synthesize(text: str, voice: Voice) -> Utterance:
    """Speak `text` (deterministic for a given text and voice). Leading and trailing silence is cut
    (10 ms margins kept) and the speech is scaled to `PEAK`."""
    raw, events = _get_engine().synth(text, voice)
    x = raw.astype(np.float32)
    loud = np.flatnonzero(np.abs(x) > _EDGE * max(np.abs(x).max(initial=0.0), 1.0))
    margin = ESPEAK_RATE // 100
    first, last = (max(loud[0] - margin, 0), min(loud[-1] + margin, len(x))) if len(loud) else (0, 0)
    x = x[first:last]
    wave = torch.from_numpy(x / max(np.abs(x).max(initial=0.0), 1.0) * PEAK)
    wave = AF.resample(wave, ESPEAK_RATE, SAMPLE_RATE) if len(x) else wave
    seconds = lambda sample: float(min(max(sample - first, 0), last - first) / ESPEAK_RATE)
    phonemes = [(name, seconds(at)) for kind, name, _, at in events if kind == _EVENT_PHONEME]
    words = []
    for kind, pos, _, at in events:
        if kind == _EVENT_WORD and (not words or pos >= words[-1][0] + words[-1][1]):
            # espeak's own length stops at an apostrophe or hyphen: take the whole word
            token = text[pos:].split(" ", 1)[0].rstrip(",.?!")
            words.append((pos, len(token), seconds(at)))
    return Utterance(wave.float().contiguous(), phonemes, words)

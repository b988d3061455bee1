"""Speech-text tokenizer: transcript -> speech vocabulary ids, as the official release (docs/MODEL.md §7.5).

English (and any non-Chinese text) is tokenised character by character, unchanged. Chinese is
segmented with jieba and converted to TONE3 pinyin with tone sandhi, one syllable per character,
each Chinese character preceded by a space token. Tokens outside the vocabulary map to id 0
(the space), as released, and are reported so the user can fix the text.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

MIN_IDS = 10                 # inference pads the id sequence to at least 10 with -1
FILLER = -1
# Only applied on the Chinese path, as released: English curly quotes stay unknown characters.
_ZH_NORMALISE = str.maketrans({";": ",", "“": '"', "”": '"', "‘": "'", "’": "'"})


class VocabularyError(ValueError):
    pass


_SURROGATE = re.compile("([\ud800-\udfff])")


def is_chinese(c: str) -> bool:
    return "\u3100" <= c <= "\u9fff"


@dataclass
class Tokens:
    chars: list[str]                      # token strings (characters or pinyin syllables)
    ids: list[int]                        # vocab ids, unpadded
    unknown: list[str] = field(default_factory=list)   # distinct tokens mapped to 0, in order of appearance

    def padded(self, min_len: int = MIN_IDS) -> torch.Tensor:
        """int64 ids padded with -1 to at least `min_len` (what the model takes)."""
        return torch.tensor(self.ids + [FILLER] * max(0, min_len - len(self.ids)), dtype=torch.long)

    def warning(self) -> str | None:
        if not self.unknown:
            return None
        shown = " ".join(repr(u) for u in self.unknown[:12])
        return (f"{len(self.unknown)} token(s) are not in the speech vocabulary and are read as a space: {shown}. "
                f"Replace them with words (e.g. numbers and symbols written out).")


class SpeechTokenizer:
    def __init__(self, vocab: dict[str, int]):
        if " " not in vocab:
            raise VocabularyError("the vocabulary has no space token; is this the official UniAVGen vocab.txt?")
        self.vocab = vocab

    @classmethod
    def from_file(cls, path: str | os.PathLike) -> "SpeechTokenizer":
        """vocab.txt: one token per line, line index = id. LF and CRLF endings both work."""
        path = Path(path)
        if not path.is_file():
            raise VocabularyError(f"speech vocabulary not found at {path}: put the official UniAVGen vocab.txt "
                                  f"next to the model")
        return cls.from_text(path.read_bytes().decode("utf-8"))

    @classmethod
    def from_text(cls, text: str) -> "SpeechTokenizer":
        """The vocabulary file's content (e.g. embedded in a converted checkpoint)."""
        lines = text.replace("\r\n", "\n").split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        vocab = {}
        for i, token in enumerate(lines):
            vocab[token] = i            # a repeated token keeps its last id, as the release's dict does
        return cls(vocab)

    def __len__(self):
        return len(self.vocab)

    # ------------------------------------------------------------------ text -> tokens
    @staticmethod
    def detect_language(text: str) -> str:
        return "zh" if any(is_chinese(c) for c in text) else "en"

    def split(self, text: str, lang: str = "auto") -> list[str]:
        """Token strings of one transcript. A lone surrogate (broken UTF-16 pasted in) becomes its escape,
        e.g. '\\ud800': a token no vocabulary has, so the user is told about it, and the Chinese word
        splitter never sees it (it cannot encode one)."""
        if lang not in ("auto", "en", "zh"):
            raise ValueError(f"lang must be 'auto', 'en' or 'zh', got {lang!r}")
        if _SURROGATE.search(text):
            lang = self.detect_language(text) if lang == "auto" else lang
            return [t for part in _SURROGATE.split(text) if part
                    for t in ([f"\\u{ord(part):04x}"] if _SURROGATE.fullmatch(part) else self.split(part, lang))]
        if lang == "auto":
            lang = self.detect_language(text)
        if lang == "zh" and text:
            return _pinyin_tokens(text)
        return list(text)

    def encode(self, text: str, lang: str = "auto", ref_text: str | None = None) -> Tokens:
        """Ids of `text`; with `ref_text` (RAVG), of reference transcript + space + text.
        With lang 'auto' the language is detected on both texts together."""
        if lang == "auto":
            lang = self.detect_language((ref_text or "") + text)
        chars = self.split(text, lang)
        if ref_text:
            chars = self.split(ref_text, lang) + [" "] + chars
        return self._lookup(chars)

    def null(self, ref_text: str | None = None, lang: str = "auto") -> Tokens:
        """The unconditional speech text: one space token, or (RAVG) reference transcript + space."""
        if not ref_text:
            return self._lookup([" "])
        if lang == "auto":
            lang = self.detect_language(ref_text)
        return self._lookup(self.split(ref_text, lang) + [" "])

    def _lookup(self, chars: list[str]) -> Tokens:
        ids, unknown = [], []
        for c in chars:
            i = self.vocab.get(c)
            if i is None:
                i = 0
                if c not in unknown:
                    unknown.append(c)
            ids.append(i)
        return Tokens(chars, ids, unknown)


def _pinyin_tokens(text: str) -> list[str]:
    import jieba
    from pypinyin import Style, lazy_pinyin

    if not jieba.dt.initialized:
        jieba.setLogLevel(50)
        jieba.initialize()
    pinyin = lambda s: lazy_pinyin(s, style=Style.TONE3, tone_sandhi=True)
    out: list[str] = []
    for seg in jieba.cut(text.translate(_ZH_NORMALISE)):
        size = len(seg.encode("utf-8"))
        if size == len(seg):                                  # ASCII letters and symbols
            if out and size > 1 and out[-1] not in " :'\"":
                out.append(" ")
            out.extend(seg)
            continue
        syllables = pinyin(seg) if size == 3 * len(seg) else None
        if syllables is not None and len(syllables) == len(seg):   # only 3-byte characters
            for c, syllable in zip(seg, syllables):
                if is_chinese(c):
                    out.append(" ")
                out.append(syllable)
            continue
        for c in seg:                                         # mixed segment, character by character
            if ord(c) < 256:
                out.append(c)
            elif is_chinese(c):
                out.append(" ")
                out.extend(pinyin(c))
            else:
                out.append(c)
    return out

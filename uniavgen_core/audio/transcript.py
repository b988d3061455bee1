"""A transcript fitted to the loaded model's speech vocabulary, before tokenising.

The release reads a character the vocabulary lacks as a space. Where the vocabulary has the same
character in another form, that form is used instead: the lower case of a letter (UniAVGen-mini
knows only lower-case letters), the plain form of a full-width or compatibility character ('Ａ',
'：'), straight quotes and '-' for typographic ones, a space for a line break or tab. Characters
the vocabulary already has are never changed, so text the release's vocab.txt spells is tokenised
exactly as the release does. Chinese characters are left to the pinyin conversion. Whatever still
has no form in the vocabulary (digits for the small model, emoji) stays, and the tokenizer reports it.
"""
from __future__ import annotations

import string
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .speech_tokenizer import is_chinese

_TYPOGRAPHIC = {**dict.fromkeys("‘’‚‛′", "'"), **dict.fromkeys("“”„‟″", '"'), **dict.fromkeys("‐‑‒–—―−", "-")}


def _plain(c: str) -> tuple[str, ...]:
    form = unicodedata.normalize("NFKC", c)
    return form, form.lower()


# what the user is told (n: how many characters) -> the other forms of a character, in order of preference
_RULES: dict[str, Callable[[str], tuple[str, ...]]] = {
    "read {n} line break(s) or tab(s) as spaces": lambda c: (" ",) if c.isspace() else (),
    "lower-cased {n} letter(s) this model only knows in lower case": lambda c: (c.lower(),),
    "replaced {n} typographic quote(s) or dash(es) with plain ones": lambda c: (_TYPOGRAPHIC.get(c, ""),),
    "replaced {n} full-width or compatibility character(s) with their plain forms": _plain,
}


@dataclass
class Fitted:
    text: str
    changed: dict[str, list[str]] = field(default_factory=dict)   # message template -> 'X'->'y' per character

    def messages(self) -> list[str]:
        out = []
        for template, edits in self.changed.items():
            shown = ", ".join(dict.fromkeys(edits))
            out.append(template.format(n=len(edits)) + f" ({shown[:120]})")
        return out


def fit_to_vocabulary(text: str, vocab: Mapping[str, int]) -> Fitted:
    """`text` with each character the vocabulary cannot spell replaced by its first other form it can
    (see the module's notes); what changed is listed for the user."""
    out, changed = [], {}
    for c in text:
        if c in vocab or is_chinese(c) or "\ud800" <= c <= "\udfff":
            out.append(c)
            continue
        form = next(((template, f) for template, rule in _RULES.items() for f in rule(c)
                     if f and f != c and all(x in vocab for x in f)), None)
        if form is None:
            out.append(c)
        else:
            out.append(form[1])
            changed.setdefault(form[0], []).append(f"{c!r}->{form[1]!r}")
    return Fitted("".join(out), changed)


def wordless(text: str) -> str | None:
    """What a transcript with nothing to say holds ('empty', or 'only '?!''); None when it has words
    (a letter, digit or Chinese character: punctuation and spaces alone are read as a pause)."""
    text = " ".join(text.split())
    if any(c.isalnum() for c in text):
        return None
    return f"only {text!r}" if text else "empty"


def describe(vocab: Mapping[str, int]) -> str:
    """What text a vocabulary spells, in a few words (for messages and errors)."""
    lower = all(c in vocab for c in string.ascii_lowercase)
    upper = all(c in vocab for c in string.ascii_uppercase)
    letters = ("letters in both cases" if lower and upper else "lower-case letters" if lower
               else "upper-case letters" if upper else "no plain Latin letters")
    digits = "digits" if all(c in vocab for c in string.digits) else "no digits (write numbers as words)"
    others = sorted(t for t in vocab if len(t) == 1 and not t.isalnum() and t != " ")
    marks = " ".join(others) if len(others) <= 16 else f"{len(others)} punctuation marks and symbols"
    syllables = sum(1 for t in vocab if len(t) > 1)
    extra = f", {syllables} pinyin syllables and other multi-letter tokens" if syllables else ""
    return f"{letters}, {digits}, space and {marks}{extra} ({len(vocab)} tokens)"

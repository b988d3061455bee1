"""Transcripts fitted to a model's vocabulary: the small model's (lower case only, no digits) and the release's
vocab.txt (both cases), whose spellable text must never change."""
import pytest

from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer
from uniavgen_core.audio.transcript import describe, fit_to_vocabulary, wordless
from uniavgen_core.checkpoint.loading import embedded_vocab
from uniavgen_core.demo import MODEL


@pytest.fixture(scope="module")
def mini():
    return SpeechTokenizer.from_text(embedded_vocab(MODEL))


@pytest.fixture(scope="module")
def official(vocab_path):
    return SpeechTokenizer.from_file(vocab_path)


def test_small_model_capitals_are_lower_cased_and_digits_stay_unknown(mini):
    fitted = fit_to_vocabulary("Hello! I have 3 cats", mini.vocab)
    assert fitted.text == "hello! i have 3 cats"
    assert fitted.messages() == ["lower-cased 2 letter(s) this model only knows in lower case ('H'->'h', 'I'->'i')"]
    assert mini.encode(fitted.text, "en").unknown == ["3"]
    assert mini.encode("Hello! I have 3 cats", "en").unknown == ["H", "I", "3"]       # what it was before
    assert describe(mini.vocab) == ("lower-case letters, no digits (write numbers as words), space and ! ' , - . ? "
                                    "(33 tokens)")


def test_small_model_typographic_full_width_and_line_breaks(mini):
    fitted = fit_to_vocabulary("It’s ＯＫ —\nreally…", mini.vocab)
    assert fitted.text == "it's ok - really..."
    assert not mini.encode(fitted.text, "en").unknown
    told = " | ".join(fitted.messages())
    assert "lower-cased 1 letter(s)" in told and "2 typographic quote(s) or dash(es)" in told
    assert "3 full-width or compatibility character(s)" in told and "'Ｏ'->'o'" in told and "1 line break" in told
    assert fit_to_vocabulary("café “x” 😀", mini.vocab).text == "café “x” 😀"     # no plain form it has: kept
    assert fit_to_vocabulary("", mini.vocab).messages() == []


def test_official_vocabulary_text_it_spells_is_never_changed(official):
    assert all(c in official.vocab for c in "AZaz09")                  # both cases and digits
    singles = "".join(t for t in official.vocab if len(t) == 1)
    for text in ("Hello! I have 3 cats", "NASA's ÀÉ Ωμ", singles, "我用Python写代码。", "银行行长说;你好"):
        fitted = fit_to_vocabulary(text, official.vocab)
        assert fitted.text == text and not fitted.changed
    assert describe(official.vocab).startswith("letters in both cases, digits, space and ")


def test_official_vocabulary_gets_plain_quotes_and_punctuation_it_lacks(official):
    fitted = fit_to_vocabulary("It’s “ok”\tＡ：", official.vocab)
    assert fitted.text == 'It\'s "ok" A:' and not official.encode(fitted.text, "en").unknown
    assert official.encode("It’s “ok”", "en").unknown == ["’", "“", "”"]                  # read as spaces before
    zh = official.encode(fit_to_vocabulary("好；", official.vocab).text, "zh")
    assert zh.chars == [" ", "hao3", ","] and not zh.unknown          # the release's ';' -> ',' on this path


@pytest.mark.parametrize("text, said", [("", "empty"), (" \n\t ", "empty"), ("?!", "only '?!'"),
                                        (" - ' . ,", "only \"- ' . ,\""), ("\u201c\u2014\u201d", "only")])
def test_a_transcript_of_punctuation_alone_is_named_as_having_no_words(text, said):
    assert wordless(text).startswith(said)


@pytest.mark.parametrize("text", ["a", " hi ", "7", "\u4f60\u597d", "\u00e9t\u00e9!"])
def test_a_letter_digit_or_chinese_character_is_a_word(text):
    assert wordless(text) is None

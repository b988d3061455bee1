"""Speech-text tokenizer: official rules, vocabulary file handling, unknown-token reports."""
import pytest

from uniavgen_core.audio.speech_tokenizer import SpeechTokenizer, VocabularyError


@pytest.fixture(scope="module")
def tok(vocab_path):
    return SpeechTokenizer.from_file(vocab_path)


def test_vocabulary_ids_are_line_indices_with_crlf_or_lf(vocab_path, tmp_path, tok):
    assert len(tok) == 2545 and tok.vocab[" "] == 0 and tok.vocab["，"] == 2541
    lf = tmp_path / "vocab_lf.txt"
    lf.write_bytes(vocab_path.read_bytes().replace(b"\r\n", b"\n"))
    assert SpeechTokenizer.from_file(lf).vocab == tok.vocab
    assert all(not k.endswith("\r") for k in tok.vocab)


def test_missing_or_wrong_vocabulary(tmp_path):
    with pytest.raises(VocabularyError, match="put the official UniAVGen vocab.txt next to the model"):
        SpeechTokenizer.from_file(tmp_path / "vocab.txt")
    bad = tmp_path / "bad.txt"
    bad.write_text("a\nb\n")
    with pytest.raises(VocabularyError, match="no space token"):
        SpeechTokenizer.from_file(bad)


def test_english_is_character_level_and_unknowns_are_reported(tok):
    t = tok.encode("It’s “ok” 😀", "en")
    assert t.chars == list("It’s “ok” 😀")
    assert [t.ids[i] for i in (2, 5, 8, 10)] == [0, 0, 0, 0]         # read as spaces, as released
    assert t.unknown == ["’", "“", "”", "😀"]
    assert "read as a space" in t.warning() and tok.encode("Hello.", "en").warning() is None


def test_chinese_pinyin_polyphones_sandhi_and_normalisation(tok):
    t = tok.encode("银行行长说;“你好”", "zh")      # ASCII ';' -> ',', curly -> straight quotes
    assert t.chars == [" ", "yin2", " ", "hang2", " ", "hang2", " ", "zhang3", " ", "shuo1", ",", '"',
                       " ", "ni2", " ", "hao3", '"']
    assert not t.unknown
    full_width = tok.encode("好；", "zh")               # the release maps only the ASCII semicolon
    assert full_width.chars == [" ", "hao3", "；"] and full_width.unknown == ["；"]


def test_mixed_text_and_auto_language(tok):
    mixed = tok.encode("我用Python写代码", "auto")
    assert mixed.chars[:6] == [" ", "wo3", " ", "yong4", " ", "P"] and "xie3" in mixed.chars
    assert tok.encode("plain text").chars == list("plain text")
    with pytest.raises(ValueError, match="lang must be"):
        tok.encode("x", "fr")


def test_segment_of_repeated_full_width_punctuation_does_not_crash(tok):
    assert tok.encode("好。。", "zh").chars == [" ", "hao3", "。", "。"]


def test_reference_concatenation_null_text_and_padding(tok):
    ravg = tok.encode("Hi.", "en", ref_text="Yes")
    assert ravg.chars == list("Yes") + [" "] + list("Hi.")
    zh = tok.encode("你好", "zh", ref_text="谢谢")
    assert zh.chars == [" ", "xie4", " ", "xie4", " ", " ", "ni2", " ", "hao3"]
    assert tok.null().ids == [0] and tok.null(ref_text="Yes").chars == list("Yes") + [" "]
    one = tok.encode("a", "en").padded()
    assert one.tolist() == [tok.vocab["a"]] + [-1] * 9
    assert tok.encode("", "en").padded().tolist() == [-1] * 10
    assert len(tok.encode("x" * 30).padded()) == 30

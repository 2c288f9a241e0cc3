from __future__ import annotations

import itertools

import pytest

from rag_splade.text import Chunker, normalize_with_offsets, segment, split_sentences

TEXT = (
    "梅雨は日本の気象現象である。５月から７月にかけて雨が多い！\n"
    "北海道には梅雨がない？　台湾にもある。"
)


def chars(text: str) -> int:
    return len(text)


def test_sentences_split_on_terminators_and_newlines() -> None:
    spans = split_sentences(TEXT)
    assert [TEXT[a:b] for a, b in spans] == [
        "梅雨は日本の気象現象である。",
        "５月から７月にかけて雨が多い！",
        "北海道には梅雨がない？",
        "台湾にもある。",
    ]


def test_closing_brackets_stay_with_their_sentence() -> None:
    text = "彼は「雨だ。」と言った。晴れ!?次"
    assert [text[a:b] for a, b in split_sentences(text)] == [
        "彼は「雨だ。」",
        "と言った。",
        "晴れ!?",
        "次",
    ]


@pytest.mark.parametrize("text", ["", "   ", "\n\n\t　"])
def test_empty_and_whitespace_give_no_chunks(text: str) -> None:
    assert Chunker(chars, max_tokens=10).split(text) == []


def test_chunks_respect_limit_and_keep_offsets(splade) -> None:
    chunker = Chunker(splade.count_tokens, max_tokens=20)
    text = TEXT * 3
    chunks = chunker.split(text)
    assert len(chunks) > 1
    for i, chunk in enumerate(chunks):
        assert chunk.index == i
        assert text[chunk.start : chunk.end] == chunk.text
        assert splade.count_tokens(chunk.text) <= 20
        assert chunk.token_count == splade.count_tokens(chunk.text)
    # whole sentences only: every chunk starts and ends on a sentence boundary
    bounds = {a for a, _ in split_sentences(text)} | {b for _, b in split_sentences(text)}
    assert all(c.start in bounds and c.end in bounds for c in chunks)


def test_no_overlap_covers_every_sentence_once() -> None:
    chunks = Chunker(chars, max_tokens=35).split(TEXT)
    sentences = [TEXT[a:b] for a, b in split_sentences(TEXT)]
    joined = [c.text[a:b] for c in chunks for a, b in split_sentences(c.text)]
    assert joined == sentences


def test_overlap_repeats_sentences() -> None:
    chunks = Chunker(chars, max_tokens=35, overlap_sentences=1).split(TEXT)
    assert len(chunks) >= 2
    for prev, nxt in itertools.pairwise(chunks):
        last = split_sentences(prev.text)[-1]
        assert nxt.text.startswith(prev.text[last[0] : last[1]])
        assert nxt.start < prev.end


def test_sentence_over_limit_is_cut_at_word_boundaries(splade) -> None:
    sentence = "日本の梅雨は北海道と小笠原諸島を除く広い範囲でみられる気象現象であり" * 4 + "。"
    chunker = Chunker(splade.count_tokens, max_tokens=15)
    chunks = chunker.split(sentence)
    assert len(chunks) > 1
    assert "".join(c.text for c in chunks) == sentence
    word_ends = {w.end for w in segment(sentence)}
    for chunk in chunks:
        assert splade.count_tokens(chunk.text) <= 15
        assert chunk.end in word_ends


def test_mixed_width_text_and_normalisation() -> None:
    text = "ＡＢＣの価格は１２３円。ﾃｽﾄです。"
    raw = Chunker(chars, max_tokens=100).split(text)
    assert raw[0].text == text
    [chunk] = Chunker(chars, max_tokens=100, normalize=True).split(text)
    assert chunk.text == "ABCの価格は123円。テストです。"
    assert (chunk.start, chunk.end) == (0, len(text))  # offsets stay in the source


def test_normalize_with_offsets_maps_back() -> None:
    text = "ｶﾞｽ１"
    norm, offsets = normalize_with_offsets(text)
    assert norm == "ガス1"
    assert [text[i] for i in offsets] == ["ｶ", "ｽ", "１"]  # ガ comes from ｶﾞ, starting at ｶ


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="max_tokens"):
        Chunker(chars, max_tokens=0)
    with pytest.raises(ValueError, match="overlap_sentences"):
        Chunker(chars, overlap_sentences=-1)
    with pytest.raises(TypeError, match="str"):
        Chunker(chars).split(None)  # type: ignore[arg-type]


def test_function_words_from_part_of_speech() -> None:
    from rag_splade.text.mecab import is_function_term

    words = {w.surface: w.function_word for w in segment("梅雨は日本でよく見られる現象である。")}
    assert words["梅雨"] is False and words["現象"] is False and words["見"] is False
    assert words["は"] and words["で"] and words["。"] and words["ある"] and words["られる"]
    light = {w.surface: w.function_word for w in segment("雨が多くなっていた。")}
    assert light["なっ"] and light["い"] and not light["多く"]
    assert is_function_term("の") and not is_function_term("石油")

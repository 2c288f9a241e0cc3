"""The fast Japanese tokenizer gives `BertJapaneseTokenizer`'s ids, id for id.

The bundled JSQuAD paragraphs run as JSQuAD writes them (`title [SEP] text`) and without the
title; all JSQuAD valid and test paragraphs run too when RAG_SPLADE_JSQUAD_DIR points at
them. Settings the real model's tokenizer config may hold (NFKC on or off, lower-casing,
`never_split`) are each checked against the slow tokenizer built with them.
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer, BertJapaneseTokenizer

from rag_splade import SpladeEncoder
from rag_splade.encoders.tokenizer_pool import tokenize_in_process
from rag_splade.sample import sample_path, sample_texts
from rag_splade.testing import build_tokenizer
from rag_splade.text.fast_tokenizer import (
    FastJapaneseTokenizer,
    UnsupportedTokenizer,
    fast_tokenizer_for,
)

JSQUAD_DIR = Path(os.environ.get("RAG_SPLADE_JSQUAD_DIR", "/nonexistent"))
# what a real text may hold: Latin letters in both cases, full-width forms NFKC folds, a
# special token written in the text, blanks of every kind, long runs of one character,
# characters the vocabulary lacks, nothing at all
EDGE_TEXTS = [
    "",
    " ",
    "\u3000\t\n",
    "ＡＢＣ株式会社はGPUとＣＰＵを比べた。",
    "タイトル [SEP] 本文です。[CLS][SEP]x[MASK]",
    "[SEP]",
    "東京[UNK]大阪 [PAD]",
    "ABC abc Abc NeverSplit neversplit 〜〜 ①②③ ｶﾀｶﾅ",
    "x" * 130 + " 長い語 " + "あ" * 130,
    "绿茶와 한국어 😀 emoji",
    "全角スペース　で　区切った　文",
]


def contexts(path: Path) -> list[str]:
    """A JSQuAD file's contexts as written (`title [SEP] text`)."""
    raw = json.loads(path.read_text("utf-8"))
    return [p["context"] for article in raw["data"] for p in article["paragraphs"]]


def assert_same_ids(slow: object, fast: FastJapaneseTokenizer, texts: list[str]) -> None:
    for max_length in (None, 512, 64, 3):
        kwargs = {"truncation": True, "max_length": max_length} if max_length else {}
        expected = slow(texts, **kwargs)["input_ids"]  # type: ignore[operator]
        got = fast.encode(texts, max_length)
        mismatched = [
            i for i, (a, b) in enumerate(zip(got, expected, strict=True)) if a.tolist() != b
        ]
        assert not mismatched, (max_length, [texts[i][:40] for i in mismatched[:3]])
        assert all(row.dtype == np.int32 for row in got)


@pytest.fixture(scope="module")
def slow_tokenizer(lexical_splade_path: Path) -> BertJapaneseTokenizer:
    tokenizer = AutoTokenizer.from_pretrained(str(lexical_splade_path))
    assert type(tokenizer).__name__ == "BertJapaneseTokenizer"
    return tokenizer


@pytest.fixture(scope="module")
def fast(slow_tokenizer: BertJapaneseTokenizer) -> FastJapaneseTokenizer:
    made = fast_tokenizer_for(slow_tokenizer)
    assert made is not None
    return made


def test_bundled_paragraphs_with_and_without_title(slow_tokenizer, fast) -> None:
    with_title = contexts(sample_path())
    assert len(with_title) == 64 and all(" [SEP] " in t for t in with_title)
    assert_same_ids(slow_tokenizer, fast, with_title + sample_texts())


def test_edge_texts(slow_tokenizer, fast) -> None:
    assert_same_ids(slow_tokenizer, fast, EDGE_TEXTS)
    # characters the vocabulary lacks read [UNK]; [SEP] written in a text stays one id
    unk, sep = slow_tokenizer.unk_token_id, slow_tokenizer.sep_token_id
    assert unk in fast.encode([EDGE_TEXTS[9]])[0]
    assert fast.encode(["[SEP]"])[0].tolist() == [slow_tokenizer.cls_token_id, sep, sep]
    assert fast.count_tokens(EDGE_TEXTS[3]) == len(slow_tokenizer.tokenize(EDGE_TEXTS[3]))


@pytest.mark.parametrize(
    "settings",
    [
        {"do_lower_case": True},
        {"do_lower_case": True, "never_split": ["NeverSplit", "ABC"]},
        {"mecab_kwargs": {"mecab_dic": "unidic_lite", "normalize_text": False}},
        {"do_lower_case": True, "mecab_kwargs": {"normalize_text": False}},
    ],
    ids=["lower", "lower+never_split", "no-nfkc", "lower+no-nfkc"],
)
def test_tokenizer_settings_are_honoured(slow_tokenizer, tmp_path: Path, settings: dict) -> None:
    slow_tokenizer.save_pretrained(str(tmp_path))
    config_path = tmp_path / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config.update(settings)
    config_path.write_text(json.dumps(config))
    slow = AutoTokenizer.from_pretrained(str(tmp_path))
    fast = fast_tokenizer_for(slow)
    assert fast is not None
    assert fast.do_lower_case == settings.get("do_lower_case", False)
    assert fast.normalize_text == settings.get("mecab_kwargs", {}).get("normalize_text", True)
    assert_same_ids(slow, fast, EDGE_TEXTS + contexts(sample_path())[:16])
    if settings.get("never_split"):  # kept as written, while the others are lowered
        ids = fast.encode(["NeverSplit Abc"])[0].tolist()
        assert ids == slow("NeverSplit Abc")["input_ids"]


def test_other_kinds_fall_back_with_a_log_line(slow_tokenizer, tmp_path: Path, caplog) -> None:
    slow_tokenizer.save_pretrained(str(tmp_path))
    vocab = str(tmp_path / "vocab.txt")
    kinds = {
        "subword tokenizer is 'character'": BertJapaneseTokenizer(
            vocab, word_tokenizer_type="mecab", subword_tokenizer_type="character"
        ),
        "word tokenizer is 'basic'": BertJapaneseTokenizer(vocab, word_tokenizer_type="basic"),
        "not plain unidic-lite": BertJapaneseTokenizer(
            vocab, word_tokenizer_type="mecab", mecab_kwargs={"mecab_option": "-N2"}
        ),
    }
    for reason, tokenizer in kinds.items():
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="rag_splade.text.fast_tokenizer"):
            assert fast_tokenizer_for(tokenizer, name="m") is None
        assert reason in caplog.text and "fast MeCab + Rust WordPiece path is off" in caplog.text
        with pytest.raises(UnsupportedTokenizer, match=reason):
            FastJapaneseTokenizer(tokenizer)
    extra = AutoTokenizer.from_pretrained(str(tmp_path))
    extra.add_tokens(["燃費向上"])
    with pytest.raises(UnsupportedTokenizer, match="added token '燃費向上'"):
        FastJapaneseTokenizer(extra)


def test_pickles_and_threads(slow_tokenizer, fast) -> None:
    texts = sample_texts()
    copy = pickle.loads(pickle.dumps(fast))
    expected = [row.tolist() for row in fast.encode(texts, 128)]
    assert [row.tolist() for row in copy.encode(texts, 128)] == expected
    with ThreadPoolExecutor(4) as pool:  # one MeCab tagger per thread
        results = list(pool.map(lambda t: fast.encode([t], 128)[0].tolist(), texts * 4))
    assert results == expected * 4
    np.testing.assert_array_equal(
        tokenize_in_process(fast, texts[:3], 64)[2],
        tokenize_in_process(slow_tokenizer, texts[:3], 64)[2],
    )


def test_encoder_uses_it_and_gets_the_same_vectors(lexical_splade_path, splade, caplog) -> None:
    assert isinstance(splade.fast_tokenizer, FastJapaneseTokenizer)
    with caplog.at_level(logging.INFO, logger="rag_splade.text.fast_tokenizer"):
        plain = SpladeEncoder(str(lexical_splade_path), device="cpu", fast_tokenizer=False)
    assert plain.fast_tokenizer is None and "fast path" not in caplog.text
    texts = contexts(sample_path())[:8] + EDGE_TEXTS
    for a, b in zip(splade.encode_documents(texts), plain.encode_documents(texts), strict=True):
        np.testing.assert_array_equal(a.indices, b.indices)
        np.testing.assert_array_equal(a.values, b.values)
    assert splade.count_tokens(texts[0]) == plain.count_tokens(texts[0])
    with pytest.raises(ValueError, match="fast_tokenizer must be True or False, got 'yes'"):
        SpladeEncoder(str(lexical_splade_path), device="cpu", fast_tokenizer="yes")  # type: ignore[arg-type]


@pytest.mark.parametrize("nul", ["\x00", "\x00\x00"])
def test_a_nul_does_not_end_the_text(lexical_splade_path, splade, nul: str) -> None:
    """MeCab reads a C string: without care, everything after a NUL would be lost from the
    tokens, the vector and the explanation. A NUL reads as a space, on every path."""
    from rag_splade.text.mecab import segment, word_spans

    text = f"東京{nul}フィルターの掃除"
    spaced = text.replace("\x00", " ")
    plain = SpladeEncoder(str(lexical_splade_path), device="cpu", fast_tokenizer=False)
    for encoder in (splade, plain):
        [ids] = encoder.tokenize([text], "document")
        [expected] = encoder.tokenize([spaced], "document")
        assert ids.tolist() == expected.tolist() and len(ids) > 4, type(encoder.fast_tokenizer)
        assert encoder.token_spans(text) == encoder.token_spans(spaced)
        [vector] = encoder.encode_documents([text])
        [reference] = encoder.encode_documents([spaced])
        np.testing.assert_array_equal(vector.indices, reference.indices)
    assert [w.surface for w in segment(text)][-1] == "掃除"
    assert [w[0] for w in word_spans(text)] == [w[0] for w in word_spans(spaced)]


@pytest.mark.skipif(not JSQUAD_DIR.is_dir(), reason="set RAG_SPLADE_JSQUAD_DIR to JSQuAD v1.3")
def test_all_jsquad_valid_and_test_paragraphs(tmp_path: Path) -> None:
    """Every JSQuAD valid and test paragraph, on a 32,768-piece vocabulary learned from
    them (so that most words are real pieces, and many split into several)."""
    texts = contexts(JSQUAD_DIR / "valid-v1.3.json") + contexts(JSQUAD_DIR / "test-v1.3.json")
    slow = build_tokenizer(tmp_path, texts=texts[::3], max_words=20000, vocab_size=32768)
    fast = fast_tokenizer_for(slow)
    assert fast is not None
    expected = slow(texts)["input_ids"]
    got = fast.encode(texts)
    assert sum(a.tolist() != b for a, b in zip(got, expected, strict=True)) == 0
    assert len(texts) > 2000

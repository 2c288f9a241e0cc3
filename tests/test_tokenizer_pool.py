"""Tokenizing in worker processes: the same ids and vectors as in-process, wave by wave."""

from __future__ import annotations

import os

import numpy as np
import pytest

from rag_splade import SpladeEncoder
from rag_splade.encoders.splade_forward import encode_sparse
from rag_splade.encoders.tokenizer_pool import TokenizerPool, tokenize_in_process
from rag_splade.sample import sample_texts

TEXTS = sample_texts()[:23]


class TestOnePool:
    """Both tests share one pool of two workers. It is closed before the tests below start
    pools of their own, so that no more than two workers (each a Python process with the
    tokenizer and its 260 MB dictionary) are alive at once."""

    @pytest.fixture(scope="class")
    def pool(self, splade):
        made = TokenizerPool(splade.tokenizer, workers=2, texts_per_worker=3)
        yield made
        made.close()

    def test_waves_cover_the_texts_in_order(self, pool, splade) -> None:
        expected = tokenize_in_process(splade.tokenizer, TEXTS, 64)
        waves = list(pool.waves(TEXTS, max_length=64))
        assert [offset for offset, _ in waves] == [0, 6, 12, 18]  # 2 workers x 3 texts a wave
        got = [row for _, ids in waves for row in ids]
        assert len(got) == len(TEXTS) and max(len(r) for r in got) == 64  # truncated
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_array_equal(a, b)
        assert list(pool.waves([], max_length=64)) == []

    def test_vectors_equal_those_tokenized_in_process(self, pool, splade) -> None:
        settings = {
            "max_length": 512,
            "device": "cpu",
            "max_batch_tokens": 512,
            "head_chunk_tokens": 256,
        }
        model, tokenizer = splade.model.transformers_model, splade.tokenizer
        alone = encode_sparse(model, tokenizer, TEXTS, **settings)
        pooled = encode_sparse(model, tokenizer, TEXTS, **settings, pool=pool)
        for a, b in zip(alone, pooled, strict=True):
            np.testing.assert_array_equal(a.indices, b.indices)
            np.testing.assert_allclose(a.values, b.values, atol=1e-5)


def test_encoder_option(lexical_splade_path, splade) -> None:
    encoder = SpladeEncoder(str(lexical_splade_path), device="cpu", tokenizer_workers=1)
    try:
        vectors = encoder.encode_documents(TEXTS[:5])
        expected = splade.encode_documents(TEXTS[:5])
        assert [v.as_dict() for v in vectors] == [
            pytest.approx(e.as_dict(), abs=1e-5) for e in expected
        ]
    finally:
        encoder.close()
    encoder.close()  # twice is fine
    for bad in (-1, 1.5, True):
        with pytest.raises(ValueError, match="tokenizer_workers must be an int >= 0"):
            SpladeEncoder(str(lexical_splade_path), device="cpu", tokenizer_workers=bad)


class _DiesWhenLoaded:
    def __reduce__(self):
        return (os._exit, (3,))  # the worker exits as it unpickles the "tokenizer"


def test_workers_that_cannot_start_raise_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="tokenizer worker processes failed to start"):
        TokenizerPool(_DiesWhenLoaded(), workers=1)
    with pytest.raises(ValueError, match="texts_per_worker must be a positive int"):
        TokenizerPool(object(), workers=1, texts_per_worker=0)

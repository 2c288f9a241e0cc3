"""The index is typed against encoder protocols: the local encoders implement them, and an
encoder of another backend (here a wrapper that is no SpladeEncoder) plugs in unchanged."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

from rag_splade import Document, HybridIndex, QdrantServerStore
from rag_splade.encoders.protocols import (
    DenseEncoderProtocol,
    RerankerProtocol,
    SparseEncoderProtocol,
)
from rag_splade.sample import sample_texts
from rag_splade.types import SparseVector


class Delegating:
    """Another backend's sparse encoder: its own class, the same answers as `inner`."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.model_name = "remote:" + inner.model_name
        self.document_max_length = inner.document_max_length
        self.calls = 0

    vocab_size = property(lambda self: self.inner.vocab_size)
    special_tokens = property(lambda self: self.inner.special_tokens)
    normalizes_text = property(lambda self: self.inner.normalizes_text)
    fingerprint = property(lambda self: None)  # unknown: the index does not check it

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        self.calls += 1
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        self.calls += 1
        return self.inner.encode_documents(texts)

    def count_tokens(self, text: str) -> int:
        return self.inner.count_tokens(text)

    def terms(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        return self.inner.terms(ids)

    def word_piece_ids(self, word: str) -> list[int]:
        return self.inner.word_piece_ids(word)

    def close(self) -> None:
        pass


def test_the_local_encoders_implement_the_protocols(splade, dense, reranker) -> None:
    assert isinstance(splade, SparseEncoderProtocol)
    assert isinstance(dense, DenseEncoderProtocol)
    assert isinstance(reranker, RerankerProtocol)
    assert splade.fingerprint is not None and splade.fingerprint.startswith("sha256:")
    assert splade.fingerprint == splade.fingerprint  # computed once, the same
    assert splade.special_tokens == 2  # [CLS] and [SEP]


def test_another_sparse_backend_plugs_in(splade, dense) -> None:
    docs = [Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:8])]
    query = "石油の主成分は何か。"
    with HybridIndex(splade, dense, QdrantServerStore(location=":memory:")) as local:
        local.add(docs)
        expected = [(h.id, h.score) for h in local.search(query, top_k=4, explain=True)]
    other = Delegating(splade)
    with HybridIndex(other, dense, QdrantServerStore(location=":memory:")) as idx:
        idx.add(docs)
        hits = idx.search(query, top_k=4, explain=True)
    assert [(h.id, h.score) for h in hits] == expected
    assert hits[0].explanation is not None and hits[0].explanation.terms
    assert other.calls == 2  # the documents once, the query once
    assert idx.spec.sparse_fingerprint is None


def test_what_is_not_an_encoder_is_refused(splade, dense) -> None:
    store = QdrantServerStore(location=":memory:")
    with pytest.raises(TypeError, match="sparse must be a SparseEncoderProtocol"):
        HybridIndex(dense, dense, store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="dense must be a DenseEncoderProtocol"):
        HybridIndex(splade, "ruri", store)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="reranker must be a Reranker or None"):
        HybridIndex(splade, dense, store, reranker=dense)  # type: ignore[arg-type]

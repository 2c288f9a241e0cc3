"""Encoder functions in the shape `QdrantVectorStore(sparse_doc_fn=, sparse_query_fn=)` takes.

The collection's sparse vector must have no IDF modifier (SPLADE weights are learned):
leave `fastembed_sparse_model` unset, as the store then creates it without one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from rag_splade.encoders.splade import SpladeEncoder
from rag_splade.types import SparseVector

BatchSparse = tuple[list[list[int]], list[list[float]]]


def _as_batch(vectors: Sequence[SparseVector]) -> BatchSparse:
    return [v.indices.tolist() for v in vectors], [v.values.tolist() for v in vectors]


def sparse_doc_fn(encoder: SpladeEncoder) -> Callable[[list[str]], BatchSparse]:
    """Passages -> (indices, values) per passage, through the document path (512 tokens)."""

    def encode(texts: list[str]) -> BatchSparse:
        return _as_batch(encoder.encode_documents(list(texts)))

    return encode


def sparse_query_fn(encoder: SpladeEncoder) -> Callable[[list[str]], BatchSparse]:
    """Queries -> (indices, values) per query, through the query path (64 tokens)."""

    def encode(texts: list[str]) -> BatchSparse:
        return _as_batch(encoder.encode_queries(list(texts)))

    return encode

"""Sparse (SPLADE) and dense encoders, and the cross-encoder reranker; the protocols that
any other encoder backend implements (`protocols`)."""

from rag_splade.encoders.dense import DenseEncoder
from rag_splade.encoders.protocols import (
    DenseEncoderProtocol,
    RerankerProtocol,
    SparseEncoderProtocol,
)
from rag_splade.encoders.reranker import DEFAULT_RERANK_MODEL, Reranker
from rag_splade.encoders.splade import SpladeEncoder
from rag_splade.settings import DEFAULT_DENSE_MODEL, DEFAULT_SPARSE_MODEL

__all__ = [
    "DEFAULT_DENSE_MODEL",
    "DEFAULT_RERANK_MODEL",
    "DEFAULT_SPARSE_MODEL",
    "DenseEncoder",
    "DenseEncoderProtocol",
    "Reranker",
    "RerankerProtocol",
    "SparseEncoderProtocol",
    "SpladeEncoder",
]

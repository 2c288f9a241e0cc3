"""Sparse (SPLADE) and dense encoders."""

from rag_splade.encoders.dense import DEFAULT_DENSE_MODEL, DenseEncoder
from rag_splade.encoders.splade import DEFAULT_SPARSE_MODEL, SpladeEncoder

__all__ = ["DEFAULT_DENSE_MODEL", "DEFAULT_SPARSE_MODEL", "DenseEncoder", "SpladeEncoder"]

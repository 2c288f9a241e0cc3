"""rag_splade: Japanese SPLADE + dense hybrid retrieval on Qdrant, with term explanations."""

from rag_splade.context import format_context
from rag_splade.encoders import DenseEncoder, SpladeEncoder
from rag_splade.index import AddResult, DocumentInfo, HybridIndex
from rag_splade.settings import Settings
from rag_splade.store import EdgeStore, HybridStore, QdrantServerStore
from rag_splade.types import (
    Document,
    Explanation,
    QueryTerm,
    SearchHit,
    SparseVector,
    TermMatch,
)

__version__ = "0.1.0"

__all__ = [
    "AddResult",
    "DenseEncoder",
    "Document",
    "DocumentInfo",
    "EdgeStore",
    "Explanation",
    "HybridIndex",
    "HybridStore",
    "QdrantServerStore",
    "QueryTerm",
    "SearchHit",
    "Settings",
    "SparseVector",
    "SpladeEncoder",
    "TermMatch",
    "format_context",
]

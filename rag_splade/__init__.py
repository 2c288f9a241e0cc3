"""rag_splade: Japanese SPLADE + dense hybrid retrieval on Qdrant, with term explanations.

Names load on first use, so `from rag_splade import Settings` (or `SearchRequest`) does not
import torch and the models' libraries.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "AddResult": "rag_splade.index",
    "DenseEncoder": "rag_splade.encoders",
    "Document": "rag_splade.types",
    "DocumentInfo": "rag_splade.index",
    "EdgeStore": "rag_splade.store",
    "Explanation": "rag_splade.types",
    "HybridIndex": "rag_splade.index",
    "HybridStore": "rag_splade.store",
    "QdrantServerStore": "rag_splade.store",
    "QueryTerm": "rag_splade.types",
    "Reranker": "rag_splade.encoders",
    "SearchHit": "rag_splade.types",
    "SearchOptions": "rag_splade.search",
    "SearchRequest": "rag_splade.search",
    "Settings": "rag_splade.settings",
    "SparseVector": "rag_splade.types",
    "SpladeEncoder": "rag_splade.encoders",
    "TermMatch": "rag_splade.types",
    "format_context": "rag_splade.context",
}

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
    "Reranker",
    "SearchHit",
    "SearchOptions",
    "SearchRequest",
    "Settings",
    "SparseVector",
    "SpladeEncoder",
    "TermMatch",
    "format_context",
]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'rag_splade' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


if TYPE_CHECKING:
    from rag_splade.context import format_context
    from rag_splade.encoders import DenseEncoder, Reranker, SpladeEncoder
    from rag_splade.index import AddResult, DocumentInfo, HybridIndex
    from rag_splade.search import SearchOptions, SearchRequest
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

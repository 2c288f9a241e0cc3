"""LlamaIndex adapters: SPLADE sparse embedding, dense embedding, encoder functions for
`QdrantVectorStore`, a hybrid retriever with explanations, and a reranking postprocessor.

Needs the `llama-index` extra: `pip install 'rag-splade[llama-index]'`.
"""

from __future__ import annotations

try:
    import llama_index.core  # noqa: F401
except ImportError as e:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        "rag_splade.llama_index needs LlamaIndex: pip install 'rag-splade[llama-index]'"
    ) from e

from rag_splade.llama_index.embeddings import DenseEmbedding, SpladeSparseEmbedding
from rag_splade.llama_index.filters import to_store_filters
from rag_splade.llama_index.qdrant_fns import sparse_doc_fn, sparse_query_fn
from rag_splade.llama_index.rerank import SpladeRerank
from rag_splade.llama_index.retriever import SpladeHybridRetriever

__all__ = [
    "DenseEmbedding",
    "SpladeHybridRetriever",
    "SpladeRerank",
    "SpladeSparseEmbedding",
    "sparse_doc_fn",
    "sparse_query_fn",
    "to_store_filters",
]

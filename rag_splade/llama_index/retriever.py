"""`SpladeHybridRetriever`: a LlamaIndex retriever over `HybridIndex` (fusion inside Qdrant)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from llama_index.core.base.base_retriever import BaseRetriever
from llama_index.core.callbacks import CallbackManager
from llama_index.core.schema import (
    NodeRelationship,
    NodeWithScore,
    QueryBundle,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.vector_stores.types import MetadataFilters

from rag_splade.index import HybridIndex
from rag_splade.llama_index.filters import to_store_filters
from rag_splade.types import SearchHit

# Keys this retriever adds to node metadata. None of them is embedded; the LLM sees only
# `key_terms`, the compact form of the explanation.
RETRIEVAL_KEYS = (
    "doc_id",
    "chunk_index",
    "sparse_score",
    "dense_score",
    "sparse_rank",
    "dense_rank",
    "key_terms",
    "explanation",
)
LLM_VISIBLE = ("key_terms",)
# Bookkeeping that `rag-splade ingest` stores with each document: no use to an LLM.
INGEST_KEYS = ("content_hash", "page_starts")


def hit_to_node(hit: SearchHit, key_terms: int = 6) -> NodeWithScore:
    """A `SearchHit` as a LlamaIndex node: offsets as `start/end_char_idx` (into the source
    document), scores, ranks and the explanation in metadata."""
    metadata: dict[str, Any] = dict(hit.metadata)
    metadata.update(
        doc_id=hit.doc_id,
        chunk_index=hit.chunk_index,
        sparse_score=hit.sparse_score,
        dense_score=hit.dense_score,
        sparse_rank=hit.sparse_rank,
        dense_rank=hit.dense_rank,
    )
    if hit.explanation is not None:
        metadata["key_terms"] = ", ".join(t.term for t in hit.explanation.key_terms(key_terms))
        metadata["explanation"] = [asdict(t) for t in hit.explanation.terms]
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=metadata,
        start_char_idx=hit.start,
        end_char_idx=hit.end,
        excluded_embed_metadata_keys=[*RETRIEVAL_KEYS, *INGEST_KEYS],
        excluded_llm_metadata_keys=[
            *(k for k in RETRIEVAL_KEYS if k not in LLM_VISIBLE),
            *INGEST_KEYS,
        ],
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
    )
    return NodeWithScore(node=node, score=hit.score)


class SpladeHybridRetriever(BaseRetriever):
    """Hybrid (or sparse / dense) retrieval in one Qdrant request, with explanations.

    Example:
        >>> retriever = SpladeHybridRetriever(index, similarity_top_k=5)  # doctest: +SKIP
        >>> engine = RetrieverQueryEngine.from_args(retriever, llm=llm)  # doctest: +SKIP
        >>> response = engine.query("燃費を良くするには")  # doctest: +SKIP
        >>> response.source_nodes[0].metadata["key_terms"]  # doctest: +SKIP
        '燃費, 向上'
    """

    def __init__(
        self,
        index: HybridIndex,
        *,
        similarity_top_k: int = 5,
        mode: str = "hybrid",
        fusion: str | None = None,
        weights: Sequence[float] | None = None,
        filters: MetadataFilters | None = None,
        explain: bool = True,
        key_terms: int = 6,
        callback_manager: CallbackManager | None = None,
    ) -> None:
        self.index = index
        self.filters = to_store_filters(filters)  # fails now on an untranslatable filter
        self.key_terms = key_terms
        self._request = {
            "top_k": similarity_top_k,
            "mode": mode,
            "fusion": fusion,
            "weights": weights,
            "explain": explain,
        }
        # Validate options now rather than at the first query.
        index.search_options(similarity_top_k, mode, fusion, weights, self.filters, explain, None)
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self.index.search(query_bundle.query_str, filters=self.filters, **self._request)
        return [hit_to_node(hit, self.key_terms) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Encoding and the store call run in a worker thread: the event loop stays free.
        return await asyncio.to_thread(self._retrieve, query_bundle)

"""`SpladeHybridRetriever`: a LlamaIndex retriever over `HybridIndex` (fusion inside Qdrant)."""

from __future__ import annotations

import asyncio
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
from typing_extensions import Unpack

from rag_splade.documents import BOOKKEEPING_KEYS
from rag_splade.index import HybridIndex
from rag_splade.llama_index.filters import to_store_filters
from rag_splade.search import OptionArgs, SearchArgs, options_from
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
    "fused_score",
    "rerank_score",
    "rerank_rank",
    "key_terms",
    "explanation",
)
LLM_VISIBLE = ("key_terms",)


def hit_to_node(hit: SearchHit, key_terms: int = 6) -> NodeWithScore:
    """A `SearchHit` as a LlamaIndex node: offsets as `start/end_char_idx` (into the source
    document), scores, ranks and the explanation in metadata. The node's score is the
    reranker's when the search reranked (the fused score stays in `fused_score`), else the
    fused score."""
    metadata: dict[str, Any] = dict(hit.metadata)
    metadata.update(
        doc_id=hit.doc_id,
        chunk_index=hit.chunk_index,
        sparse_score=hit.sparse_score,
        dense_score=hit.dense_score,
        sparse_rank=hit.sparse_rank,
        dense_rank=hit.dense_rank,
        fused_score=hit.score,
    )
    if hit.rerank_score is not None:
        metadata.update(rerank_score=hit.rerank_score, rerank_rank=hit.rerank_rank)
    if hit.explanation is not None:
        metadata["key_terms"] = ", ".join(t.term for t in hit.explanation.key_terms(key_terms))
        metadata["explanation"] = [asdict(t) for t in hit.explanation.terms]
    node = TextNode(
        id_=hit.id,
        text=hit.text,
        metadata=metadata,
        start_char_idx=hit.start,
        end_char_idx=hit.end,
        excluded_embed_metadata_keys=[*RETRIEVAL_KEYS, *BOOKKEEPING_KEYS],
        excluded_llm_metadata_keys=[
            *(k for k in RETRIEVAL_KEYS if k not in LLM_VISIBLE),
            *BOOKKEEPING_KEYS,
        ],
        relationships={NodeRelationship.SOURCE: RelatedNodeInfo(node_id=hit.doc_id)},
    )
    score = hit.score if hit.rerank_score is None else hit.rerank_score
    return NodeWithScore(node=node, score=score)


class SpladeHybridRetriever(BaseRetriever):
    """Hybrid (or sparse / dense) retrieval in one Qdrant request, with explanations;
    with `rerank=True`, the index's cross-encoder reorders the fused candidates.

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
        filters: MetadataFilters | None = None,
        key_terms: int = 6,
        callback_manager: CallbackManager | None = None,
        **options: Unpack[OptionArgs],
    ) -> None:
        """`similarity_top_k` is `SearchOptions.top_k` and `filters` LlamaIndex's own
        `MetadataFilters`; every other keyword is a `SearchOptions` field (`mode`, `fusion`,
        `weights`, `rrf_k`, `candidates`, `explain`, `rerank`, `rerank_candidates`, `offset`,
        `min_score`, `group_by_document`)."""
        self.index = index
        self.key_terms = key_terms
        # Validated now (filters included) rather than at the first query.
        args = SearchArgs(**options, filters=to_store_filters(filters))
        self.options = options_from(similarity_top_k, args)
        # refused now, not at the first query, when the index has no reranker
        if self.options.rerank:
            index.resolve(self.options.with_query("-"))
        super().__init__(callback_manager=callback_manager)

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        [hits] = self.index.search_requests([self.options.with_query(query_bundle.query_str)])
        return [hit_to_node(hit, self.key_terms) for hit in hits]

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        # Encoding and the store call run in a worker thread: the event loop stays free.
        return await asyncio.to_thread(self._retrieve, query_bundle)

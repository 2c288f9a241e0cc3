"""`SpladeRerank`: a LlamaIndex node postprocessor that reranks any retriever's nodes with
the project's `Reranker` (a cross-encoder)."""

from __future__ import annotations

from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.schema import MetadataMode, NodeWithScore, QueryBundle
from pydantic import Field, PrivateAttr

from rag_splade.encoders.reranker import Reranker


class SpladeRerank(BaseNodePostprocessor):
    """Reorder nodes by a cross-encoder's score of (query, node text) and keep `top_n`.

    Each node's score becomes the reranker's; its previous score is kept in metadata as
    `retrieval_score`, and `rerank_rank` gives the new 1-based rank. Equal scores keep the
    retriever's order. The node text is scored without metadata, as `HybridIndex` reranks
    chunk texts. `apostprocess_nodes` runs the model in a worker thread (LlamaIndex's
    default), so an event loop keeps serving.

    Example:
        >>> rerank = SpladeRerank(Reranker(), top_n=5)  # doctest: +SKIP
        >>> engine = RetrieverQueryEngine.from_args(
        ...     retriever, node_postprocessors=[rerank], llm=llm)  # doctest: +SKIP
    """

    top_n: int = Field(default=5, ge=1, description="Nodes kept after reranking.")
    _reranker: Reranker = PrivateAttr()

    def __init__(self, reranker: Reranker, top_n: int = 5) -> None:
        if not isinstance(reranker, Reranker):
            raise TypeError(f"reranker must be a rag_splade Reranker, got {reranker!r:.80}")
        super().__init__(top_n=top_n)  # type: ignore[call-arg]  # a pydantic field
        self._reranker = reranker

    @classmethod
    def class_name(cls) -> str:
        return "SpladeRerank"

    @property
    def reranker(self) -> Reranker:
        return self._reranker

    def _postprocess_nodes(
        self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
    ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SpladeRerank needs the query: pass query_bundle or query_str")
        if not nodes:
            return []
        passages = [n.node.get_content(metadata_mode=MetadataMode.NONE) for n in nodes]
        out = []
        ranked = self._reranker.rerank(query_bundle.query_str, passages, top_k=self.top_n)
        for rank, (i, score) in enumerate(ranked, start=1):
            node = nodes[i]
            node.node.metadata["retrieval_score"] = node.score
            node.node.metadata["rerank_rank"] = rank
            for key in ("retrieval_score", "rerank_rank"):  # for the app, not the LLM or embeddings
                for excluded in (
                    node.node.excluded_llm_metadata_keys,
                    node.node.excluded_embed_metadata_keys,
                ):
                    if key not in excluded:
                        excluded.append(key)
            out.append(NodeWithScore(node=node.node, score=score))
        return out

"""Reranking in LlamaIndex: the retriever's `rerank=` and the `SpladeRerank` postprocessor."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("llama_index.core")

from llama_index.core import QueryBundle
from llama_index.core.llms import MockLLM
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode, NodeWithScore, TextNode

from rag_splade import Document, HybridIndex, QdrantServerStore
from rag_splade.llama_index import SpladeHybridRetriever, SpladeRerank
from rag_splade.sample import sample_texts
from tests.test_llama_index import _ticks_during

QUERY = "日本で梅雨がないのは北海道とどこか。"


@pytest.fixture(scope="module")
def index(splade, dense, reranker) -> HybridIndex:
    idx = HybridIndex(splade, dense, QdrantServerStore(location=":memory:"), reranker=reranker)
    idx.add([Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:24])])
    return idx


def test_retriever_reranks_like_the_index(index) -> None:
    retriever = SpladeHybridRetriever(index, similarity_top_k=4, rerank=True, rerank_candidates=12)
    nodes = retriever.retrieve(QUERY)
    hits = index.search(QUERY, top_k=4, rerank=True, rerank_candidates=12)
    assert [n.node.node_id for n in nodes] == [h.id for h in hits]
    assert [n.score for n in nodes] == pytest.approx([h.rerank_score for h in hits])
    meta = nodes[0].node.metadata
    assert meta["rerank_rank"] == 1 and meta["fused_score"] == pytest.approx(hits[0].score)
    llm_text = nodes[0].node.get_content(metadata_mode=MetadataMode.LLM)
    assert "rerank" not in llm_text and "fused_score" not in llm_text


def test_retriever_refuses_rerank_without_a_reranker(splade, dense) -> None:
    plain = HybridIndex(splade, dense, QdrantServerStore(location=":memory:"))
    with pytest.raises(ValueError, match="no reranker"):
        SpladeHybridRetriever(plain, rerank=True)


def test_postprocessor_reranks_any_nodes(index, reranker) -> None:
    texts = sample_texts()[:10]
    nodes = [
        NodeWithScore(node=TextNode(id_=f"n{i}", text=t, metadata={"src": i}), score=1.0 - i / 10)
        for i, t in enumerate(texts)
    ]
    out = SpladeRerank(reranker, top_n=3).postprocess_nodes(nodes, query_str=QUERY)
    expected = reranker.rerank(QUERY, texts, top_k=3)
    assert [n.node.node_id for n in out] == [f"n{i}" for i, _ in expected]
    assert [n.score for n in out] == pytest.approx([s for _, s in expected])
    assert out[0].node.metadata["retrieval_score"] == pytest.approx(1.0 - expected[0][0] / 10)
    assert "retrieval_score" in out[0].node.excluded_llm_metadata_keys
    with pytest.raises(ValueError, match="needs the query"):
        SpladeRerank(reranker).postprocess_nodes(nodes)
    with pytest.raises(TypeError, match="Reranker"):
        SpladeRerank(object())  # type: ignore[arg-type]
    assert SpladeRerank(reranker).postprocess_nodes([], query_str=QUERY) == []


def test_postprocessor_in_a_query_engine(index, reranker) -> None:
    retriever = SpladeHybridRetriever(index, similarity_top_k=10)
    engine = RetrieverQueryEngine.from_args(
        retriever, llm=MockLLM(), node_postprocessors=[SpladeRerank(reranker, top_n=2)]
    )
    response = engine.query(QUERY)
    assert len(response.source_nodes) == 2
    assert response.source_nodes[0].node.metadata["rerank_rank"] == 1


def test_async_postprocessing_does_not_block_the_loop(reranker) -> None:
    class Slow:
        def rerank(self, query, passages, top_k=None):
            time.sleep(0.4)
            return reranker.rerank(query, passages, top_k)

    post = SpladeRerank(reranker, top_n=1)
    post._reranker = Slow()  # type: ignore[assignment]
    nodes = [NodeWithScore(node=TextNode(text=t), score=0.0) for t in sample_texts()[:3]]
    out, ticks = asyncio.run(
        _ticks_during(post.apostprocess_nodes(nodes, query_bundle=QueryBundle(QUERY)))
    )
    assert len(out) == 1  # type: ignore[arg-type]
    assert ticks >= 3

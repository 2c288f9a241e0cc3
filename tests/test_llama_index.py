"""LlamaIndex integration, offline on the tiny models and QdrantClient(":memory:")."""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("llama_index.core")
pytest.importorskip("llama_index.vector_stores.qdrant")

from llama_index.core import Document as LIDocument
from llama_index.core import QueryBundle, VectorStoreIndex
from llama_index.core.ingestion import IngestionPipeline
from llama_index.core.llms import MockLLM
from llama_index.core.node_parser import SentenceSplitter
from llama_index.core.postprocessor import SimilarityPostprocessor
from llama_index.core.query_engine import RetrieverQueryEngine
from llama_index.core.schema import MetadataMode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

from rag_splade import Document, HybridIndex, QdrantServerStore
from rag_splade.llama_index import (
    DenseEmbedding,
    SpladeHybridRetriever,
    SpladeSparseEmbedding,
    sparse_doc_fn,
    sparse_query_fn,
    to_store_filters,
)
from rag_splade.sample import sample_texts

TEXTS = sample_texts()[:20]
TARGET = next(i for i, t in enumerate(TEXTS) if "小笠原諸島" in t)


@pytest.fixture(scope="module")
def index(splade, dense) -> HybridIndex:
    idx = HybridIndex(splade, dense, QdrantServerStore(location=":memory:"))
    idx.add(
        [
            Document(id=f"d{i}", text=t, metadata={"part": "even" if i % 2 == 0 else "odd", "n": i})
            for i, t in enumerate(TEXTS)
        ]
    )
    return idx


def test_qdrant_vector_store_hybrid_pipeline(splade, dense) -> None:
    store = QdrantVectorStore(
        client=QdrantClient(":memory:"),
        collection_name="ja",
        enable_hybrid=True,
        sparse_doc_fn=sparse_doc_fn(splade),
        sparse_query_fn=sparse_query_fn(splade),
    )
    embed = DenseEmbedding(dense)
    pipeline = IngestionPipeline(
        transformations=[SentenceSplitter(chunk_size=1024, chunk_overlap=0), embed],
        vector_store=store,
    )
    docs = [LIDocument(text=t, id_=f"d{i}", metadata={"n": i}) for i, t in enumerate(TEXTS)]
    nodes = pipeline.run(documents=docs)
    assert len(nodes) == len(TEXTS)
    index = VectorStoreIndex.from_vector_store(store, embed_model=embed)
    retriever = index.as_retriever(
        vector_store_query_mode="hybrid", similarity_top_k=3, sparse_top_k=10
    )
    results = retriever.retrieve("梅雨 小笠原諸島 北海道")
    assert results[0].node.metadata["n"] == TARGET
    # the sparse side really is SPLADE: the stored sparse vector is the document encoding of
    # what LlamaIndex embeds (text plus embeddable metadata)
    point = store.client.retrieve("ja", [results[0].node.node_id], with_vectors=True)[0]
    stored = point.vector["text-sparse-new"]
    embedded = results[0].node.get_content(MetadataMode.EMBED)
    expected = splade.encode_documents([embedded])[0]
    assert stored.indices == expected.indices.tolist()


def test_retriever_in_query_engine_carries_explanations(index) -> None:
    retriever = SpladeHybridRetriever(index, similarity_top_k=4)
    engine = RetrieverQueryEngine.from_args(
        retriever,
        llm=MockLLM(),
        node_postprocessors=[SimilarityPostprocessor(similarity_cutoff=0.0)],
    )
    response = engine.query("日本で梅雨がないのは北海道とどこか。")
    assert len(response.source_nodes) == 4
    for source in response.source_nodes:
        meta = source.node.metadata
        total = sum(t["contribution"] for t in meta["explanation"])
        if meta["sparse_score"] is not None:
            assert total == pytest.approx(meta["sparse_score"], rel=1e-4)
        assert meta["doc_id"].startswith("d") and source.node.ref_doc_id == meta["doc_id"]
        llm_view = source.node.get_content(MetadataMode.LLM)
        embed_view = source.node.get_content(MetadataMode.EMBED)
        assert "key_terms:" in llm_view and "explanation" not in llm_view
        assert "key_terms" not in embed_view and "sparse_score" not in embed_view
    scores = [s.score for s in response.source_nodes]
    assert scores == sorted(scores, reverse=True)


def test_retriever_ranks_the_lexical_match_first(index) -> None:
    for mode in ("hybrid", "sparse"):
        retriever = SpladeHybridRetriever(index, similarity_top_k=3, mode=mode)
        assert retriever.retrieve("小笠原諸島")[0].node.metadata["doc_id"] == f"d{TARGET}"


def test_metadata_filters_narrow_results(index) -> None:
    eq = MetadataFilters(filters=[MetadataFilter(key="part", value="even")])
    nodes = SpladeHybridRetriever(index, similarity_top_k=20, filters=eq).retrieve("梅雨")
    assert nodes and all(n.node.metadata["part"] == "even" for n in nodes)
    any_of = MetadataFilters(
        filters=[MetadataFilter(key="n", value=[1, 2, 3], operator=FilterOperator.IN)]
    )
    nodes = SpladeHybridRetriever(index, similarity_top_k=20, filters=any_of).retrieve("梅雨")
    assert sorted(n.node.metadata["n"] for n in nodes) == [1, 2, 3]
    ranged = MetadataFilters(
        filters=[
            MetadataFilter(key="n", value=5, operator=FilterOperator.GTE),
            MetadataFilter(key="n", value=8, operator=FilterOperator.LT),
        ]
    )
    assert to_store_filters(ranged) == {"n": {"gte": 5, "lt": 8}}
    nodes = SpladeHybridRetriever(index, similarity_top_k=20, filters=ranged).retrieve("梅雨")
    assert sorted(n.node.metadata["n"] for n in nodes) == [5, 6, 7]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        (
            MetadataFilters(
                filters=[MetadataFilter(key="part", value="x", operator=FilterOperator.NE)]
            ),
            "'!='",
        ),
        (
            MetadataFilters(
                filters=[MetadataFilter(key="a", value=1), MetadataFilter(key="b", value=2)],
                condition=FilterCondition.OR,
            ),
            "condition",
        ),
        (
            MetadataFilters(filters=[MetadataFilters(filters=[MetadataFilter(key="a", value=1)])]),
            "nested",
        ),
    ],
)
def test_untranslatable_filters_raise(index, filters, message) -> None:
    with pytest.raises(ValueError, match=message):
        SpladeHybridRetriever(index, filters=filters)


def test_bad_retriever_options_fail_at_construction(index) -> None:
    with pytest.raises(ValueError, match="mode must be one of"):
        SpladeHybridRetriever(index, mode="bm25")


def test_embeddings_use_the_right_paths(splade, dense) -> None:
    sparse = SpladeSparseEmbedding(splade)
    q = sparse.get_query_embedding("石油の主成分")
    assert q == splade.encode_queries(["石油の主成分"])[0].as_dict()
    docs = sparse.get_text_embedding_batch(["石油", "梅雨"])
    alone = splade.encode_documents(["梅雨"])[0].as_dict()
    assert docs[1].keys() == alone.keys()
    assert list(docs[1].values()) == pytest.approx(list(alone.values()), abs=1e-5)
    prefixed = type(dense)(
        dense.model_name, device="cpu", query_prefix="Q: ", document_prefix="D: "
    )
    embed = DenseEmbedding(prefixed)
    assert embed.get_query_embedding("梅雨") == pytest.approx(
        dense.encode_queries(["Q: 梅雨"])[0].tolist(), abs=1e-6
    )
    assert embed.get_text_embedding("梅雨") == pytest.approx(
        dense.encode_documents(["D: 梅雨"])[0].tolist(), abs=1e-6
    )


class SlowEncoder:
    """Wraps an encoder so each call blocks its thread for a while, as a big batch on a GPU."""

    def __init__(self, inner, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def encode_queries(self, texts):
        time.sleep(self.seconds)
        return self.inner.encode_queries(texts)

    def encode_documents(self, texts, top_k=None):
        time.sleep(self.seconds)
        return self.inner.encode_documents(texts, top_k)


async def _ticks_during(coro, period: float = 0.02) -> tuple[object, int]:
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            ticks += 1
            await asyncio.sleep(period)

    task = asyncio.create_task(ticker())
    try:
        result = await coro
    finally:
        done.set()
        await task
    return result, ticks


def test_async_calls_do_not_block_the_event_loop(index, splade) -> None:
    slow = SlowEncoder(splade, 0.4)
    embed = SpladeSparseEmbedding(slow)  # type: ignore[arg-type]
    result, ticks = asyncio.run(_ticks_during(embed.aget_query_embedding("石油")))
    assert result == splade.encode_queries(["石油"])[0].as_dict()
    # A blocked loop would tick once at most; a busy machine may slow the ticker, not stop it.
    assert ticks >= 3

    original = index.sparse
    index.sparse = slow
    try:
        retriever = SpladeHybridRetriever(index, similarity_top_k=3)
        nodes, ticks = asyncio.run(_ticks_during(retriever.aretrieve(QueryBundle("小笠原諸島"))))
    finally:
        index.sparse = original
    assert nodes[0].node.metadata["doc_id"] == f"d{TARGET}"
    assert ticks >= 3


def test_example_script_runs(
    tmp_path, monkeypatch, capsys, lexical_splade_path, lexical_dense_path
) -> None:
    import runpy
    from pathlib import Path

    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    monkeypatch.setenv("RAG_SPLADE_INDEX_PATH", str(tmp_path / "idx"))
    script = Path(__file__).parents[1] / "examples" / "llama_index_rag.py"
    monkeypatch.setattr("sys.argv", [str(script), "石油の主成分は何か。"])
    with pytest.raises(SystemExit) as exit_:  # the script ends with sys.exit(its code)
        runpy.run_path(str(script), run_name="__main__")
    assert exit_.value.code == 0
    out = capsys.readouterr().out
    assert "Q: 石油の主成分は何か。" in out
    assert "[1] 石油-" in out and "matched: " in out and "[3] " in out


def test_ingest_bookkeeping_stays_out_of_prompts() -> None:
    from rag_splade.llama_index.retriever import hit_to_node
    from rag_splade.types import SearchHit

    metadata = {"title": "梅雨", "content_hash": "ab12", "page_starts": [0, 9]}
    node = hit_to_node(SearchHit("p", "d1", 0, "梅雨の話。", metadata, score=1.0)).node
    for mode in (MetadataMode.LLM, MetadataMode.EMBED):
        shown = node.get_content(mode)
        assert "title: 梅雨" in shown
        assert not any(key in shown for key in ("content_hash", "page_starts"))

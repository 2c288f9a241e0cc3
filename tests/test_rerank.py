"""Reranking with a cross-encoder, and the fixed order of equal scores."""

from __future__ import annotations

import numpy as np
import pytest

from rag_splade import Document, EdgeStore, HybridIndex, Reranker
from rag_splade.ranking import cut_inside_tie, tie_break_key
from rag_splade.sample import sample_texts
from rag_splade.search import SearchRequest
from rag_splade.store.base import RankedChunk, StoredChunk
from tests.stores import STORE_KINDS, new_store

QUERIES = ["日本で梅雨がないのは北海道とどこか。", "石油の主成分は何か。", "揚子江気団の勢力"]


make_store = new_store


@pytest.fixture
def index(store_kind, tmp_path, splade, dense, reranker) -> HybridIndex:
    idx = HybridIndex(splade, dense, new_store(store_kind, tmp_path), reranker=reranker)
    idx.add([Document(id=f"doc-{i:02d}", text=t) for i, t in enumerate(sample_texts()[:32])])
    yield idx
    idx.close()


# -- the Reranker on its own -----------------------------------------------------------------
def test_lexical_reranker_prefers_the_passage_with_the_query_words(reranker) -> None:
    query = "富士山の高さは何メートルですか"
    passages = ["京都の寺は古い。", "富士山の高さは3776メートルです。", "富士山は静岡県にある。"]
    ranked = reranker.rerank(query, passages)
    assert [i for i, _ in ranked] == [1, 2, 0]
    assert ranked[0][1] > ranked[1][1] > ranked[2][1]


def test_scores_do_not_depend_on_the_batching(lexical_reranker_path) -> None:
    texts = sample_texts()[:12]
    pairs = [("石油の主成分は何か。", t[: 20 + 15 * i]) for i, t in enumerate(texts)]
    one_batch = Reranker(str(lexical_reranker_path), device="cpu").score(pairs)
    tiny_batches = Reranker(str(lexical_reranker_path), device="cpu", max_batch_tokens=64)
    assert tiny_batches.score(pairs) == pytest.approx(one_batch, abs=1e-5)
    alone = [tiny_batches.score([p])[0] for p in pairs]
    assert alone == pytest.approx(one_batch, abs=1e-5)


def test_score_validates_its_pairs(reranker) -> None:
    assert reranker.score([]).shape == (0,)
    with pytest.raises(TypeError, match=r"pairs\[1\]"):
        reranker.score([("q", "p"), ("only one",)])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="pairs must be"):
        reranker.score("q")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"pairs\[0\]"):
        reranker.score([("q", None)])  # type: ignore[list-item]


def test_a_model_with_several_labels_is_refused(tmp_path, lexical_splade_path) -> None:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    AutoTokenizer.from_pretrained(str(lexical_splade_path)).save_pretrained(str(tmp_path))
    config = BertConfig(vocab_size=4000, hidden_size=32, num_hidden_layers=1, num_attention_heads=1)
    config.num_labels = 3
    BertForSequenceClassification(config).save_pretrained(str(tmp_path))
    with pytest.raises(ValueError, match="3 labels"):
        Reranker(str(tmp_path), device="cpu")


# -- reranked search -------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["hybrid", "sparse", "dense"])
def test_rerank_reorders_the_fused_candidates(index, reranker, mode) -> None:
    for query in QUERIES:
        fused = index.search(query, top_k=20, mode=mode, explain=False)
        hits = index.search(query, top_k=5, mode=mode, rerank=True, rerank_candidates=20)
        # the reranker saw the 20 fused candidates and chose its top 5 among them
        expected = reranker.rerank(query, [h.text for h in fused], top_k=5)
        assert [h.id for h in hits] == [fused[i].id for i, _ in expected]
        assert [h.rerank_score for h in hits] == pytest.approx([s for _, s in expected])
        assert [h.rerank_rank for h in hits] == [1, 2, 3, 4, 5]
        by_id = {h.id: h for h in fused}
        for hit in hits:  # the fused score and each retriever's rank stay as they were
            before = by_id[hit.id]
            assert (hit.score, hit.sparse_rank, hit.dense_rank) == (
                before.score,
                before.sparse_rank,
                before.dense_rank,
            )


def test_reranked_hits_keep_their_explanations(index) -> None:
    query = QUERIES[1]
    plain = {h.id: h for h in index.search(query, top_k=20, explain=True)}
    for hit in index.search(query, top_k=5, rerank=True, rerank_candidates=20, explain=True):
        assert hit.explanation is not None
        assert hit.explanation.terms == plain[hit.id].explanation.terms
        assert hit.explanation.sparse_score == pytest.approx(hit.sparse_score or 0.0, rel=1e-4)


def test_unreranked_hits_have_no_rerank_fields(index) -> None:
    for hit in index.search(QUERIES[0], top_k=3):
        assert hit.rerank_score is None and hit.rerank_rank is None


def test_rerank_candidates_default_to_the_index_setting(tmp_path, splade, dense, reranker) -> None:
    seen: list[int] = []

    class Counting(Reranker):
        def __init__(self) -> None:
            self.__dict__.update(reranker.__dict__)

        def score(self, pairs):
            seen.append(len(pairs))
            return super().score(pairs)

    store = make_store("memory", tmp_path)
    with HybridIndex(splade, dense, store, reranker=Counting(), rerank_candidates=12) as idx:
        idx.add([Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:30])])
        idx.search(QUERIES[0], top_k=3, rerank=True)
        idx.search(QUERIES[0], top_k=3, rerank=True, rerank_candidates=7)
        idx.search(QUERIES[0], top_k=15, rerank=True)  # the pool is never below top_k
        assert seen == [12, 7, 15]
        seen.clear()
        # a batch scores the pairs of all its queries in one call
        batch = idx.search_batch(QUERIES, top_k=3, rerank=True, rerank_candidates=6)
        assert seen == [18]
        alone = [idx.search(q, top_k=3, rerank=True, rerank_candidates=6) for q in QUERIES]
        assert [[h.id for h in hits] for hits in batch] == [[h.id for h in a] for a in alone]


def test_rerank_without_a_reranker_is_a_clear_error(tmp_path, splade, dense) -> None:
    with HybridIndex(splade, dense, make_store("memory", tmp_path)) as idx:
        idx.add([Document(id="a", text="富士山は高い。")])
        with pytest.raises(ValueError, match=r"no reranker.*RAG_SPLADE_RERANK_MODEL"):
            idx.search("富士山", rerank=True)
        with pytest.raises(ValueError, match="no reranker"):
            idx.search_batch(["富士山", "高い"], rerank=True)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_k": 10, "rerank": True, "rerank_candidates": 5}, "at least top_k"),
        ({"rerank_candidates": 20}, "only with rerank=True"),
        ({"rerank": True, "rerank_candidates": 1001}, "at most 1000"),
        ({"rerank": True, "rerank_candidates": 0}, "positive int"),
        ({"rerank": True, "rerank_candidates": True}, "positive int"),
    ],
)
def test_rerank_options_are_checked(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        SearchRequest(query="富士山", **options)


def test_rerank_must_be_a_bool() -> None:
    with pytest.raises(TypeError, match="rerank must be a bool"):
        SearchRequest(query="富士山", rerank="yes")  # type: ignore[arg-type]


# -- the fixed order of equal scores ---------------------------------------------------------
def _ranked(pid: str, score: float, sparse_rank: int | None, dense_rank: int | None):
    chunk = StoredChunk(id=pid, doc_id=pid, chunk_index=0, text="", start=0, end=0, metadata={})
    return RankedChunk(chunk, score, None, None, sparse_rank, dense_rank)


def test_tie_break_key_orders_equal_scores_as_documented() -> None:
    hits = [
        _ranked("d", 0.5, 3, 1),  # best rank 1, sparse 3
        _ranked("c", 0.5, 1, 3),  # best rank 1, sparse 1: before d
        _ranked("b", 0.5, None, 2),  # best rank 2
        _ranked("a", 0.5, 2, None),  # best rank 2, sparse 2: before b
        _ranked("z", 0.5, 4, 4),
        _ranked("y", 0.5, 4, 4),  # same ranks: by point id
        _ranked("top", 0.9, None, None),
    ]
    rng = np.random.default_rng(0)
    for _ in range(5):
        shuffled = [hits[i] for i in rng.permutation(len(hits))]
        assert [h.chunk.id for h in sorted(shuffled, key=tie_break_key)] == [
            "top", "c", "d", "a", "b", "y", "z"
        ]  # fmt: skip


def test_cut_inside_tie() -> None:
    scores = [_ranked(str(i), s, None, None) for i, s in enumerate([3, 2, 2, 2, 2])]
    assert cut_inside_tie(scores, keep=2, fetched_limit=5)  # the 2s may go on past 5
    assert not cut_inside_tie(scores, keep=2, fetched_limit=6)  # all there is came back
    assert not cut_inside_tie(scores, keep=1, fetched_limit=5)  # the cut is after the 3
    assert not cut_inside_tie(scores[:3], keep=3, fetched_limit=3)  # nothing cut


@pytest.mark.parametrize("kind", STORE_KINDS)
@pytest.mark.parametrize("mode", ["hybrid", "sparse", "dense"])
def test_exact_ties_across_the_cut_come_back_by_point_id(tmp_path, splade, dense, kind, mode):
    """Twelve copies of one passage tie exactly in every list; the cut at 3 falls inside the
    tie, past the extra hits first fetched: the index asks again and keeps the 3 smallest
    point ids, the same every time."""
    text = sample_texts()[3]
    docs = [Document(id=f"copy-{i:02d}", text=text) for i in range(12)]
    docs += [Document(id=f"other-{i}", text=t) for i, t in enumerate(sample_texts()[10:20])]
    with HybridIndex(splade, dense, make_store(kind, tmp_path)) as idx:
        idx.add(docs)
        copies = sorted(h.id for h in idx.search(text[:40], top_k=30, mode=mode) if h.text == text)
        assert len(copies) == 12
        for _ in range(5):
            hits = idx.search(text[:40], top_k=3, mode=mode, explain=False)
            assert [h.id for h in hits] == copies[:3]


@pytest.mark.parametrize("fusion", ["rrf", "dbsf"])
def test_repeated_searches_on_edge_give_one_order(tmp_path, splade, dense, reranker, fusion):
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "idx"), reranker=reranker) as idx:
        idx.add([Document(id=f"doc-{i:02d}", text=t) for i, t in enumerate(sample_texts())])
        for rerank in (False, True):
            first = idx.search_batch(QUERIES, top_k=20, fusion=fusion, rerank=rerank)
            for hits in first:
                assert [tie_break_key_of(h) for h in hits] == sorted(
                    tie_break_key_of(h) for h in hits
                ) or rerank
            for _ in range(10):
                again = idx.search_batch(QUERIES, top_k=20, fusion=fusion, rerank=rerank)
                assert [[h.id for h in hits] for hits in again] == [
                    [h.id for h in hits] for hits in first
                ]


def tie_break_key_of(hit):
    return tie_break_key(_ranked(hit.id, hit.score, hit.sparse_rank, hit.dense_rank))

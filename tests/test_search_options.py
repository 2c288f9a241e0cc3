"""Paging (`offset`), a score floor (`min_score`) and `group_by_document`, on both stores."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag_splade import Document, HybridIndex, SpladeEncoder
from rag_splade.sample import sample_texts
from tests.stores import STORE_KINDS, new_store

QUERIES = ["日本で梅雨がないのは北海道とどこか。", "石油の主成分は何か。", "揚子江気団の勢力"]


@pytest.fixture(scope="module", params=STORE_KINDS)
def index(request, lexical_splade_path: Path, dense, reranker, tmp_path_factory):
    # short chunks: each document is cut into several, so grouping has work to do
    sparse = SpladeEncoder(str(lexical_splade_path), device="cpu", document_max_length=64)
    store = new_store(request.param, tmp_path_factory.mktemp("options"))
    idx = HybridIndex(sparse, dense, store, reranker=reranker)
    texts = sample_texts()[:30]
    idx.add([Document(id=f"doc-{i:02d}", text=texts[i] + texts[i + 1]) for i in range(0, 30, 2)])
    yield idx
    idx.close()


def ids(hits) -> list[str]:
    return [h.id for h in hits]


@pytest.mark.parametrize("mode", ["hybrid", "sparse", "dense"])
@pytest.mark.parametrize("rerank", [False, True])
def test_pages_join_into_the_longer_list(index, mode, rerank) -> None:
    for query in QUERIES:
        options = {"mode": mode, "explain": False, "rerank": rerank}
        if rerank:
            options["rerank_candidates"] = 20
        whole = index.search(query, top_k=12, **options)
        pages = [index.search(query, top_k=4, offset=o, **options) for o in (0, 4, 8)]
        assert ids(whole) == [h.id for page in pages for h in page]
        if rerank:
            assert [h.rerank_rank for h in pages[1]] == [5, 6, 7, 8]


@pytest.mark.parametrize("rerank", [False, True])
def test_min_score_drops_the_weaker_hits(index, rerank) -> None:
    def score(h):
        return h.rerank_score if rerank else h.score

    full = index.search(QUERIES[1], top_k=15, explain=False, rerank=rerank)
    # the first place from the 3rd on where the score drops (RRF ties are common)
    k = next(i for i in range(3, len(full)) if score(full[i]) < score(full[i - 1]))
    floor = (score(full[k - 1]) + score(full[k])) / 2
    kept = index.search(QUERIES[1], top_k=15, explain=False, rerank=rerank, min_score=floor)
    assert ids(kept) == ids(full)[:k]
    assert all(score(h) >= floor for h in kept)
    assert index.search(QUERIES[1], top_k=15, min_score=1e9, rerank=rerank) == []


@pytest.mark.parametrize("mode", ["hybrid", "sparse", "dense"])
@pytest.mark.parametrize("per_document", [1, 2])
def test_group_by_document_caps_chunks_per_document(index, mode, per_document) -> None:
    assert index.count() > 2 * 15  # several chunks per document
    for query in QUERIES:
        full = index.search(query, top_k=200, mode=mode, explain=False, candidates=200)
        seen: dict[str, int] = {}
        expected = []
        for h in full:
            seen[h.doc_id] = seen.get(h.doc_id, 0) + 1
            if seen[h.doc_id] <= per_document:
                expected.append(h.id)
        grouped = index.search(
            query, top_k=6, mode=mode, explain=False, candidates=200,
            group_by_document=per_document,
        )  # fmt: skip
        assert ids(grouped) == expected[:6]
        counts = [sum(h.doc_id == d for h in grouped) for d in {h.doc_id for h in grouped}]
        assert max(counts) <= per_document


def test_grouping_fetches_past_the_first_list(index) -> None:
    """Fifteen documents, one chunk each asked: the index must look past the first
    `top_k + margin` chunks, which hold several chunks of the same documents."""
    hits = index.search(QUERIES[0], top_k=15, explain=False, group_by_document=1, candidates=200)
    assert len({h.doc_id for h in hits}) == len(hits) == 15


def test_grouping_reads_at_most_two_candidate_lists(index) -> None:
    limits: list[int] = []
    query = index.store.query

    def counted(q):
        limits.append(q.limit)
        return query(q)

    index.store.query = counted
    try:
        hits = index.search(QUERIES[0], top_k=6, explain=False, group_by_document=1, candidates=6)
    finally:
        del index.store.query
    assert 0 < len(hits) <= 6 and len({h.doc_id for h in hits}) == len(hits)
    # two fused lists of 6 (and a tie margin past them), not a scan of the index
    assert len(limits) <= 3 and max(limits) <= 2 * (2 * 6) < index.count()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"candidates": 1, "top_k": 5}, r"candidates \(1\) must be at least offset \+ top_k \(5\)"),
        ({"candidates": 5, "top_k": 3, "offset": 3}, r"offset \+ top_k \(6\)"),
        (
            {"candidates": 10, "top_k": 5, "rerank": True, "rerank_candidates": 20},
            r"candidates \(10\) must be at least rerank_candidates \(20, asked\)",
        ),
        (
            {"candidates": 10, "top_k": 5, "rerank": True},
            r"rerank_candidates \(50, the index's setting\)",
        ),
    ],
)
def test_candidates_below_what_the_search_takes_are_refused(index, options, message) -> None:
    """No silent raise of an explicit value: the error names both numbers."""
    with pytest.raises(ValueError, match=message):
        index.search(QUERIES[0], explain=False, **options)

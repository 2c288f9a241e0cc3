"""Reranking over HTTP: the option, its limits, the shared micro-batch and the metric."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rag_splade.api.app import create_app
from rag_splade.api.batching import PairScorer
from tests.api_support import api_documents, service_settings, wait_ready

QUERY = "日本で梅雨がないのは北海道とどこか。"


@pytest.fixture(scope="module")
def client(lexical_splade_path, lexical_dense_path, lexical_reranker_path, tmp_path_factory):
    settings = service_settings(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path_factory.mktemp("api-rerank") / "index",
        rerank_model=str(lexical_reranker_path),
        rerank_candidates=12,
        max_rerank_candidates=20,
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert c.post("/v1/documents", json={"documents": api_documents(24)}).status_code == 200
        yield c


def test_search_reranks_the_fused_candidates(client, reranker) -> None:
    fused = client.post("/v1/search", json={"query": QUERY, "top_k": 12, "explain": False})
    body = client.post("/v1/search", json={"query": QUERY, "top_k": 4, "rerank": True}).json()
    candidates = fused.json()["hits"]
    expected = reranker.rerank(QUERY, [h["text"] for h in candidates], top_k=4)
    assert [h["id"] for h in body["hits"]] == [candidates[i]["id"] for i, _ in expected]
    assert [h["rerank_rank"] for h in body["hits"]] == [1, 2, 3, 4]
    assert [h["rerank_score"] for h in body["hits"]] == pytest.approx([s for _, s in expected])
    assert all(h["explanation"] is not None for h in body["hits"])
    assert body["context"].count("[") >= 4  # the context cites the reranked hits
    plain = client.post("/v1/search", json={"query": QUERY, "top_k": 4}).json()
    assert all(h["rerank_score"] is None and h["rerank_rank"] is None for h in plain["hits"])


def test_batch_search_reranks_like_single_searches(client) -> None:
    queries = [QUERY, "石油の主成分は何か。", "揚子江気団の勢力"]
    options = {"top_k": 3, "rerank": True, "rerank_candidates": 9}
    batch = client.post("/v1/search/batch", json={"queries": queries, **options}).json()
    for query, result in zip(queries, batch["results"], strict=True):
        alone = client.post("/v1/search", json={"query": query, **options}).json()
        assert [h["id"] for h in result["hits"]] == [h["id"] for h in alone["hits"]]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rerank": True, "rerank_candidates": 21}, "RAG_SPLADE_MAX_RERANK_CANDIDATES"),
        ({"rerank": True, "rerank_candidates": 3, "top_k": 5}, "at least top_k"),
        ({"rerank_candidates": 8}, "only with rerank"),
        ({"rerank": True, "rerank_candidates": 0}, "greater than or equal to 1"),
        ({"rerank": "sometimes"}, "rerank"),
    ],
)
def test_rerank_limits_are_422s(client, options, message) -> None:
    r = client.post("/v1/search", json={"query": QUERY, **options})
    assert r.status_code == 422, r.text
    assert message in r.text


def test_rerank_time_is_a_metric(client) -> None:
    client.post("/v1/search", json={"query": QUERY, "rerank": True})
    text = client.get("/metrics").text
    count = [line for line in text.splitlines() if line.startswith("rag_splade_rerank_duration")]
    assert any(line.startswith("rag_splade_rerank_duration_seconds_count") for line in count)
    assert float(next(line for line in count if "_count" in line).split()[-1]) >= 1


def test_without_a_reranker_rerank_is_a_clear_422(
    lexical_splade_path, lexical_dense_path, tmp_path
):
    settings = service_settings(lexical_splade_path, lexical_dense_path, tmp_path / "index")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        r = c.post("/v1/search", json={"query": QUERY, "rerank": True})
        assert r.status_code == 422 and "RAG_SPLADE_RERANK_MODEL" in r.text, r.text
        assert c.post("/v1/search", json={"query": QUERY}).status_code == 200


def test_pair_scorer_gathers_concurrent_requests(reranker) -> None:
    calls: list[int] = []

    class Counting:
        def score(self, pairs):
            calls.append(len(pairs))
            return reranker.score(pairs)

    lists = [
        [(QUERY, "北海道には梅雨がない。")],
        [("石油", "石油は炭化水素。"), ("石油", "海")],
        [],
    ]

    async def main() -> list[np.ndarray]:
        # a long wait, but the batch is full at 3 requests: it goes at once
        scorer = PairScorer(Counting(), max_batch_size=3, max_wait_ms=60_000)  # type: ignore[arg-type]
        await scorer.start()
        try:
            return list(await asyncio.gather(*(scorer.score([pairs]) for pairs in lists)))
        finally:
            await scorer.close()

    results = asyncio.run(main())
    assert calls == [3]  # one reranker pass for the three requests
    for pairs, [scores] in zip(lists, results, strict=True):
        assert scores == pytest.approx(reranker.score(pairs), abs=1e-6)


def test_paging_floor_and_grouping_over_http(client) -> None:
    def ids(body) -> list[str]:
        return [h["id"] for h in body["hits"]]

    base = {"query": QUERY, "explain": False, "context": False}
    whole = client.post("/v1/search", json={**base, "top_k": 8}).json()
    pages = [
        client.post("/v1/search", json={**base, "top_k": 4, "offset": o}).json() for o in (0, 4)
    ]
    assert ids(whole) == ids(pages[0]) + ids(pages[1])
    floor = whole["hits"][0]["score"]
    top = client.post("/v1/search", json={**base, "top_k": 8, "min_score": floor}).json()
    assert top["hits"] and all(h["score"] >= floor for h in top["hits"])
    grouped = client.post("/v1/search", json={**base, "top_k": 8, "group_by_document": 1}).json()
    docs = [h["doc_id"] for h in grouped["hits"]]
    assert len(docs) == len(set(docs))
    batch = client.post(
        "/v1/search/batch", json={"queries": [QUERY], "top_k": 4, "offset": 4, "explain": False}
    ).json()
    assert ids(batch["results"][0]) == ids(pages[1])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"offset": 901}, "RAG_SPLADE_MAX_OFFSET"),
        ({"offset": -1}, "greater than or equal to 0"),
        ({"min_score": "high"}, "min_score"),
        ({"group_by_document": 0}, "greater than or equal to 1"),
    ],
)
def test_paging_floor_and_grouping_limits(client, options, message) -> None:
    r = client.post("/v1/search", json={"query": QUERY, **options})
    assert r.status_code == 422, r.text
    assert message in r.text

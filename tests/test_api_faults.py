"""The service under bad input, auth, limits, store outages and concurrent load."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient
from qdrant_client.http.exceptions import ResponseHandlingException

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.api.app import create_app
from rag_splade.errors import StoreUnavailableError
from tests.api_support import api_documents, service_settings, wait_ready

LIMITS = {
    "max_request_bytes": 64 * 1024,
    "max_query_chars": 200,
    "max_top_k": 50,
    "max_queries_per_request": 8,
    "max_documents_per_request": 8,
    "max_document_chars": 5000,
}


def prebuilt_index(splade, dense, path) -> HybridIndex:
    index = HybridIndex(splade, dense, EdgeStore(path))
    index.add(Document(**d) for d in api_documents(8))
    return index


@pytest.fixture(scope="module")
def client(splade, dense, lexical_splade_path, lexical_dense_path, tmp_path_factory):
    root = tmp_path_factory.mktemp("faults")
    settings = service_settings(lexical_splade_path, lexical_dense_path, root / "unused", **LIMITS)
    app = create_app(settings, index=prebuilt_index(splade, dense, root / "index"))
    with TestClient(app) as c:
        yield c


def doc(i: int, text: str = "石油は燃える。") -> dict:
    return {"id": f"d{i}", "text": text}


JSON = {"content-type": "application/json"}
BAD_REQUESTS = [
    # (name, path, request kwargs, status, words the message must contain)
    ("empty query", "/v1/search", {"json": {"query": ""}}, 422, "query"),
    ("whitespace query", "/v1/search", {"json": {"query": " \u3000\n"}}, 422, "whitespace"),
    ("oversized query", "/v1/search", {"json": {"query": "あ" * 201}}, 422, "limit is 200"),
    ("top_k 0", "/v1/search", {"json": {"query": "石油", "top_k": 0}}, 422, "top_k"),
    ("top_k 10000", "/v1/search", {"json": {"query": "石油", "top_k": 10000}}, 422, "1 to 50"),
    ("unknown mode", "/v1/search", {"json": {"query": "石油", "mode": "bm25"}}, 422, "'sparse'"),
    ("unknown fusion", "/v1/search", {"json": {"query": "石油", "fusion": "max"}}, 422, "'dbsf'"),
    (
        "filter operator",
        "/v1/search",
        {"json": {"query": "石油", "filters": {"n": {"between": [1, 2]}}}},
        422,
        "range operators",
    ),
    (
        "filters not an object",
        "/v1/search",
        {"json": {"query": "石", "filters": "n=1"}},
        422,
        "dict",
    ),
    ("query not a string", "/v1/search", {"json": {"query": 123}}, 422, "valid string"),
    (
        "top_k not a number",
        "/v1/search",
        {"json": {"query": "石", "top_k": "five"}},
        422,
        "integer",
    ),
    ("missing query", "/v1/search", {"json": {"top_k": 3}}, 422, "Field required"),
    ("unknown field", "/v1/search", {"json": {"query": "石", "topk": 3}}, 422, "topk"),
    ("one weight", "/v1/search", {"json": {"query": "石", "weights": [1.0]}}, 422, "weights"),
    (
        "weights with dbsf",
        "/v1/search",
        {"json": {"query": "石", "weights": [1, 2], "fusion": "dbsf"}},
        422,
        "rrf",
    ),
    (
        "negative weight",
        "/v1/search",
        {"json": {"query": "石", "weights": [-1, 1]}},
        422,
        "non-neg",
    ),
    ("body an array", "/v1/search", {"json": ["石油"]}, 422, "dictionary"),
    ("not JSON", "/v1/search", {"content": b'{"query": ', "headers": JSON}, 400, "not valid JSON"),
    (
        "text/plain",
        "/v1/search",
        {"content": b"x", "headers": {"content-type": "text/plain"}},
        415,
        "Content-Type: application/json",
    ),
    ("a form", "/v1/search", {"data": {"query": "x"}}, 415, "application/x-www-form-urlencoded"),
    (
        "no content type",
        "/v1/search",
        {"content": b'{"query": "x"}', "headers": {}},
        415,
        "no content type",
    ),
    ("not UTF-8", "/v1/search", {"content": b'{"query": "\xff"}', "headers": JSON}, 400, "UTF-8"),
    ("no queries", "/v1/search/batch", {"json": {"queries": []}}, 422, "queries"),
    ("too many queries", "/v1/search/batch", {"json": {"queries": ["石"] * 9}}, 413, "limit is 8"),
    (
        "blank batch query",
        "/v1/search/batch",
        {"json": {"queries": ["石", " "]}},
        422,
        "queries[1]",
    ),
    (
        "lone surrogate in a batch query",
        "/v1/search/batch",
        {"content": '{"queries": ["石", "\\ud800"]}'.encode(), "headers": JSON},
        422,
        "queries[1] must be valid Unicode",
    ),
    ("no documents", "/v1/documents", {"json": {"documents": []}}, 422, "documents"),
    (
        "too many documents",
        "/v1/documents",
        {"json": {"documents": [doc(i) for i in range(9)]}},
        413,
        "limit is 8",
    ),
    (
        "huge document batch",
        "/v1/documents",
        {"json": {"documents": [doc(i, "石" * 4000) for i in range(8)]}},
        413,
        "RAG_SPLADE_MAX_REQUEST_BYTES",
    ),
    (
        "document too long",
        "/v1/documents",
        {"json": {"documents": [doc(0, "石" * 5001)]}},
        413,
        "RAG_SPLADE_MAX_DOCUMENT_CHARS",
    ),
    ("empty text", "/v1/documents", {"json": {"documents": [doc(0, "  ")]}}, 422, "no text"),
    ("empty id", "/v1/documents", {"json": {"documents": [{"id": "", "text": "石"}]}}, 422, "id"),
    (
        "duplicate ids",
        "/v1/documents",
        {"json": {"documents": [doc(0), doc(0)]}},
        422,
        "appears twice",
    ),
    (
        "metadata not an object",
        "/v1/documents",
        {"json": {"documents": [{"id": "x", "text": "石", "metadata": [1]}]}},
        422,
        "metadata",
    ),
]


@pytest.mark.parametrize(
    ("path", "kwargs", "status", "words"),
    [case[1:] for case in BAD_REQUESTS],
    ids=[case[0] for case in BAD_REQUESTS],
)
def test_bad_input_gets_a_clear_4xx(client, path, kwargs, status, words) -> None:
    before = client.post("/v1/search", json={"query": "石油", "top_k": 50}).json()["hits"]
    r = client.post(path, **kwargs)
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] and words in body["message"], body
    assert "Traceback" not in r.text
    after = client.post("/v1/search", json={"query": "石油", "top_k": 50}).json()["hits"]
    assert {h["id"] for h in after} == {h["id"] for h in before}  # nothing was written


@pytest.mark.parametrize("doc_id", ["%20", "%1C", "%E3%80%80"])  # space, \x1c, ideographic
def test_blank_document_ids_are_rejected(client, doc_id) -> None:
    for method in ("GET", "DELETE"):
        r = client.request(method, f"/v1/documents/{doc_id}")
        assert r.status_code == 422 and "doc_id" in r.json()["message"]


def test_unknown_routes_and_methods_answer_json(client) -> None:
    assert client.get("/v1/nothing").json()["error"] == "not_found"
    wrong = client.get("/v1/search")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"
    assert client.get("/v1/documents/missing").status_code == 404


def test_api_key(splade, dense, lexical_splade_path, lexical_dense_path, tmp_path) -> None:
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path / "unused", api_key="s3cret-key"
    )
    app = create_app(settings, index=prebuilt_index(splade, dense, tmp_path / "index"))
    query = {"query": "石油"}
    with TestClient(app) as c:
        for headers in ({}, {"x-api-key": "wrong"}, {"authorization": "Bearer s3cret-ke"}):
            r = c.post("/v1/search", json=query, headers=headers)
            assert r.status_code == 401 and "X-API-Key" in r.json()["message"]
            assert r.headers["www-authenticate"] == "Bearer"
        assert c.post("/v1/search", json=query, headers={"x-api-key": "s3cret-key"}).is_success
        bearer = {"authorization": "Bearer s3cret-key"}
        assert c.post("/v1/search", json=query, headers=bearer).is_success
        assert c.get("/v1/documents/doc-00", headers=bearer).is_success
        assert c.get("/v1/documents/doc-00").status_code == 401
        assert c.get("/healthz").is_success and c.get("/readyz").is_success


def test_cors_when_configured(splade, dense, lexical_splade_path, lexical_dense_path, tmp_path):
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path / "u", cors_origins="https://a.example"
    )
    app = create_app(settings, index=prebuilt_index(splade, dense, tmp_path / "index"))
    with TestClient(app) as c:
        preflight = {"access-control-request-method": "POST"}
        ok = c.options("/v1/search", headers={"origin": "https://a.example", **preflight})
        assert ok.headers["access-control-allow-origin"] == "https://a.example"
        other = c.options("/v1/search", headers={"origin": "https://b.example", **preflight})
        assert "access-control-allow-origin" not in other.headers


def test_unreachable_qdrant_answers_503_quickly(lexical_splade_path, lexical_dense_path, tmp_path):
    settings = service_settings(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path / "unused",
        qdrant_url="http://127.0.0.1:1",  # nothing listens on port 1
        qdrant_timeout=2,
        store_retry_interval_seconds=0.2,
        retry_after_seconds=7,
    )
    with TestClient(create_app(settings)) as c:
        deadline = time.monotonic() + 600
        while c.get("/readyz").json()["status"] == "loading" and time.monotonic() < deadline:
            time.sleep(0.05)
        ready = c.get("/readyz")
        assert ready.status_code == 503 and ready.json()["status"] == "store_unavailable"
        assert ready.headers["retry-after"] == "7"
        r = c.post("/v1/search", json={"query": "石油"})
        # answered from the runtime's state, without a call to the store (no timing asserted)
        assert r.status_code == 503 and r.headers["retry-after"] == "7"
        assert "not ready" in r.json()["message"] and "Qdrant" in r.json()["message"]
        add = c.post("/v1/documents", json={"documents": [doc(0)]})
        assert add.status_code == 503 and add.headers["retry-after"] == "7"
        assert c.get("/healthz").is_success


def test_store_found_later_makes_the_service_ready(
    splade, dense, lexical_splade_path, lexical_dense_path, tmp_path, monkeypatch
) -> None:
    real = HybridIndex.from_settings
    calls = {"n": 0}

    def flaky(settings, **kwargs):
        calls["n"] += 1
        if calls["n"] < 3:
            # what the server store raises when qdrant-client cannot connect
            raise StoreUnavailableError("down") from ResponseHandlingException(
                httpx.ConnectError("connection refused")
            )
        return real(settings, **kwargs)

    monkeypatch.setattr(HybridIndex, "from_settings", flaky)
    settings = service_settings(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path / "index",
        store_retry_interval_seconds=0.1,
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert calls["n"] == 3
        assert c.post("/v1/search", json={"query": "石油"}).is_success


def test_outage_during_requests_then_recovery(
    splade, dense, lexical_splade_path, lexical_dense_path, tmp_path, monkeypatch
) -> None:
    index = prebuilt_index(splade, dense, tmp_path / "index")
    settings = service_settings(lexical_splade_path, lexical_dense_path, tmp_path / "u")
    cause = ResponseHandlingException(httpx.ConnectError("connection refused"))

    def refuse(*args, **kwargs):
        raise StoreUnavailableError("the Qdrant server cannot be reached") from cause

    with TestClient(create_app(settings, index=index)) as c:
        with monkeypatch.context() as m:
            m.setattr(index.store, "query", refuse)
            m.setattr(index.store, "upsert", refuse)
            r = c.post("/v1/search", json={"query": "石油"})
            assert r.status_code == 503 and r.headers["retry-after"] == "5"
            add = c.post("/v1/documents", json={"documents": [doc(1, "ペンギンは鳥です。")]})
            assert add.status_code == 503 and "not acknowledged" in add.json()["message"]
        assert c.post("/v1/search", json={"query": "石油"}).is_success
        assert c.get("/v1/documents/d1").status_code == 404  # the failed add was not kept
        resent = c.post("/v1/documents", json={"documents": [doc(1, "ペンギンは鳥です。")]})
        assert resent.json() == {"documents": 1, "chunks": 1}
        metrics = c.get("/metrics").text
        assert "rag_splade_store_unavailable_total 2.0" in metrics


@pytest.mark.parametrize("microbatch", [True, False])
def test_concurrent_searches_are_micro_batched(
    splade, dense, lexical_splade_path, lexical_dense_path, tmp_path, microbatch
) -> None:
    settings = service_settings(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path / "u",
        microbatch=microbatch,
        batch_max_size=32,
        batch_max_wait_ms=20,
    )
    app = create_app(settings, index=prebuilt_index(splade, dense, tmp_path / "index"))
    queries = [f"石油の主成分は何か。{i}" for i in range(64)]

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://api") as c:
                return await asyncio.gather(
                    *(c.post("/v1/search", json={"query": q, "top_k": 3}) for q in queries)
                )

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    assert [r.json()["query"] for r in responses] == queries
    registry = app.state.metrics.registry
    batches = registry.get_sample_value("rag_splade_query_batch_size_count")
    queries_seen = registry.get_sample_value("rag_splade_query_batch_size_sum")
    assert queries_seen == 64
    if microbatch:
        assert batches <= 8, f"64 concurrent searches took {batches} batches"
    else:
        assert batches == 64


def test_an_encoder_failure_fails_its_batch_only(
    splade, dense, lexical_splade_path, lexical_dense_path, tmp_path, monkeypatch
) -> None:
    settings = service_settings(lexical_splade_path, lexical_dense_path, tmp_path / "u")
    app = create_app(settings, index=prebuilt_index(splade, dense, tmp_path / "index"))
    with TestClient(app) as c:
        with monkeypatch.context() as m:
            m.setattr(splade, "encode_queries", lambda texts: 1 / 0)
            broken = c.post("/v1/search", json={"query": "石油"})
            assert broken.status_code == 500 and broken.json()["error"] == "internal_error"
            assert "ZeroDivisionError" not in broken.text  # no internals in the answer
        assert c.post("/v1/search", json={"query": "石油"}).is_success  # the worker lives on

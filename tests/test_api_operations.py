"""`GET /v1/documents` (the document table, paged and filtered) and `GET /v1/stats`."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rag_splade.api.app import create_app
from tests.api_support import api_documents, service_settings, wait_ready


@pytest.fixture(scope="module")
def client(lexical_splade_path, lexical_dense_path, tmp_path_factory):
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path_factory.mktemp("ops") / "index"
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        assert c.post("/v1/documents", json={"documents": api_documents(12)}).status_code == 200
        yield c


def test_documents_are_listed_page_by_page(client) -> None:
    seen, after = [], None
    while True:
        params = {"limit": 5, **({"after": after} if after else {})}
        page = client.get("/v1/documents", params=params).json()
        assert page["total"] == 12
        seen += page["documents"]
        after = page["next_after"]
        if after is None:
            break
        assert len(page["documents"]) == 5
    expected = {d["id"]: d for d in api_documents(12)}
    assert [d["doc_id"] for d in seen] == sorted(expected)
    for d in seen:
        assert d["complete"] is True and d["chunks"] >= 1
        assert d["metadata"]["title"] == expected[d["doc_id"]]["metadata"]["title"]


def test_documents_take_the_search_filters(client) -> None:
    r = client.get("/v1/documents", params={"filters": '{"part": "even"}'})
    assert r.status_code == 200, r.text
    docs = r.json()["documents"]
    assert len(docs) == 6 and all(d["metadata"]["part"] == "even" for d in docs)
    ranged = client.get("/v1/documents", params={"filters": '{"n": {"gte": 10}}'}).json()
    assert [d["doc_id"] for d in ranged["documents"]] == ["doc-10", "doc-11"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"filters": "{not json"}, "filters must be a JSON object"),
        ({"filters": "[1, 2]"}, "filters must be a JSON object, got list"),
        ({"filters": '{"n": {"between": 3}}'}, "n"),
        ({"limit": 0}, "greater than or equal to 1"),
        ({"limit": 1001}, "less than or equal to 1000"),
    ],
)
def test_bad_listing_parameters_are_422s(client, params, message) -> None:
    r = client.get("/v1/documents", params=params)
    assert r.status_code == 422, r.text
    assert message in r.text


def test_stats(client, lexical_splade_path, lexical_dense_path) -> None:
    stats = client.get("/v1/stats").json()
    assert stats["documents"] == 12 and stats["incomplete_documents"] == 0
    assert stats["chunks"] >= 12
    assert stats["sparse_model"] == str(lexical_splade_path)
    assert stats["dense_model"] == str(lexical_dense_path)
    assert stats["sparse_dtype"] == "float32"  # the suite pins it (conftest.py)
    assert stats["rerank_model"] is None
    assert (stats["store"], stats["fusion"], stats["rrf_k"]) == ("EdgeStore", "rrf", 61)


def test_docs_work_without_internet(client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert "cdn.jsdelivr.net" not in page.text and "unpkg.com" not in page.text
    assets = [a for a in page.text.split('"') if a.endswith((".js", ".css"))]
    assert assets, page.text[:500]
    for asset in assets:  # every asset the page loads is served by the app itself
        assert asset.startswith("/"), asset
        assert client.get(asset).status_code == 200, asset

"""The service under hostile requests: bounded metrics, authentication before the body,
one escaped log format, and a JSON 500 for anything that escapes (a Qdrant panic too)."""

from __future__ import annotations

import json
import logging

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError

from rag_splade.api.app import create_app
from rag_splade.api.auth import Authenticator, key_is_valid
from rag_splade.api.config import ServiceSettings
from rag_splade.api.errors import TEI_PATHS
from rag_splade.sample import sample_texts
from tests.api_support import service_settings, wait_ready

KEY = {"x-api-key": "s3cret"}


@pytest.fixture(scope="module")
def client(lexical_splade_path, lexical_dense_path, tmp_path_factory):
    settings = service_settings(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path_factory.mktemp("hostile") / "index",
        api_key="s3cret",
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        wait_ready(c)
        yield c


def series(client) -> int:
    text = client.get("/metrics").text
    return sum(1 for line in text.splitlines() if line.startswith("rag_splade_http"))


def test_random_methods_and_paths_add_no_series(client) -> None:
    for i in range(3):  # warm every label combination this test can reach
        client.request(f"BREW{i}", "/v1/search")
        client.request("PROPFIND", f"/nowhere/{i}")
        client.get(f"/nowhere/{i}")
    series(client)  # the first scrape adds the /metrics route's own series
    before = series(client)
    for i in range(40):
        client.request(f"M{i}X", f"/v1/search/{i}")
        client.request("PROPFIND", f"/random/{i}")
        client.get(f"/junk-{i}")
    assert series(client) == before
    text = client.get("/metrics").text
    assert 'method="other"' in text and 'route="unmatched"' in text


@pytest.mark.parametrize(
    "body", [b"\xff" * 64, b"{not json", b"x" * (1 << 20), b'{"query": "\\ud800"}']
)
def test_no_key_is_401_before_the_body_is_read(client, body) -> None:
    r = client.post("/v1/search", content=body, headers={"content-type": "text/plain"})
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    wrong = client.post("/v1/search", content=body, headers={"x-api-key": "nope"})
    assert wrong.status_code == 401
    assert client.get("/v1/stats", headers={"authorization": "Bearer s3cret"}).status_code == 200


def test_a_panic_in_the_store_is_a_json_500(client, monkeypatch) -> None:
    import qdrant_edge

    from rag_splade.store.edge import EdgeStore

    panic = type(
        "PanicException", (BaseException,), {}
    )  # pyo3's PanicException derives from BaseException, as this stand-in does

    def broken(*args, **kwargs):
        raise panic("Payload storage is corrupted")

    monkeypatch.setattr(EdgeStore, "count", broken)
    r = client.get("/v1/stats", headers=KEY)
    assert r.status_code == 500
    assert r.json()["error"] == "internal_error" and "corrupted" not in r.text
    assert qdrant_edge  # the real class is not needed for the stand-in


def test_log_lines_cannot_be_forged(client, caplog) -> None:
    logger = logging.getLogger("rag_splade.api")
    logger.addHandler(caplog.handler)
    try:
        client.get("/v1/documents/x%0A%7B%22level%22%3A%22error%22%7D", headers=KEY)
    finally:
        logger.removeHandler(caplog.handler)
    lines = [r.getMessage() for r in caplog.records if "/v1/documents/" in r.getMessage()]
    assert lines and all("\n" not in line for line in lines)
    assert any("\\n" in line for line in lines)
    assert json.dumps({"ok": True})  # the JSON formatter escapes on its own


@pytest.mark.parametrize("suffix", ["%0A", "%0D", "%09", "%00", "%0A%0A", "%7F"])
def test_document_ids_are_taken_exactly_as_sent(client, suffix) -> None:
    doc = {"id": "h-ok", "text": "本文です。"}
    assert client.post("/v1/documents", json={"documents": [doc]}, headers=KEY).is_success
    for method in ("GET", "DELETE"):
        r = client.request(method, f"/v1/documents/h-ok{suffix}", headers=KEY)
        # 422 naming the character; a path the route cannot match at all (two newlines) is
        # a 404: either way the id is never cut short to h-ok
        assert (r.status_code == 422 and "control characters" in r.text) or (
            r.status_code == 404 and r.json()["message"] == "Not Found"
        ), (method, r.text)
    assert client.get("/v1/documents/h-ok", headers=KEY).status_code == 200  # not deleted
    bad = {"id": "h-ok\n", "text": "本文"}
    r = client.post("/v1/documents", json={"documents": [bad]}, headers=KEY)
    assert r.status_code == 422 and "control characters" in r.text


@pytest.fixture(scope="module")
def random_client(random_splade_path, random_dense_path, tmp_path_factory):
    """The random SPLADE model shares hundreds of ids with any query: the worst case."""
    settings = service_settings(
        random_splade_path,
        random_dense_path,
        tmp_path_factory.mktemp("costly") / "index",
        max_terms_per_hit=10,
        max_hits_per_request=40,
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(sample_texts()[:8])]
        assert c.post("/v1/documents", json={"documents": docs}).is_success
        yield c


def test_explanations_are_bounded_and_still_sum(random_client) -> None:
    body = random_client.post("/v1/search", json={"query": "梅雨前線の北上", "top_k": 3}).json()
    for hit in body["hits"]:
        explanation = hit["explanation"]
        assert len(explanation["terms"]) == 10 and explanation["omitted_terms"] > 0
        total = sum(t["contribution"] for t in explanation["terms"])
        assert total + explanation["omitted_contribution"] == pytest.approx(
            hit["sparse_score"], rel=1e-3
        )
        kept = [t["contribution"] for t in explanation["terms"]]
        assert kept == sorted(kept, reverse=True)


def test_hits_per_request_are_bounded(random_client) -> None:
    r = random_client.post("/v1/search/batch", json={"queries": ["梅雨"] * 5, "top_k": 9})
    assert r.status_code == 413 and "RAG_SPLADE_MAX_HITS_PER_REQUEST" in r.text
    paged = random_client.post("/v1/search", json={"query": "梅雨", "top_k": 5, "offset": 36})
    assert paged.status_code == 413
    assert random_client.post(
        "/v1/search/batch", json={"queries": ["梅雨"] * 4, "top_k": 10}
    ).is_success


@pytest.mark.parametrize("weights", ["[NaN, 1]", "[1, Infinity]", "[-Infinity, 1]", "[1e999, 1]"])
def test_non_finite_weights_are_refused(client, weights) -> None:
    body = '{"query": "梅雨", "weights": ' + weights + "}"
    r = client.post(
        "/v1/search", content=body.encode(), headers={**KEY, "content-type": "application/json"}
    )
    assert r.status_code in (400, 422), r.text
    assert "weights" in r.text or "not valid JSON" in r.text, r.text


def test_a_401_is_counted_under_its_route(client) -> None:
    def refused(route: str) -> float:
        for line in client.get("/metrics").text.splitlines():
            labels = ("rag_splade_http_requests_total{", f'route="{route}"', 'status="401"')
            if all(x in line for x in labels) and 'method="POST"' in line:
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    before = refused("/v1/search"), refused("/v1/documents")
    assert client.post("/v1/search", json={"query": "x"}).status_code == 401
    assert client.post("/v1/documents", json={"documents": []}).status_code == 401
    assert (refused("/v1/search"), refused("/v1/documents")) == (before[0] + 1, before[1] + 1)


def test_the_openapi_document_declares_the_key(client) -> None:
    """Its security schemes give /docs an Authorize button; every /v1 and TEI-compatible
    operation names them, the probes none."""
    spec = client.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["APIKeyHeader"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "RAG_SPLADE_API_KEY, or a key of RAG_SPLADE_KEYS_FILE.",
    }
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            named = {name for s in operation.get("security", []) for name in s}
            keyed = path.startswith("/v1") or path in TEI_PATHS
            expected = {"APIKeyHeader", "HTTPBearer"} if keyed else set()
            assert named == expected, (method, path)
    assert {"search", "documents", "admin", "operations"} <= {
        tag for ops in spec["paths"].values() for op in ops.values() for tag in op["tags"]
    }


def test_the_route_dependency_checks_the_key_on_its_own(lexical_splade_path) -> None:
    """Without the middleware in front (a router mounted elsewhere), the routes still refuse."""
    from fastapi import FastAPI

    from rag_splade.api.routers import ROUTERS

    app = FastAPI()
    app.state.settings = service_settings(
        lexical_splade_path, lexical_splade_path, lexical_splade_path / "none", api_key="s3cret"
    )
    for router in ROUTERS:
        app.include_router(router)
    with TestClient(app, raise_server_exceptions=False) as bare:
        assert bare.get("/v1/stats").status_code == 401
        assert bare.get("/v1/stats", headers={"x-api-key": "wrong"}).status_code == 401
        assert bare.get("/healthz").status_code == 200


def test_docs_can_sit_behind_the_key(lexical_splade_path, lexical_dense_path, tmp_path) -> None:
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path / "i", api_key="k", public_docs=False
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        for path in ("/docs", "/redoc", "/openapi.json"):
            assert c.get(path).status_code == 401
            assert c.get(path, headers={"x-api-key": "k"}).status_code == 200
        assert c.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "key", ["鍵", "é", "ключ", "two words", " k3y", "k3y\t", "k\x00", "\u200bk"]
)
def test_a_key_no_header_carries_alike_is_refused_at_start(key: str) -> None:
    """HTTP header values are Latin-1 bytes and clients encode anything past ASCII their own
    way: such a key would lock clients out, so the service refuses to start with it, and
    the message does not repeat the secret."""
    with pytest.raises(ValidationError, match="RAG_SPLADE_API_KEY must be visible ASCII") as e:
        ServiceSettings(api_key=key)
    assert "input_value" not in str(e.value) and key not in str(e.value)
    forced = ServiceSettings.model_construct(api_key=SecretStr(key), keys_file=None)
    with pytest.raises(ValueError, match="visible ASCII"):
        Authenticator(forced)  # settings made without validation are caught here too


def test_no_lossy_encoding_of_a_sent_key_matches(lexical_splade_path, lexical_dense_path, tmp_path):
    """A key of `?` characters (what a lossy encoding of a non-ASCII key gives) passes
    neither the check before the body nor the route's; the right key does."""
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path / "i", api_key="???"
    )
    assert key_is_valid("???", "???") and not key_is_valid("鍵", "???")
    assert not key_is_valid("é", "???") and not key_is_valid("\u9375", "?")
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        wait_ready(c)
        assert c.get("/v1/stats", headers={"x-api-key": "???"}).status_code == 200
        for wrong in ("鍵鍵鍵", "ééé", "\u00bf\u00bf\u00bf"):
            sent = {"x-api-key": wrong.encode()}  # raw bytes, as a client that sends UTF-8
            assert c.get("/v1/stats", headers=sent).status_code == 401
            sent = {"authorization": b"Bearer " + wrong.encode()}
            assert c.get("/v1/stats", headers=sent).status_code == 401


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"candidates": 1, "top_k": 5}, "candidates (1) must be at least offset + top_k (5)"),
        ({"candidates": 4, "top_k": 2, "offset": 3}, "offset + top_k (5)"),
    ],
)
def test_candidates_below_top_k_are_a_422_naming_both(client, options, message) -> None:
    """The library refuses them (no silent raise): the service says the same."""
    r = client.post("/v1/search", json={"query": "富士山", **options}, headers=KEY)
    assert r.status_code == 422 and message in r.json()["message"], r.text


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("top_k", True),
        ("rrf_k", True),
        ("group_by_document", True),
        ("offset", False),
        ("candidates", 50.0),
        ("explain", 1),
        ("rerank", 0),
        ("context", "yes"),
    ],
)
def test_a_bool_is_no_count_and_a_number_no_switch(client, field, value) -> None:
    """JSON `true` is not the count 1, nor `1` the switch true: the library refuses both, and
    so does the service (it once read `top_k: true` as 1 hit)."""
    r = client.post("/v1/search", json={"query": "富士山", field: value}, headers=KEY)
    assert r.status_code == 422, r.text
    assert field in r.text


def test_filters_the_engine_cannot_hold_are_a_422(client) -> None:
    """A range bound past a float's range, and true/false equality on the Edge store (which
    would match 1/0): named, never a 500 or a wrong answer."""
    huge = {"n": {"gte": 10**400}}
    for body in ({"query": "富士山", "filters": huge}, {"query": "富士山", "min_score": 10**400}):
        r = client.post("/v1/search", json=body, headers=KEY)
        assert r.status_code == 422, r.text
    r = client.get("/v1/documents", params={"filters": json.dumps(huge)}, headers=KEY)
    assert r.status_code == 422 and "finite" in r.text, r.text
    r = client.post("/v1/search", json={"query": "富士山", "filters": {"f": True}}, headers=KEY)
    assert r.status_code == 422 and "true/false" in r.json()["message"], r.text

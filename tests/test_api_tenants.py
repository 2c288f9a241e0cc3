"""Tenants and scoped keys over HTTP: every route, every role, no path across tenants.

Two tenants hold the same document ids with different texts. Each denied attempt must
get its 401/403/422 and write nothing; each allowed read must show its own tenant only."""

from __future__ import annotations

import json
import logging
import time

import pytest
from fastapi.testclient import TestClient

from rag_splade.api.app import create_app
from rag_splade.keys import KeyEntry, hash_key, new_key, read_entries, write_entries
from rag_splade.pipelines.cli import main
from rag_splade.sample import sample_texts
from tests.api_support import service_settings, wait_ready

TEXTS = sample_texts()
QUERY = {"query": "日本で梅雨がないのは北海道とどこか。", "top_k": 10, "context": True}
ROLES = {
    "acme-read": (("acme",), "read"),
    "acme-write": (("acme",), "write"),
    "globex-write": (("globex",), "write"),
    "both-read": (("acme", "globex"), "read"),
    "admin": (("*",), "admin"),
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys.json"
    made = {name: new_key() for name in ROLES}
    write_entries(
        path,
        [KeyEntry(n, hash_key(made[n]), tenants, role) for n, (tenants, role) in ROLES.items()],
    )
    return path, made


@pytest.fixture(scope="module")
def client(keys, lexical_splade_path, lexical_dense_path, tmp_path_factory):
    path, made = keys
    settings = service_settings(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path_factory.mktemp("tenants") / "index",
        keys_file=path,
        snapshot_dir=tmp_path_factory.mktemp("snaps"),
    )
    with TestClient(create_app(settings), raise_server_exceptions=False) as c:
        wait_ready(c)
        for name, texts in (("acme-write", TEXTS[:10]), ("globex-write", TEXTS[10:20])):
            team = name.split("-")[0]
            docs = [
                {"id": f"d{i}", "text": t, "metadata": {"team": team}} for i, t in enumerate(texts)
            ]
            r = c.post("/v1/documents", json={"documents": docs}, headers=key(made[name]))
            assert r.status_code == 200, r.text
        c.keys = made  # type: ignore[attr-defined]
        yield c


def key(value: str, **extra: str) -> dict[str, str]:
    return {"x-api-key": value, **extra}


def counts(client, name: str, **params) -> int:
    r = client.get("/v1/stats", headers=key(client.keys[name]), params=params)
    assert r.status_code == 200, r.text
    return r.json()["chunks"]


def test_no_key_or_an_unknown_key_is_401_everywhere(client) -> None:
    routes = [
        ("POST", "/v1/search", QUERY),
        ("POST", "/v1/search/batch", {"queries": ["梅雨"]}),
        ("POST", "/v1/documents", {"documents": [{"id": "x", "text": "侵入"}]}),
        ("GET", "/v1/documents", None),
        ("GET", "/v1/documents/d0", None),
        ("DELETE", "/v1/documents/d0", None),
        ("GET", "/v1/stats", None),
        ("POST", "/v1/admin/snapshots", None),
        ("GET", "/v1/admin/snapshots", None),
        ("POST", "/v1/admin/snapshots/latest/restore", None),
    ]
    for headers in ({}, key("rsk_not-a-key"), {"authorization": "Bearer nope"}):
        for method, path, body in routes:
            r = client.request(method, path, json=body, headers=headers)
            assert r.status_code == 401, (method, path, r.status_code)
    assert counts(client, "admin", tenant="*") == 20  # nothing was written or deleted


def test_search_shows_the_keys_tenant_only(client) -> None:
    for name, own in (("acme-read", TEXTS[:10]), ("globex-write", TEXTS[10:20])):
        for options in ({}, {"rerank": False, "group_by_document": 1}, {"offset": 2}):
            r = client.post("/v1/search", json={**QUERY, **options}, headers=key(client.keys[name]))
            assert r.status_code == 200, r.text
            body = r.json()
            assert body["hits"] and {h["text"] for h in body["hits"]} <= set(own)
            others = set(TEXTS[:20]) - set(own)
            assert not any(t in body["context"] for t in others)
        r = client.post(
            "/v1/search/batch", json={"queries": ["梅雨", "石油"]}, headers=key(client.keys[name])
        )
        assert all({h["text"] for h in res["hits"]} <= set(own) for res in r.json()["results"])


def test_a_filter_cannot_reach_another_tenant(client) -> None:
    for filters in ({"team": "globex"}, {"doc_id": ["d0", "d1"]}, {}):
        r = client.post(
            "/v1/search", json={**QUERY, "filters": filters}, headers=key(client.keys["acme-read"])
        )
        assert r.status_code == 200 and all(
            h["metadata"]["team"] == "acme" for h in r.json()["hits"]
        )
    for filters in ({"tenant": "globex"}, {"tenant": ["acme", "globex"]}):
        r = client.post(
            "/v1/search", json={**QUERY, "filters": filters}, headers=key(client.keys["acme-read"])
        )
        assert r.status_code == 422 and "reserved" in r.json()["message"]
    r = client.get(
        "/v1/documents",
        params={"filters": '{"tenant": "globex"}'},
        headers=key(client.keys["admin"]),
    )
    assert r.status_code == 422


def test_naming_a_tenant_the_key_may_not_use_is_403(client) -> None:
    reader = client.keys["acme-read"]
    for headers, params in (
        (key(reader, **{"x-tenant": "globex"}), {}),
        (key(reader), {"tenant": "globex"}),
        (key(reader), {"tenant": "*"}),
        (key(client.keys["globex-write"], **{"x-tenant": "acme"}), {}),
    ):
        r = client.post("/v1/search", json=QUERY, headers=headers, params=params)
        assert r.status_code in (403, 422), r.text
        assert r.status_code == 403 or params.get("tenant") == "*"
    r = client.get("/v1/documents/d0", headers=key(reader, **{"x-tenant": "globex"}))
    assert r.status_code == 403
    r = client.get("/v1/stats", headers=key(reader), params={"tenant": "*"})
    assert r.status_code == 403  # every tenant's counts: admin keys only


def test_roles(client) -> None:
    reader, writer = client.keys["acme-read"], client.keys["acme-write"]
    before = counts(client, "admin", tenant="*")
    add = {"documents": [{"id": "new", "text": "読み取り専用の鍵では書けない。"}]}
    assert client.post("/v1/documents", json=add, headers=key(reader)).status_code == 403
    assert client.delete("/v1/documents/d0", headers=key(reader)).status_code == 403
    for method, path in (
        ("POST", "/v1/admin/snapshots"),
        ("GET", "/v1/admin/snapshots"),
        ("POST", "/v1/admin/snapshots/latest/restore"),
    ):
        for name in ("acme-read", "acme-write"):
            r = client.request(method, path, headers=key(client.keys[name]))
            assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert counts(client, "admin", tenant="*") == before  # nothing written
    assert client.get("/v1/documents", headers=key(reader)).status_code == 200
    assert client.get("/v1/documents/d1", headers=key(reader)).status_code == 200
    assert client.post("/v1/admin/snapshots", headers=key(client.keys["admin"])).status_code == 200
    r = client.post("/v1/documents", json=add, headers=key(writer))
    assert r.status_code == 200
    assert client.delete("/v1/documents/new", headers=key(writer)).status_code == 200


def test_documents_by_id_stay_in_the_tenant(client) -> None:
    acme, globex = client.keys["acme-read"], client.keys["globex-write"]
    a = client.get("/v1/documents/d3", headers=key(acme)).json()["chunks"][0]["text"]
    g = client.get("/v1/documents/d3", headers=key(globex)).json()["chunks"][0]["text"]
    assert a == TEXTS[3] and g == TEXTS[13]
    listed = client.get("/v1/documents", headers=key(acme)).json()
    assert listed["total"] == 10 and {d["metadata"]["team"] for d in listed["documents"]} == {
        "acme"
    }
    # a write key of one tenant deletes its own d9, never the other's
    add = {"documents": [{"id": "only-globex", "text": TEXTS[30]}]}
    assert client.post("/v1/documents", json=add, headers=key(globex)).status_code == 200
    writer = client.keys["acme-write"]
    assert client.delete("/v1/documents/only-globex", headers=key(writer)).status_code == 404
    assert client.get("/v1/documents/only-globex", headers=key(globex)).status_code == 200
    assert client.delete("/v1/documents/only-globex", headers=key(globex)).status_code == 200


def test_a_key_of_several_tenants_names_one(client) -> None:
    both = client.keys["both-read"]
    r = client.post("/v1/search", json=QUERY, headers=key(both))
    assert r.status_code == 422 and "name one" in r.json()["message"]
    for tenant, own in (("acme", TEXTS[:10]), ("globex", TEXTS[10:20])):
        r = client.post("/v1/search", json=QUERY, headers=key(both, **{"x-tenant": tenant}))
        assert {h["text"] for h in r.json()["hits"]} <= set(own)
    r = client.post(
        "/v1/search",
        json=QUERY,
        headers=key(both, **{"x-tenant": "acme"}),
        params={"tenant": "globex"},
    )
    assert r.status_code == 422


def test_admin_counts_every_tenant_and_stats_show_payload_indexes(client) -> None:
    assert counts(client, "acme-read") + counts(client, "globex-write") == counts(
        client, "admin", tenant="*"
    )
    stats = client.get("/v1/stats", headers=key(client.keys["admin"]), params={"tenant": "*"})
    assert stats.json()["payload_indexes"]["tenant"] == "tenant"
    assert stats.json()["tenant"] == "*" and stats.json()["incomplete_documents"] is None


def test_metrics_and_logs_name_known_tenants_never_keys(client, caplog) -> None:
    admin = client.keys["admin"]
    with caplog.at_level(logging.INFO, logger="rag_splade.api"):
        client.post("/v1/search", json=QUERY, headers=key(admin, **{"x-tenant": "zzz-unknown"}))
        client.post("/v1/search", json=QUERY, headers=key(client.keys["acme-read"]))
    text = client.get("/metrics").text
    assert 'rag_splade_tenant_requests_total{route="/v1/search",status="200",tenant="acme"}' in text
    assert 'tenant="other"' in text and "zzz-unknown" not in text
    logged = " ".join(r.getMessage() + json.dumps(r.__dict__, default=str) for r in caplog.records)
    assert '"tenant": "acme"' in logged and '"tenant": "other"' in logged
    assert not any(value in logged for value in client.keys.values())


def test_keys_rotate_without_a_restart(client, keys, capsys) -> None:
    path, _ = keys
    assert (
        main(["keys", "add", "--file", str(path), "--tenant", "acme", "--role", "read", "--json"])
        == 0
    )
    made = json.loads(capsys.readouterr().out)
    stored = path.read_text()
    assert made["key"] not in stored and hash_key(made["key"]) in stored
    time.sleep(1.1)  # the file is checked at most once a second
    assert client.post("/v1/search", json=QUERY, headers=key(made["key"])).status_code == 200
    assert main(["keys", "revoke", made["id"], "--file", str(path)]) == 0
    time.sleep(1.1)
    assert client.post("/v1/search", json=QUERY, headers=key(made["key"])).status_code == 401
    # a broken edit is refused whole: the keys read before stay in force
    good = path.read_text()
    path.write_text("{not json", encoding="utf-8")
    time.sleep(1.1)
    assert (
        client.post("/v1/search", json=QUERY, headers=key(client.keys["acme-read"])).status_code
        == 200
    )
    path.write_text(good, encoding="utf-8")
    assert main(["keys", "list", "--file", str(path)]) == 0
    listed = capsys.readouterr().out
    assert "acme-read" in listed and not any(v in listed for v in client.keys.values())
    assert {e.id for e in read_entries(path)} == set(ROLES)


def test_a_bad_key_file_stops_the_start(tmp_path, lexical_splade_path, lexical_dense_path) -> None:
    from rag_splade.keys import KeyFileError

    path = tmp_path / "keys.json"
    for body, message in (
        ('{"keys": [{"id": "a", "hash": "md5:x", "tenants": ["t"], "role": "read"}]}', "hash"),
        (
            '{"keys": [{"id": "a", "hash": "sha256:'
            + "0" * 64
            + '", "tenants": ["t"], "role": "root"}]}',
            "role",
        ),
        (
            '{"keys": [{"id": "a", "hash": "sha256:'
            + "0" * 64
            + '", "tenants": ["a/b"], "role": "read"}]}',
            "tenant",
        ),
        ("[]", "keys"),
    ):
        path.write_text(body, encoding="utf-8")
        settings = service_settings(
            lexical_splade_path, lexical_dense_path, tmp_path / "i", keys_file=path
        )
        with pytest.raises(KeyFileError, match=message):
            create_app(settings)


def test_the_context_style_is_chosen_per_request(client) -> None:
    reader = key(client.keys["acme-read"])
    r = client.post("/v1/search", json={**QUERY, "context_style": "xml"}, headers=reader)
    context = r.json()["context"]
    assert context.startswith('<passages>\n<passage n="1" ') and context.endswith("</passages>")
    numbered = client.post("/v1/search", json=QUERY, headers=reader).json()["context"]
    assert numbered.startswith("[1] 出典: ") and "\n> " in numbered
    bad = client.post("/v1/search", json={**QUERY, "context_style": "html"}, headers=reader)
    assert bad.status_code == 422


@pytest.mark.parametrize("levels", [17, 600, 2000])
def test_deep_filters_over_http_are_422(client, levels) -> None:
    reader = key(client.keys["acme-read"])
    text = '{"a": ' + '{"x": ' * levels + "1" + "}" * levels + "}"
    r = client.post(
        "/v1/search",
        content=f'{{"query": "梅雨", "filters": {text}}}'.encode(),
        headers={**reader, "content-type": "application/json"},
    )
    # 16 levels for filters (the library's limit); the body's own bound above that
    assert r.status_code == 422 and "nests deeper than" in r.json()["message"], r.text
    r = client.get("/v1/documents", params={"filters": text}, headers=reader)
    assert r.status_code == 422 and "deeper than 16 levels" in r.json()["message"]
    r = client.post(
        "/v1/search/batch",
        content=f'{{"queries": ["梅雨"], "filters": {text}}}'.encode(),
        headers={**reader, "content-type": "application/json"},
    )
    assert r.status_code == 422 and "nests deeper than" in r.json()["message"], r.text


@pytest.mark.parametrize(
    "options", [{"rrf_k": 2**64}, {"candidates": 2**70}, {"weights": [10**400, 1]}]
)
def test_numbers_past_the_engine_are_422_over_http(client, options) -> None:
    r = client.post("/v1/search", json={**QUERY, **options}, headers=key(client.keys["admin"]))
    assert r.status_code == 422, r.text

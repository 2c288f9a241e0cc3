"""Nothing accepted may break the index: metadata and filters are checked whole before any
write or query, and every refusal names the document and the field (classes of input)."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.api.app import create_app
from rag_splade.metadata import MAX_DEPTH, MAX_METADATA_BYTES
from rag_splade.sample import sample_texts
from rag_splade.search import SearchRequest
from tests.api_support import service_settings, wait_ready


def nested(depth: int) -> dict:
    value: dict = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"n": value}
    return value


BAD_METADATA = [
    ({"deep": nested(126)}, "nests deeper than"),  # past Qdrant's decoder limit
    ({"deep": nested(MAX_DEPTH + 1)}, "nests deeper than"),
    ({"x": float("nan")}, "finite number"),
    ({"x": float("inf")}, "finite number"),
    ({"x": [1.0, float("-inf")]}, r"metadata\.x\[1\] must be a finite number"),
    ({"x": 2**63}, "signed 64-bit"),
    ({"x": -(2**63) - 1}, "signed 64-bit"),
    ({"x": "\ud800"}, "lone surrogate"),
    ({"x": {1, 2}}, "must be None, a bool, number, str, list or dict"),
    ({"x": b"bytes"}, "must be None, a bool, number, str, list or dict"),
    ({"x": object()}, "must be None, a bool, number, str, list or dict"),
    ({1: "x"}, "keys must be strings"),
    ({"a b": 1}, "is not allowed"),
    ({"$where": 1}, "is not allowed"),
    ({"a.b": 1}, "is not allowed"),
    ({"a[": 1}, "is not allowed"),
    ({"": 1}, "is not allowed"),
    ({"a\x00": 1}, "is not allowed"),
    ({"k" * 129: 1}, "is not allowed"),
    ({"outer": {"in ner": 1}}, "is not allowed"),
    ({"doc_id": "x"}, "reserved"),
    ({"chunk_index": 3}, "reserved"),
    ({"big": "字" * MAX_METADATA_BYTES}, "bytes as JSON"),
]


@pytest.mark.parametrize(("metadata", "message"), BAD_METADATA)
def test_bad_metadata_is_refused_naming_the_document(metadata, message) -> None:
    with pytest.raises((TypeError, ValueError), match=message) as caught:
        Document(id="doc-7", text="本文", metadata=metadata)
    assert "doc-7" in str(caught.value)


@pytest.mark.parametrize(
    "metadata",
    [
        {"出典": "辞書", "a-b_c": 1, "nested": nested(MAX_DEPTH - 1)},
        {"n": None, "b": True, "i": 2**63 - 1, "f": -1.5e300, "l": [1, "a", None, {"k": []}]},
    ],
)
def test_allowed_metadata_round_trips_and_stays_filterable(tmp_path, splade, dense, metadata):
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "i")) as idx:
        idx.add([Document(id="ok", text=sample_texts()[0], metadata=metadata)])
        [chunk] = idx.get("ok")[:1]
        assert chunk.metadata == metadata
        key = next(iter(metadata))
        assert idx.search("梅雨", filters={key: {"gte": -1e9}} if key == "i" else None)
        assert idx.count() >= 1 and idx.documents()["ok"].complete


def test_a_refused_document_leaves_nothing_written(tmp_path, splade, dense) -> None:
    docs = [Document(id=f"good-{i}", text=t) for i, t in enumerate(sample_texts()[:40])]
    bad = Document(id="bad", text="本文", metadata={"x": 1})
    bad.metadata["x"] = float("nan")  # changed after it was checked
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "i")) as idx:
        with pytest.raises(ValueError, match=r"document 'bad': metadata\.x must be a finite"):
            idx.add([*docs, bad], batch_size=8)
        assert idx.count() == 0


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"$where": "x"}, "is not allowed"),
        ({"a b": 1}, "is not allowed"),
        ({"a[": 1}, "is not allowed"),
        ({"a..b": 1}, "empty part"),
        ({"a.": 1}, "empty part"),
        ({"a\x00": 1}, "is not allowed"),
        ({"\ud800": 1}, "is not allowed"),
        ({"n": 2**63}, "signed 64-bit"),
        ({"n": [1, -(2**63) - 1]}, "signed 64-bit"),
        ({"s": "\udfff"}, "lone surrogate"),
        ({"s": ["ok", "\ud800"]}, "lone surrogate"),
        ({"r": {"gte": float("nan")}}, "must be finite"),
        ({"r": {"lt": float("inf")}}, "must be finite"),
    ],
)
def test_filters_qdrant_would_refuse_are_value_errors(filters, message) -> None:
    with pytest.raises(ValueError, match=message):
        SearchRequest(query="梅雨", filters=filters)


def test_nested_filter_paths_work(tmp_path, splade, dense) -> None:
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "i")) as idx:
        idx.add(
            [
                Document(id="a", text=sample_texts()[0], metadata={"src": {"kind": "faq"}}),
                Document(id="b", text=sample_texts()[1], metadata={"src": {"kind": "wiki"}}),
            ]
        )
        hits = idx.search("梅雨", top_k=5, filters={"src.kind": "wiki"})
        assert {h.doc_id for h in hits} == {"b"}


@pytest.fixture(scope="module")
def client(lexical_splade_path, lexical_dense_path, tmp_path_factory):
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path_factory.mktemp("hard") / "index"
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c


def _body(metadata_json: str) -> bytes:
    good = ",".join(
        json.dumps({"id": f"g{i}", "text": t}, ensure_ascii=False)
        for i, t in enumerate(sample_texts()[:70])
    )
    bad = '{"id": "bad-doc", "text": "本文", "metadata": ' + metadata_json + "}"
    return ('{"documents": [' + good + "," + bad + "]}").encode()


@pytest.mark.parametrize(
    ("metadata_json", "message"),
    [
        ("{" + '"n": ' * 1 + json.dumps(nested(130)) + "}", "nests deeper"),
        ('{"x": NaN}', ""),
        ('{"x": 1e999}', ""),
        ('{"x": 9223372036854775808}', "64-bit"),
        ('{"a b": 1}', "is not allowed"),
        ('{"doc_id": "x"}', "reserved"),
        ('{"x": "\\ud800"}', "lone surrogate"),
    ],
)
def test_http_add_is_all_or_nothing(client, metadata_json, message) -> None:
    r = client.post(
        "/v1/documents",
        content=_body(metadata_json),
        headers={"content-type": "application/json"},
    )
    assert r.status_code in (400, 413, 422), r.text
    assert "request_id" in r.json() and message in r.text
    assert client.get("/v1/stats").json()["chunks"] == 0  # nothing was written
    assert client.post("/v1/search", json={"query": "梅雨"}).status_code == 200


@pytest.mark.parametrize(
    "filters",
    [{"$where": 1}, {"a b": 1}, {"a..b": 1}, {"n": 2**64}, {"r": {"gte": 1e999}}],
)
def test_http_bad_filters_are_422s(client, filters) -> None:
    body = json.dumps({"query": "梅雨", "filters": filters})
    r = client.post("/v1/search", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    listing = client.get("/v1/documents", params={"filters": json.dumps(filters)})
    assert listing.status_code == 422, listing.text

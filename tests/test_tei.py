"""The TEI-compatible endpoints, in-process, validated against TEI 1.9.3's OpenAPI document:
every request these tests send is a valid TEI request, and every answer (errors too) is
checked against the schema TEI declares for that path and status."""

from __future__ import annotations

import asyncio
import json
import math
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient
from openapi_schema_validator import OAS30Validator

from rag_splade.api.app import create_app
from rag_splade.api.batching import QueryEncoder
from rag_splade.encoders.dense import DenseEncoder
from rag_splade.search import SearchRequest
from tests.api_support import service_settings, wait_ready

SPEC = Path(__file__).parent / "reference" / "tei-openapi-1.9.3.json"
KEY = "tei-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
QUERY_PREFIX, DOCUMENT_PREFIX = "検索クエリ: ", "検索文書: "
TEXTS = ["富士山は日本で一番高い山です。", "小笠原諸島は東京都に属する。", "梅雨の季節"]


@cache
def spec() -> dict[str, Any]:
    return json.loads(SPEC.read_text(encoding="utf-8"))


def _resolve(node: Any) -> Any:
    """The schema with every `$ref` into components inlined (TEI's schemas have no cycles)."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if ref is not None:
            return _resolve(spec()["components"]["schemas"][ref.rsplit("/", 1)[-1]])
        return {k: _resolve(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve(v) for v in node]
    return node


def check_request(path: str, body: Any) -> None:
    operation = next(iter(spec()["paths"][path].values()))
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    OAS30Validator(_resolve(schema)).validate(body)


def check_response(path: str, response: Any) -> Any:
    """Validate an answer against the schema TEI declares for its status; its JSON."""
    operation = next(iter(spec()["paths"][path].values()))
    declared = operation["responses"]
    assert str(response.status_code) in declared, (path, response.status_code, response.text)
    body = response.json()
    schema = declared[str(response.status_code)]["content"]["application/json"]["schema"]
    OAS30Validator(_resolve(schema)).validate(body)
    return body


def post(client: TestClient, path: str, body: dict[str, Any], status: int = 200) -> Any:
    """POST `body`, check the status and the answer's schema; a body meant to succeed must
    be a valid TEI request (some refused ones are outside TEI's schema, like `[]`)."""
    if status == 200:
        check_request(path, body)
    r = client.post(path, json=body, headers=AUTH)
    assert r.status_code == status, r.text
    return check_response(path, r)


@pytest.fixture(scope="module")
def client(lexical_splade_path, lexical_dense_path, lexical_reranker_path, tmp_path_factory):
    settings = service_settings(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path_factory.mktemp("tei") / "index",
        rerank_model=str(lexical_reranker_path),
        api_key=KEY,
        encoders_only=True,
        query_prefix=QUERY_PREFIX,
        document_prefix=DOCUMENT_PREFIX,
        tei_max_client_batch_size=8,
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="module")
def prefixed_dense(lexical_dense_path):
    return DenseEncoder(
        str(lexical_dense_path),
        device="cpu",
        query_prefix=QUERY_PREFIX,
        document_prefix=DOCUMENT_PREFIX,
    )


def as_vectors(body: list[list[dict[str, Any]]]) -> list[dict[int, float]]:
    return [{p["index"]: p["value"] for p in row} for row in body]


# -- /embed_sparse ---------------------------------------------------------------------------


def test_embed_sparse_texts_are_the_local_document_vectors(client, splade) -> None:
    body = post(client, "/embed_sparse", {"inputs": TEXTS})
    expected = [v.as_dict() for v in splade.encode_documents(TEXTS)]
    assert as_vectors(body) == expected  # exact: the same forward pass
    assert all([p["index"] for p in row] == sorted(p["index"] for p in row) for row in body)


def test_a_single_text_is_a_batch_of_one(client, splade) -> None:
    body = post(client, "/embed_sparse", {"inputs": TEXTS[0], "prompt_name": "query"})
    assert as_vectors(body) == [splade.encode_queries(TEXTS[:1])[0].as_dict()]


def test_embed_sparse_token_ids_give_the_same_vectors_as_the_text(client, splade) -> None:
    ids = [row.tolist() for row in splade.tokenize(TEXTS, "query")]
    from_ids = post(client, "/embed_sparse", {"inputs": ids, "prompt_name": "query"})
    one_row = post(client, "/embed_sparse", {"inputs": ids[1], "prompt_name": "query"})
    mixed = post(client, "/embed_sparse", {"inputs": [TEXTS[0], ids[1]], "prompt_name": "query"})
    expected = [v.as_dict() for v in splade.encode_queries(TEXTS)]
    assert as_vectors(from_ids) == expected
    assert as_vectors(one_row) == expected[1:2]
    assert as_vectors(mixed) == expected[:2]


def test_query_and_document_sides_differ_in_length(client, splade) -> None:
    long_text = "富士山は日本で一番高い山です。" * 20  # > 64 tokens (the query length)
    assert splade.count_tokens(long_text) > splade.query_max_length
    query = post(
        client, "/embed_sparse", {"inputs": [long_text], "prompt_name": "query", "truncate": True}
    )
    document = post(client, "/embed_sparse", {"inputs": [long_text], "prompt_name": "document"})
    assert as_vectors(query) == [splade.encode_queries([long_text])[0].as_dict()]
    assert as_vectors(document) == [splade.encode_documents([long_text])[0].as_dict()]


def test_truncation_is_refused_unless_asked_and_keeps_the_end_when_left(client, splade) -> None:
    head, tail = "富士山は日本で一番高い山です。" * 12, "小笠原諸島"
    text = head + tail
    body = {"inputs": [text], "prompt_name": "query"}
    error = post(client, "/embed_sparse", body, status=413)
    assert error["error_type"] == "Validation"
    assert "inputs[0]" in error["error"] and "at most 64" in error["error"]
    right = post(client, "/embed_sparse", body | {"truncate": True})
    left = post(client, "/embed_sparse", body | {"truncate": True, "truncation_direction": "Left"})
    kept = splade.tokenize([text], "query", "left")[0]
    assert as_vectors(left) == [splade.encode_ids([kept], "query")[0].as_dict()]
    assert as_vectors(right) == [splade.encode_queries([text])[0].as_dict()]
    tail_ids = set(splade.tokenize([tail], "query")[0][1:-1].tolist())
    assert tail_ids <= set(kept.tolist())  # the end survives a left cut
    assert not tail_ids <= set(splade.tokenize([text], "query")[0].tolist())
    # the text's ids, sent whole, are cut as the text is: [CLS] and [SEP] stay
    ids = {"inputs": [splade.tokenize([text], "query", None)[0].tolist()], "prompt_name": "query"}
    assert post(client, "/embed_sparse", ids | {"truncate": True}) == right
    left_ids = ids | {"truncate": True, "truncation_direction": "Left"}
    assert post(client, "/embed_sparse", left_ids) == left


@pytest.mark.parametrize(
    ("body", "status", "error_type", "says"),
    [
        ({"inputs": []}, 400, "Empty", "cannot be empty"),
        ({"inputs": [[]]}, 400, "Empty", "inputs[0]"),
        ({"inputs": ["山"] * 9}, 413, "Validation", "maximum allowed batch size 8"),
        ({"inputs": [[2, 40_000, 3]]}, 422, "Tokenizer", "40000"),
        ({"inputs": "山", "prompt_name": "passage_v2"}, 413, "Validation", "prompt_name"),
    ],
)
def test_embed_sparse_errors_have_teis_body_and_status(client, body, status, error_type, says):
    error = post(client, "/embed_sparse", body, status=status)
    assert error["error_type"] == error_type
    assert says in error["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"inputs": "山", "bogus": 1},
        {"inputs": [1.5, 2]},
        {"inputs": [[2, -1, 3]]},
        {"inputs": [[2, 2**31]]},
        {"inputs": "山", "truncate": "yes"},
        {"inputs": "山", "truncation_direction": "Middle"},
        {"inputs": {"text": "山"}},
    ],
)
def test_bodies_outside_the_schema_are_422_with_teis_body(client, body) -> None:
    r = client.post("/embed_sparse", json=body, headers=AUTH)
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error_type"] == "Validation" and error["error"]
    OAS30Validator(_resolve({"$ref": "#/components/schemas/ErrorResponse"})).validate(error)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/embed_sparse", '{"inputs": ["富士\\ud800山"]}'),
        ("/embed_sparse", '{"inputs": "\\udfff"}'),
        ("/embed", '{"inputs": ["山", "\\ud83d"]}'),
        ("/tokenize", '{"inputs": "a\\ud800b"}'),
        ("/rerank", '{"query": "\\ud800", "texts": ["山"]}'),
        ("/rerank", '{"query": "山", "texts": ["山", "x\\udc00"]}'),
    ],
)
def test_a_lone_surrogate_is_a_422_naming_it(client, path, body) -> None:
    """JSON can spell half of a surrogate pair; no tokenizer takes one, so it is refused
    before the model, on every path (TEI's own parser refuses such a body too)."""
    r = client.post(
        path, content=body.encode(), headers=AUTH | {"content-type": "application/json"}
    )
    assert r.status_code == 422, r.text
    error = r.json()
    assert error["error_type"] == "Validation" and "lone surrogate" in error["error"]


def test_what_the_server_lacks_is_424_backend(lexical_splade_path, lexical_dense_path, tmp_path):
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, tmp_path / "index", encoders_only=True
    )
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        error = post(c, "/rerank", {"query": "山", "texts": ["山"]}, status=424)
    assert error["error_type"] == "Backend" and "RAG_SPLADE_RERANK_MODEL" in error["error"]


def test_malformed_json_and_a_missing_key_are_teis_errors_too(client) -> None:
    r = client.post(
        "/embed", content=b'{"inputs": [', headers=AUTH | {"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error_type"] == "Validation"
    r = client.post("/embed", json={"inputs": "山"})
    assert r.status_code == 401
    assert set(r.json()) >= {"error", "error_type"} and "API key" in r.json()["error"]
    r = client.post("/embed", json={"inputs": "山"}, headers={"X-API-Key": KEY})
    assert r.status_code == 200


# -- /embed ----------------------------------------------------------------------------------


def test_embed_applies_the_prefixes_and_normalize(client, prefixed_dense) -> None:
    query = np.array(post(client, "/embed", {"inputs": TEXTS, "prompt_name": "query"}))
    document = np.array(post(client, "/embed", {"inputs": TEXTS, "prompt_name": "document"}))
    bare = np.array(post(client, "/embed", {"inputs": TEXTS}))
    raw = np.array(post(client, "/embed", {"inputs": TEXTS, "normalize": False}))
    np.testing.assert_array_equal(query, prefixed_dense.encode_queries(TEXTS))
    np.testing.assert_array_equal(document, prefixed_dense.encode_documents(TEXTS))
    np.testing.assert_allclose(bare, prefixed_dense.embed(TEXTS), atol=1e-7)
    assert not np.allclose(query, bare)  # the prefix changed the vectors
    np.testing.assert_allclose(np.linalg.norm(bare, axis=1), 1.0, atol=1e-6)
    assert not np.allclose(np.linalg.norm(raw, axis=1), 1.0)
    np.testing.assert_allclose(raw / np.linalg.norm(raw, axis=1, keepdims=True), bare, atol=1e-6)


def test_embed_dimensions_keeps_the_first_values_renormalized(client, prefixed_dense) -> None:
    rows = np.array(post(client, "/embed", {"inputs": TEXTS, "dimensions": 16}))
    full = prefixed_dense.embed(TEXTS)[:, :16]
    assert rows.shape == (3, 16)
    np.testing.assert_allclose(rows, full / np.linalg.norm(full, axis=1, keepdims=True), atol=1e-6)
    error = post(client, "/embed", {"inputs": TEXTS, "dimensions": 10_000}, status=413)
    assert "dimensions 10000" in error["error"]


def test_embed_refuses_ids_long_texts_and_left_cuts_clearly(client) -> None:
    error = post(client, "/embed", {"inputs": [[2, 5, 3]]}, status=422)
    assert error["error_type"] == "Tokenizer" and "/embed_sparse" in error["error"]
    long = {"inputs": ["山" * 700]}
    assert "at most 512" in post(client, "/embed", long, status=413)["error"]
    assert len(post(client, "/embed", long | {"truncate": True})[0]) == 64
    left = long | {"truncate": True, "truncation_direction": "Left"}
    assert "Right" in post(client, "/embed", left, status=413)["error"]


# -- /rerank ---------------------------------------------------------------------------------


def test_rerank_ranks_best_first_with_text_and_raw_scores(client, reranker) -> None:
    texts = ["梅雨は六月", "富士山は高い山", "小笠原諸島"]
    ranks = post(client, "/rerank", {"query": "富士山", "texts": texts, "return_text": True})
    raw = post(client, "/rerank", {"query": "富士山", "texts": texts, "raw_scores": True})
    expected = reranker.score([("富士山", t) for t in texts])
    assert [r["index"] for r in ranks] == sorted(range(3), key=lambda i: -expected[i])
    assert ranks[0]["text"] == "富士山は高い山" and all(
        r["text"] == texts[r["index"]] for r in ranks
    )
    for r in ranks:
        assert r["score"] == pytest.approx(float(expected[r["index"]]), abs=1e-6)
    logits = {r["index"]: r["score"] for r in raw}
    assert all("text" not in r for r in raw)
    for r in ranks:  # the tiny reranker's activation is a sigmoid, as TEI's is
        assert r["score"] == pytest.approx(1 / (1 + math.exp(-logits[r["index"]])), abs=1e-6)


def test_rerank_errors(client) -> None:
    assert (
        post(client, "/rerank", {"query": "山", "texts": []}, status=400)["error_type"] == "Empty"
    )
    too_many = {"query": "山", "texts": ["山"] * 9}
    assert "batch size 9" in post(client, "/rerank", too_many, status=413)["error"]
    long = {"query": "山", "texts": ["山" * 700]}
    assert "at most 512" in post(client, "/rerank", long, status=413)["error"]
    assert post(client, "/rerank", long | {"truncate": True})[0]["index"] == 0


# -- /tokenize and /info ------------------------------------------------------------------


def test_tokenize_gives_the_model_ids_with_character_offsets(client, splade) -> None:
    text = (
        "𠮷野家で富士山 [SEP] ＡＢＣ株式会社"  # an astral character first: offsets in code points
    )
    [tokens] = post(client, "/tokenize", {"inputs": text})
    assert [t["id"] for t in tokens] == splade.tokenize([text], "document", None)[0].tolist()
    assert tokens[0]["special"] and tokens[-1]["special"] and tokens[0]["start"] is None
    inner = tokens[1:-1]
    for t in inner:
        assert t["start"] is not None and text[t["start"] : t["stop"]] == t["text"]
    assert [t["text"] for t in inner if t["special"]] == ["[SEP]"]
    assert "".join(t["text"] for t in inner).replace(" ", "") == text.replace(" ", "")
    [bare] = post(client, "/tokenize", {"inputs": [text], "add_special_tokens": False})
    assert bare == inner
    error = post(client, "/tokenize", {"inputs": "山", "prompt_name": "query"}, status=413)
    assert "prompt_name" in error["error"]


def test_info_describes_every_model(client, splade, dense, reranker) -> None:
    r = client.get("/info", headers=AUTH)
    assert r.status_code == 200
    info = check_response("/info", r)
    assert info["model_type"] == {"embedding": {"pooling": "splade"}}
    assert info["max_client_batch_size"] == 8 and info["max_input_length"] == 512
    served = info["rag_splade"]
    assert served["sparse"]["vocab_size"] == splade.vocab_size
    assert served["sparse"]["fingerprint"] == splade.fingerprint
    assert served["dense"]["fingerprint"] == dense.fingerprint
    assert served["dense"]["query_prefix"] == QUERY_PREFIX
    assert served["reranker"]["model_id"] == reranker.model_name


def test_too_many_calls_in_flight_are_429_overloaded(client) -> None:
    state = client.app.state
    limit = client.app.state.settings.tei_max_concurrent_requests
    state.tei_in_flight = limit  # as if that many calls were running
    try:
        error = post(client, "/embed", {"inputs": "山"}, status=429)
    finally:
        state.tei_in_flight = 0
    assert error["error_type"] == "Overloaded"
    post(client, "/embed", {"inputs": "山"})


def test_encoders_only_serves_no_index_routes(client) -> None:
    assert client.post("/v1/search", json={"query": "山"}, headers=AUTH).status_code == 404
    assert client.get("/readyz").json() == {"status": "ready", "store": None}


def test_search_and_embed_calls_share_one_forward_pass(splade, dense) -> None:
    passes: list[str] = []
    sizes: list[int] = []

    async def run() -> tuple[Any, Any]:
        encoder = QueryEncoder(
            splade,
            dense,
            max_batch_size=8,
            max_wait_ms=60_000,  # waits for the batch to fill: both calls land in it
            on_encode=lambda name, _: passes.append(name),
            on_batch=sizes.append,
        )
        await encoder.start()
        try:
            rows = splade.tokenize(TEXTS[1:], "query")
            searched, embedded = await asyncio.gather(
                encoder.encode([SearchRequest(query=TEXTS[0])] * 6),
                encoder.embed_sparse(rows, "query"),
            )
        finally:
            await encoder.close()
        return searched, embedded

    searched, embedded = asyncio.run(run())
    assert sizes == [8] and passes.count("sparse") == 1  # one SPLADE pass for all eight
    assert embedded == splade.encode_queries(TEXTS[1:])
    assert searched[0].sparse == splade.encode_queries(TEXTS[:1])[0]

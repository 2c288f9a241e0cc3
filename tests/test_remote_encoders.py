"""Remote encoders against a real encoder server (`rag-splade serve --encoders-only` in its
own process on loopback): the same vectors, search results and explanations as local
encoding; model checks at start; transport errors and retries; a server killed in the
middle of an ingest; and TEI client libraries written elsewhere (huggingface_hub,
LlamaIndex's TEI embedding and rerank integrations) against the endpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from rag_splade import HybridIndex, Settings
from rag_splade.encoders import tei_client
from rag_splade.encoders.remote import RemoteDenseEncoder, RemoteReranker, RemoteSpladeEncoder
from rag_splade.encoders.tei_client import RemoteEndpoint
from rag_splade.errors import RemoteEncoderError, RemoteModelMismatchError
from rag_splade.pipelines.ingest import ingest
from rag_splade.sample import sample_texts
from tests.api_support import api_documents
from tests.encoder_server import KEY, EncoderServer, free_port, start_encoder_server

QUERIES = ["富士山の高さは？", "小笠原諸島はどこにある？", "梅雨はいつ？", "東京の人口"]


@pytest.fixture(scope="module")
def server(lexical_splade_path, lexical_dense_path, lexical_reranker_path, tmp_path_factory):
    s = start_encoder_server(
        lexical_splade_path,
        lexical_dense_path,
        tmp_path_factory.mktemp("encoder-logs"),
        reranker=lexical_reranker_path,
    )
    yield s
    s.stop()


def remote_settings(server: EncoderServer, splade: Path, dense: Path, index: Path, **more: Any):
    return Settings(
        sparse_model=str(splade),
        dense_model=str(dense),
        device="cpu",
        index_path=index,
        sparse_url=server.url,
        dense_url=server.url,
        encoder_api_key=KEY,
        **more,
    )


def test_remote_vectors_are_the_local_vectors(server, lexical_splade_path, splade, dense):
    texts = sample_texts()[:40]
    sparse = RemoteSpladeEncoder(server.url, str(lexical_splade_path), api_key=KEY, batch_size=7)
    remote_dense = RemoteDenseEncoder(server.url, dense.model_name, api_key=KEY, batch_size=7)
    try:
        for mine, theirs in (
            (sparse.encode_documents(texts), splade.encode_documents(texts)),
            (sparse.encode_queries(QUERIES), splade.encode_queries(QUERIES)),
        ):
            for a, b in zip(mine, theirs, strict=True):
                np.testing.assert_array_equal(a.indices, b.indices)
                assert float(np.max(np.abs(a.values - b.values))) <= 1e-6
        for mine, theirs in (
            (remote_dense.encode_documents(texts), dense.encode_documents(texts)),
            (remote_dense.encode_queries(QUERIES), dense.encode_queries(QUERIES)),
        ):
            assert mine.shape == theirs.shape
            assert float(np.max(np.abs(mine - theirs))) <= 1e-6
        assert sparse.fingerprint == splade.fingerprint  # the index's manifest check sees it
        assert remote_dense.fingerprint == dense.fingerprint  # the dense model's, likewise
        assert sparse.vocab_size == splade.vocab_size and remote_dense.dimension == dense.dimension
    finally:
        sparse.close()
        remote_dense.close()


def test_remote_reranker_scores_are_the_local_scores(server, reranker):
    remote = RemoteReranker(server.url, reranker.model_name, api_key=KEY, batch_size=3)
    pairs = [(q, t) for q in QUERIES[:2] for t in sample_texts()[:8]]
    try:
        assert float(np.max(np.abs(remote.score(pairs) - reranker.score(pairs)))) <= 1e-6
    finally:
        remote.close()


def _hits(index: HybridIndex, **options: Any) -> list[list[dict[str, Any]]]:
    """Every hit of the queries: ids, ranks and explanation terms exactly, the scores
    as numbers (the vectors agree to 1e-6, so the scores to about as much)."""
    return [
        [
            {
                "id": h.id,
                "ranks": (h.sparse_rank, h.dense_rank, h.rerank_rank),
                "score": pytest.approx(h.score, rel=1e-5, abs=1e-6),
                "terms": [
                    (t.term, t.kind, tuple(t.spans), pytest.approx(t.contribution, rel=1e-5))
                    for t in (h.explanation.terms if h.explanation else [])
                ],
            }
            for h in index.search(query, top_k=5, explain=True, **options)
        ]
        for query in QUERIES
    ]


def test_an_index_on_remote_encoders_searches_and_explains_as_a_local_one(
    server, lexical_splade_path, lexical_dense_path, splade, dense, reranker, tmp_path
):
    docs = api_documents()
    local = HybridIndex.from_settings(
        Settings(
            sparse_model=str(lexical_splade_path),
            dense_model=str(lexical_dense_path),
            index_path=tmp_path / "local",
        ),
        encoders=(splade, dense),
        reranker=reranker,
    )
    remote = HybridIndex.from_settings(
        remote_settings(
            server,
            lexical_splade_path,
            lexical_dense_path,
            tmp_path / "remote",
            rerank_url=server.url,
            rerank_model=reranker.model_name,
        )
    )
    try:
        assert isinstance(remote.sparse, RemoteSpladeEncoder)
        assert isinstance(remote.reranker, RemoteReranker)
        from rag_splade.documents import Document

        documents = [Document(d["id"], d["text"], d["metadata"]) for d in docs]
        local.add(documents)
        remote.add(documents)
        for options in ({}, {"mode": "sparse"}, {"rerank": True}):
            assert _hits(remote, **options) == _hits(local, **options)
        assert _hits(local)[0][0]["terms"], "the comparison includes explanation terms"
    finally:
        local.close()
        remote.close()


def test_a_local_index_reopens_on_remote_encoders(
    server, lexical_splade_path, lexical_dense_path, splade, dense, tmp_path
):
    """The manifest's model fingerprint is checked against the server's."""
    settings = remote_settings(server, lexical_splade_path, lexical_dense_path, tmp_path / "i")
    from rag_splade.documents import Document

    with HybridIndex.from_settings(settings, encoders=(splade, dense)) as index:
        index.add([Document("a", sample_texts()[0])])
    with HybridIndex.from_settings(settings) as index:
        assert index.count() >= 1
        assert index.search(QUERIES[0], top_k=1)[0].doc_id == "a"


def test_a_fine_tuned_model_under_the_same_name_is_caught_by_the_index(
    lexical_splade_path, lexical_dense_path, splade, dense, tmp_path
):
    """Same folder name, same tokenizer, other weights: only the fingerprint tells them apart,
    and the index built with the first model refuses to open with the second."""
    from rag_splade.documents import Document
    from rag_splade.testing import build_splade_model

    other = build_splade_model(
        tmp_path / "tuned" / lexical_splade_path.name, tokenizer_dir=lexical_splade_path, seed=7
    )
    settings = Settings(
        sparse_model=str(lexical_splade_path),
        dense_model=str(lexical_dense_path),
        index_path=tmp_path / "index",
    )
    with HybridIndex.from_settings(settings, encoders=(splade, dense)) as index:
        index.add([Document("a", sample_texts()[0])])
    tuned = start_encoder_server(other, lexical_dense_path, tmp_path)
    try:
        sparse = RemoteSpladeEncoder(tuned.url, str(lexical_splade_path), api_key=KEY)
        assert sparse.fingerprint != splade.fingerprint  # it opened: same name and tokenizer
        with pytest.raises(Exception, match="another SPLADE model"):
            HybridIndex.from_settings(settings, encoders=(sparse, dense))
        sparse.close()
    finally:
        tuned.stop()


MISMATCHES = {
    "another SPLADE model": ("sparse", {"model": "random"}, "runs"),
    "other pruning": ("sparse", {"document_top_k": 5}, "prunes"),
    "a longer query": ("sparse", {"query_max_length": 128}, "a query"),
    "another dense model": ("dense", {"model": "x/other-dense"}, "runs"),
    "another query prefix": ("dense", {"query_prefix": "q: "}, "before a query"),
    "another pair length": ("rerank", {"max_length": 128}, "keeps 512"),
}


@pytest.mark.parametrize("case", MISMATCHES)
def test_another_model_on_the_server_is_refused_at_start(
    server, lexical_splade_path, random_splade_path, lexical_dense_path, lexical_reranker_path, case
):
    kind, options, says = MISMATCHES[case]
    options = dict(options)
    default = {"sparse": lexical_splade_path, "dense": lexical_dense_path}.get(
        kind, lexical_reranker_path
    )
    model = str(options.pop("model", default)).replace("random", str(random_splade_path))
    build = {"sparse": RemoteSpladeEncoder, "dense": RemoteDenseEncoder, "rerank": RemoteReranker}
    with pytest.raises(RemoteModelMismatchError) as caught:
        build[kind](server.url, model, api_key=KEY, **options)
    message = str(caught.value)
    assert says in message and server.url in message


def test_a_server_that_is_down_is_named(lexical_splade_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RemoteEncoderError) as caught:
        RemoteSpladeEncoder(url, str(lexical_splade_path), retries=1)
    message = str(caught.value)
    assert url in message and "RAG_SPLADE_SPARSE_URL" in message and "2 tries" in message


def test_a_wrong_key_is_the_servers_own_message(server, lexical_splade_path):
    with pytest.raises(RemoteEncoderError) as caught:
        RemoteSpladeEncoder(server.url, str(lexical_splade_path), api_key="wrong", retries=0)
    assert "401" in str(caught.value) and "API key" in str(caught.value)


def test_429_and_503_are_retried_with_backoff_and_other_errors_are_not(monkeypatch):
    monkeypatch.setattr(tei_client, "BACKOFF_SECONDS", 0.0)
    waits: list[float] = []
    monkeypatch.setattr(tei_client.time, "sleep", waits.append)
    answers: list[httpx.Response] = []
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.headers.get("authorization", ""))
        return answers.pop(0)

    def endpoint(retries: int) -> RemoteEndpoint:
        return RemoteEndpoint(
            "http://encoder.test",
            setting="RAG_SPLADE_SPARSE_URL",
            api_key="k",
            retries=retries,
            transport=httpx.MockTransport(handler),
        )

    answers[:] = [
        httpx.Response(503, json={"error": "loading", "error_type": "Unhealthy"}),
        httpx.Response(
            429, json={"error": "busy", "error_type": "Overloaded"}, headers={"retry-after": "2"}
        ),
        httpx.Response(200, json=[[{"index": 1, "value": 0.5}]]),
    ]
    assert endpoint(3).post("/embed_sparse", {"inputs": [[1]]}) == [[{"index": 1, "value": 0.5}]]
    assert calls == ["Bearer k"] * 3
    assert waits[1] == 2.0  # the server's Retry-After, when longer than the backoff
    answers[:] = [httpx.Response(503, json={"error": "still loading"})] * 3
    with pytest.raises(RemoteEncoderError, match="503: still loading"):
        endpoint(2).post("/embed", {"inputs": "x"})
    calls.clear()

    def slow(request: httpx.Request) -> httpx.Response:
        calls.append("slow")
        raise httpx.ReadTimeout("no answer", request=request)

    slow_endpoint = RemoteEndpoint(
        "http://encoder.test", setting="S", retries=3, transport=httpx.MockTransport(slow)
    )
    with pytest.raises(RemoteEncoderError, match="did not answer within 30 s"):
        slow_endpoint.post("/embed", {"inputs": "x"})
    assert calls == ["slow"]  # the server took it: not sent again
    calls.clear()
    answers[:] = [
        httpx.Response(413, json={"error": "batch size 40 > maximum allowed batch size 32"})
    ]
    with pytest.raises(RemoteEncoderError, match="413: batch size 40"):
        endpoint(3).post("/embed", {"inputs": "x"})
    assert len(calls) == 1  # a refusal is not retried


def test_a_call_dropped_after_it_was_sent_is_not_sent_again(monkeypatch):
    """Refused or a kept-alive connection the server had closed: tried again. Reset while
    the server had it (it may be the call that broke the server): one clear error."""
    monkeypatch.setattr(tei_client.time, "sleep", lambda _: None)
    calls: list[str] = []
    failures: list[Exception] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.url.path)
        if failures:
            raise failures.pop(0)
        return httpx.Response(200, json=[[0.5]])

    endpoint = RemoteEndpoint(
        "http://encoder.test", setting="S", retries=3, transport=httpx.MockTransport(handler)
    )
    failures[:] = [httpx.ConnectError("refused"), httpx.RemoteProtocolError("disconnected")]
    assert endpoint.post("/embed", {"inputs": "x"}) == [[0.5]] and len(calls) == 3
    calls.clear()
    failures[:] = [httpx.ReadError("connection reset by peer")]
    with pytest.raises(RemoteEncoderError, match=r"dropped the call: ReadError.*not sent again"):
        endpoint.post("/embed", {"inputs": "x"})
    assert calls == ["/embed"]


@pytest.mark.parametrize("url", ["ftp://encoder:21", "encoder:8000", "http://", "http://[::1"])
def test_a_url_that_is_not_http_is_refused_at_once(url):
    with pytest.raises(ValueError, match="RAG_SPLADE_DENSE_URL"):
        RemoteEndpoint(url, setting="RAG_SPLADE_DENSE_URL")


MALFORMED = {
    "/embed_sparse": [
        {"rows": 2},
        [[{"index": 1}]],
        [[{"index": "x", "value": 1.0}]],
        [[{"index": 1, "value": 1.0}, {"index": 1, "value": 2.0}]],
        [[{"index": 1, "value": float("nan")}]],
    ],
    "/embed": [[[0.1, 0.2], [0.3]], [["a", "b"]], [[0.1, float("inf")]], [[0.1, 0.2]], "rows"],
    "/rerank": [
        [{"score": 0.5}],
        [{"index": 5, "score": 0.5}],
        [{"index": -1, "score": 0.5}],
        [{"index": 0, "score": 0.5}, {"index": 0, "score": 0.4}],
        [{"index": 0, "score": float("nan")}],
        ["best"],
    ],
}


@pytest.mark.parametrize(
    ("path", "answer"), [(p, a) for p, answers in MALFORMED.items() for a in answers]
)
def test_an_answer_of_the_wrong_shape_is_an_error_naming_the_server(
    server, lexical_splade_path, dense, reranker, path, answer, monkeypatch
):
    """A server that answers 200 with a body this client cannot read (an older or other
    server, a proxy's page): a RemoteEncoderError naming it, never a raw KeyError or a
    score written to the wrong text."""
    sparse = RemoteSpladeEncoder(server.url, str(lexical_splade_path), api_key=KEY)
    remote_dense = RemoteDenseEncoder(server.url, dense.model_name, api_key=KEY)
    remote_reranker = RemoteReranker(server.url, reranker.model_name, api_key=KEY)
    real_post = RemoteEndpoint.post

    def post(self: RemoteEndpoint, where: str, body: dict[str, Any]) -> Any:
        if where != path:
            return real_post(self, where, body)
        texts = body.get("inputs") or body.get("texts")
        return answer if isinstance(answer, (str, dict)) else answer * (len(texts) // len(answer))

    monkeypatch.setattr(RemoteEndpoint, "post", post)
    call = {
        "/embed_sparse": lambda: sparse.encode_queries(["山"]),
        "/embed": lambda: remote_dense.encode_queries(["山", "川"][: len(answer)]),
        "/rerank": lambda: remote_reranker.score([("山", "川")] * len(answer)),
    }[path]
    try:
        with pytest.raises(RemoteEncoderError) as caught:
            call()
        assert server.url + path in str(caught.value) and "cannot read" in str(caught.value)
    finally:
        for encoder in (sparse, remote_dense, remote_reranker):
            encoder.close()


def test_a_servers_vocabulary_padded_past_the_tokenizer_is_its_own(
    server, lexical_splade_path, splade, monkeypatch
):
    """The server reports its model's output size (config.vocab_size), which may pad the
    tokenizer's vocabulary: taken as the remote vocabulary; a smaller one is refused."""
    real_get = RemoteEndpoint.get
    bump = 0

    def get(self: RemoteEndpoint, path: str) -> Any:
        info = real_get(self, path)
        if path == "/info":
            info["rag_splade"]["sparse"]["vocab_size"] += bump
        return info

    monkeypatch.setattr(RemoteEndpoint, "get", get)
    bump = 64
    sparse = RemoteSpladeEncoder(server.url, str(lexical_splade_path), api_key=KEY)
    try:
        assert sparse.vocab_size == splade.vocab_size + 64
    finally:
        sparse.close()
    bump = -1
    with pytest.raises(RemoteModelMismatchError, match="has a vocabulary of"):
        RemoteSpladeEncoder(server.url, str(lexical_splade_path), api_key=KEY)


def _write_corpus(folder: Path, n: int) -> list[str]:
    folder.mkdir()
    names = []
    for i, text in enumerate(sample_texts()[:n]):
        name = f"doc{i:02d}.txt"
        (folder / name).write_text(text, encoding="utf-8")
        names.append(name)
    return names


def test_an_encoder_server_killed_mid_ingest_loses_nothing_and_the_rerun_resumes(
    lexical_splade_path, lexical_dense_path, splade, dense, tmp_path, monkeypatch
):
    server = start_encoder_server(lexical_splade_path, lexical_dense_path, tmp_path)
    corpus = tmp_path / "corpus"
    names = _write_corpus(corpus, 12)
    port = int(server.url.rsplit(":", 1)[1])
    settings = remote_settings(
        server, lexical_splade_path, lexical_dense_path, tmp_path / "index", encoder_retries=1
    )
    monkeypatch.setattr(tei_client, "BACKOFF_SECONDS", 0.05)
    sparse_calls = 0
    real_post = RemoteEndpoint.post

    def post_then_kill(self: RemoteEndpoint, path: str, body: dict[str, Any]) -> Any:
        nonlocal sparse_calls
        answer = real_post(self, path, body)
        if path == "/embed_sparse":
            sparse_calls += 1
            if sparse_calls == 3:  # the server dies after the third batch's SPLADE call
                server.stop()
        return answer

    from rag_splade.pipelines.ingest import IngestReport

    report = IngestReport()
    index = HybridIndex.from_settings(settings)
    try:
        monkeypatch.setattr(RemoteEndpoint, "post", post_then_kill)
        with pytest.raises(RemoteEncoderError) as caught:
            ingest([corpus], index, batch_size=2, report=report, optimize=False)
        monkeypatch.setattr(RemoteEndpoint, "post", real_post)
        assert server.url in str(caught.value) and "cannot be reached" in str(caught.value)
        assert report.interrupted
        acknowledged = set(report.ids["added"])
        assert 0 < len(acknowledged) < len(names)
        assert set(index.documents()) == acknowledged  # nothing acknowledged is lost
    finally:
        index.close()

    restarted = start_encoder_server(lexical_splade_path, lexical_dense_path, tmp_path, port=port)
    try:
        with HybridIndex.from_settings(settings) as index:
            rerun = ingest([corpus], index, batch_size=2)
            assert rerun.unchanged == len(acknowledged)  # resumes: the done ones are skipped
            assert set(rerun.ids["added"]) == set(names) - acknowledged
            remote_hits = [[h.id for h in index.search(q, top_k=5)] for q in QUERIES]
    finally:
        restarted.stop()
    with HybridIndex.from_settings(
        Settings(index_path=tmp_path / "local", sparse_model=str(lexical_splade_path)),
        encoders=(splade, dense),
    ) as local:
        ingest([corpus], local, batch_size=2)
        assert [[h.id for h in local.search(q, top_k=5)] for q in QUERIES] == remote_hits


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"sparse_url": "ftp://encoder:21"}, "http:// or https://"),
        ({"dense_url": "http://"}, "with a host"),
        ({"sparse_url": "http://encoder:8000/?x=1"}, "without ?query"),
        ({"sparse_url": "http://encoder:8000", "sparse_backend": "onnx"}, "does not apply"),
        ({"rerank_url": "http://encoder:8000"}, "needs rerank_model"),
        ({"encoder_api_key": "clé"}, "ENCODER_API_KEY must be visible ASCII.*not ASCII"),
        ({"encoder_api_key": "a b"}, "ENCODER_API_KEY must be visible ASCII.*a space"),
    ],
)
def test_encoder_settings_are_checked_whole(values, says):
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=says.replace("?", "\\?")):
        Settings(**values)
    ok = Settings(sparse_url=" http://encoder:8000/ ", encoder_api_key="")
    assert ok.sparse_url == "http://encoder:8000" and ok.encoder_api_key is None


def test_a_remote_encoder_refuses_a_key_no_header_can_carry():
    from rag_splade.encoders.tei_client import RemoteEndpoint

    with pytest.raises(ValueError, match=r"api_key must be visible ASCII.*a control character"):
        RemoteEndpoint("http://encoder:8000", setting="RAG_SPLADE_SPARSE_URL", api_key="k\n")


# -- TEI client libraries written elsewhere -------------------------------------------------


def test_huggingface_hub_inference_client(server, dense, monkeypatch):
    from huggingface_hub import InferenceClient, constants

    # the suite runs the hub client offline (no model downloads); this server is on loopback
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)

    client = InferenceClient(model=f"{server.url}/embed", api_key=KEY)
    rows = client.feature_extraction(QUERIES, prompt_name="query", normalize=True)
    np.testing.assert_allclose(rows, dense.encode_queries(QUERIES), atol=1e-6)
    one = client.feature_extraction(QUERIES[0], truncate=True, truncation_direction="right")
    np.testing.assert_allclose(one[0], dense.embed(QUERIES[:1])[0], atol=1e-6)


def test_llama_index_tei_embedding(server, dense):
    from llama_index.embeddings.text_embeddings_inference import TextEmbeddingsInference

    embed = TextEmbeddingsInference(
        model_name=dense.model_name, base_url=server.url, auth_token=KEY, embed_batch_size=3
    )
    rows = np.array(embed.get_text_embedding_batch(sample_texts()[:7]))
    np.testing.assert_allclose(rows, dense.embed(sample_texts()[:7]), atol=1e-6)
    import asyncio

    query = asyncio.run(embed.aget_query_embedding(QUERIES[0]))
    np.testing.assert_allclose(query, dense.embed(QUERIES[:1])[0], atol=1e-6)


def test_llama_index_tei_rerank(server, reranker):
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.postprocessor.tei_rerank import TextEmbeddingInference

    texts = sample_texts()[:6]
    rerank = TextEmbeddingInference(base_url=server.url, auth_token=f"Bearer {KEY}", top_n=3)
    nodes = [
        NodeWithScore(node=TextNode(text=t, id_=str(i)), score=0.0) for i, t in enumerate(texts)
    ]
    top = rerank.postprocess_nodes(nodes, QueryBundle(QUERIES[0]))
    scores = reranker.score([(QUERIES[0], t) for t in texts])
    expected = sorted(range(len(texts)), key=lambda i: -scores[i])[:3]
    assert [int(n.node.node_id) for n in top] == expected
    assert [n.score for n in top] == pytest.approx([float(scores[i]) for i in expected], abs=1e-6)

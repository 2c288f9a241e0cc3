"""The MCP tools: in-process through the SDK's client, over stdio as an agent starts
`rag-splade mcp`, and over streamable HTTP against `rag-splade serve` on loopback."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytest.importorskip("mcp")

from mcp import Client, StdioServerParameters

from rag_splade import Document
from rag_splade.api.auth import Access
from rag_splade.api.config import ServiceSettings
from rag_splade.api.mcp import build_mcp_server
from rag_splade.api.observability import Metrics
from rag_splade.api.runtime import Runtime
from rag_splade.api.schemas import SearchRequest as SearchBody
from rag_splade.keys import KeyEntry, Principal, hash_key, new_key, write_entries
from rag_splade.sample import sample_documents, sample_texts

QUERY = "日本で梅雨がないのは北海道とどこか。"
READ_TOOLS = {"search", "fetch", "list_documents", "stats"}


def run(coro):
    return asyncio.run(coro)


async def with_client(runtime, settings, check, *, writes=False, tenant="default", role="write"):
    access = Access(Principal("t", role, ("*",)), tenant)
    server = build_mcp_server(runtime, settings, lambda ctx, r: access, writes=writes)
    async with Client(server) as client:
        return await check(client)


@pytest.fixture(scope="module")
def served(lexical_splade_path, lexical_dense_path, tmp_path_factory):
    """A ready Runtime over an index of the bundled sample in two tenants."""
    settings = ServiceSettings(
        sparse_model=str(lexical_splade_path),
        dense_model=str(lexical_dense_path),
        device="cpu",
        index_path=tmp_path_factory.mktemp("mcp") / "index",
    )

    async def start():
        runtime = Runtime(settings, Metrics(), logging.getLogger("test-mcp"))
        await runtime.start()
        while runtime.state != "ready":
            assert runtime.state in ("loading", "store_unavailable"), runtime.detail
            await asyncio.sleep(0.05)
        index, _ = runtime.ready()
        index.add(sample_documents()[:20])
        texts = sample_texts()[20:30]
        index.tenant("acme").add([Document(f"a{i}", t) for i, t in enumerate(texts)])
        return runtime

    loop = asyncio.new_event_loop()
    runtime = loop.run_until_complete(start())
    yield loop, runtime, settings
    loop.run_until_complete(runtime.stop())
    loop.close()


def call(served, check, **kw):
    loop, runtime, settings = served
    return loop.run_until_complete(with_client(runtime, settings, check, **kw))


def test_tools_and_their_schemas(served) -> None:
    async def check(client):
        return {t.name: t for t in (await client.list_tools()).tools}

    read = call(served, check)
    assert set(read) == READ_TOOLS  # read-only by default
    written = call(served, check, writes=True)
    assert set(written) == READ_TOOLS | {"add_documents", "delete_document"}
    search = read["search"]
    assert set(search.input_schema["properties"]) == set(SearchBody.model_fields)
    assert search.input_schema["required"] == ["query"]
    assert {"hits", "context", "query"} <= set(search.output_schema["properties"])
    for tool in read.values():
        assert tool.description and tool.output_schema, tool.name
        assert tool.annotations.read_only_hint


def test_search_fetch_list_stats(served) -> None:
    async def check(client):
        found = await client.call_tool("search", {"query": QUERY, "top_k": 3, "rerank": False})
        hit = found.structured_content["hits"][0]
        fetched = await client.call_tool("fetch", {"doc_id": hit["doc_id"], "full_text": True})
        listed = await client.call_tool("list_documents", {"limit": 5})
        stats = await client.call_tool("stats", {})
        return found, fetched, listed, stats

    found, fetched, listed, stats = call(served, check)
    assert not found.is_error and [h["n"] for h in found.structured_content["hits"]] == [1, 2, 3]
    assert found.content[0].text.startswith("[1] 出典: ")  # the context block, as text
    hit = found.structured_content["hits"][0]
    assert hit["key_terms"] and hit["text"] in fetched.structured_content["text"]
    assert fetched.structured_content["chunks"][0]["chunk_index"] == 0
    assert listed.structured_content["total"] == 20 and listed.structured_content["next_after"]
    assert stats.structured_content["documents"] == 20


def test_the_tools_see_their_tenant_only(served) -> None:
    acme = set(sample_texts()[20:30])

    async def check(client):
        found = await client.call_tool("search", {"query": QUERY, "top_k": 10})
        other = await client.call_tool("fetch", {"doc_id": "梅雨-0"})
        listed = await client.call_tool("list_documents", {})
        forged = await client.call_tool(
            "search", {"query": QUERY, "filters": {"tenant": "default"}}
        )
        return found, other, listed, forged

    found, other, listed, forged = call(served, check, tenant="acme")
    assert {h["text"] for h in found.structured_content["hits"]} <= acme
    assert other.is_error and "no document" in other.content[0].text
    assert listed.structured_content["total"] == 10
    assert forged.is_error and "reserved" in forged.content[0].text


@pytest.mark.parametrize(
    ("tool", "arguments", "message"),
    [
        ("search", {"query": QUERY, "top_k": "many"}, "top_k"),
        ("search", {"query": QUERY, "top_k": 10**9}, "RAG_SPLADE_MAX_TOP_K"),
        ("search", {"query": QUERY, "weights": [math.nan, 1.0]}, "weights"),
        ("search", {"query": QUERY, "filters": {"a": {"b": {"c": {"gte": "x"}}}}}, "filter"),
        ("search", {"query": ""}, "query"),
        ("search", {}, "query"),
        ("search", {"query": QUERY, "offset": 10**6}, "RAG_SPLADE_MAX_OFFSET"),
        ("search", {"query": QUERY, "rerank": True}, "rerank"),
        ("fetch", {"doc_id": "missing"}, "no document with id 'missing'"),
        ("fetch", {"doc_id": "a\x00b"}, "doc"),
        ("list_documents", {"limit": 0}, "limit"),
        ("list_documents", {"filters": {"tenant": "x"}}, "reserved"),
        ("nope", {}, "nope"),
    ],
)
def test_hostile_arguments_are_tool_errors(served, tool, arguments, message) -> None:
    async def check(client):
        result = await client.call_tool(tool, arguments)
        after = await client.call_tool("stats", {})  # the session goes on
        return result, after

    result, after = call(served, check)
    assert result.is_error and message in result.content[0].text, result.content[0].text
    assert not after.is_error


def test_write_tools_when_enabled(served) -> None:
    async def check(client):
        added = await client.call_tool(
            "add_documents", {"documents": [{"id": "new-1", "text": "新しい文書です。"}]}
        )
        gone = await client.call_tool("delete_document", {"doc_id": "new-1"})
        again = await client.call_tool("delete_document", {"doc_id": "new-1"})
        many = [{"id": f"m{i}", "text": "短い。"} for i in range(257)]
        too_many = await client.call_tool("add_documents", {"documents": many})
        stats = await client.call_tool("stats", {})
        return added, gone, again, too_many, stats

    added, gone, again, too_many, stats = call(served, check, writes=True, tenant="beta")
    assert added.structured_content == {"documents": 1, "chunks": 1}
    assert gone.structured_content["deleted_chunks"] == 1 and again.is_error
    assert too_many.is_error and "RAG_SPLADE_MAX_DOCUMENTS_PER_REQUEST" in too_many.content[0].text
    assert stats.structured_content["documents"] == 0  # nothing of the refused call was written


def test_stdio_session_as_an_agent_starts_it(tmp_path, lexical_splade_path, lexical_dense_path):
    """`rag-splade mcp` on a fresh index of tiny models: initialize, list, call search."""
    from rag_splade.pipelines.cli import main

    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text(sample_texts()[0], encoding="utf-8")
    env = {
        "RAG_SPLADE_SPARSE_MODEL": str(lexical_splade_path),
        "RAG_SPLADE_DENSE_MODEL": str(lexical_dense_path),
        "RAG_SPLADE_INDEX_PATH": str(tmp_path / "index"),
        "RAG_SPLADE_DEVICE": "cpu",
    }
    os.environ.update(env)
    try:
        assert main(["ingest", str(docs), "--no-progress"]) == 0
    finally:
        for name in env:
            os.environ.pop(name)
    command = str(Path(sys.executable).with_name("rag-splade"))
    params = StdioServerParameters(
        command=command, args=["mcp"], env={**env, "HF_HUB_OFFLINE": "1"}
    )

    async def session():
        async with Client(params, read_timeout_seconds=120) as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            found = await client.call_tool("search", {"query": "梅雨", "top_k": 1})
            return tools, found

    tools, found = run(session())
    assert tools == READ_TOOLS
    assert not found.is_error and found.structured_content["hits"][0]["doc_id"] == "a.txt"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(lexical_splade_path, lexical_dense_path, tmp_path_factory):
    """`rag-splade serve` on loopback with scoped keys and the write tools on."""
    folder = tmp_path_factory.mktemp("mcp-http")
    keys = {"reader": new_key(), "writer": new_key()}
    write_entries(
        folder / "keys.json",
        [
            KeyEntry("reader", hash_key(keys["reader"]), ("acme",), "read"),
            KeyEntry("writer", hash_key(keys["writer"]), ("acme",), "write"),
        ],
    )
    port = free_port()
    env = {
        **os.environ,
        "RAG_SPLADE_SPARSE_MODEL": str(lexical_splade_path),
        "RAG_SPLADE_DENSE_MODEL": str(lexical_dense_path),
        "RAG_SPLADE_INDEX_PATH": str(folder / "index"),
        "RAG_SPLADE_DEVICE": "cpu",
        "RAG_SPLADE_KEYS_FILE": str(folder / "keys.json"),
        "RAG_SPLADE_MCP_WRITE_TOOLS": "true",
    }
    command = [str(Path(sys.executable).with_name("rag-splade")), "serve", "--port", str(port)]
    process = subprocess.Popen(
        command, env=env, stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, "the service exited"
            time.sleep(0.2)
        docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(sample_texts()[:12])]
        r = httpx.post(
            f"{base}/v1/documents",
            json={"documents": docs},
            headers={"x-api-key": keys["writer"]},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        yield base, keys
    finally:
        process.terminate()
        process.wait(timeout=30)


async def http_session(base: str, key: str | None, check):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    headers = {"x-api-key": key} if key else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(f"{base}/mcp/", http_client=http)) as client,
    ):
        return await check(client)


def test_http_tools_equal_the_rest_search(server) -> None:
    base, keys = server
    request = {"query": QUERY, "top_k": 5, "mode": "hybrid"}

    async def check(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        return tools, await client.call_tool("search", request)

    tools, found = run(http_session(base, keys["reader"], check))
    assert tools == READ_TOOLS  # a read key is not shown the write tools
    rest = httpx.post(
        f"{base}/v1/search", json=request, headers={"x-api-key": keys["reader"]}, timeout=60
    ).json()
    hits = found.structured_content["hits"]
    assert [(h["id"], h["score"]) for h in hits] == [(h["id"], h["score"]) for h in rest["hits"]]
    assert [h["sparse_rank"] for h in hits] == [h["sparse_rank"] for h in rest["hits"]]
    for tool_hit, rest_hit in zip(hits, rest["hits"], strict=True):
        rest_terms = {t["term"] for t in rest_hit["explanation"]["terms"]}
        assert set(tool_hit["key_terms"]) <= rest_terms
    assert found.content[0].text == rest["context"]


def test_http_keys_and_roles(server) -> None:
    base, keys = server
    no_key = httpx.post(f"{base}/mcp/", json={"jsonrpc": "2.0", "id": 1, "method": "initialize"})
    assert no_key.status_code == 401
    bad = httpx.post(f"{base}/mcp/", json={}, headers={"x-api-key": "rsk_wrong"})
    assert bad.status_code == 401

    async def write(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        denied = await client.call_tool("delete_document", {"doc_id": "d0"})
        return tools, denied

    tools, denied = run(http_session(base, keys["reader"], write))
    assert "delete_document" not in tools and denied.is_error

    async def writer(client):
        tools = {t.name for t in (await client.list_tools()).tools}
        added = await client.call_tool(
            "add_documents", {"documents": [{"id": "w", "text": "書ける鍵で足した文書。"}]}
        )
        return tools, added

    tools, added = run(http_session(base, keys["writer"], writer))
    assert {"add_documents", "delete_document"} <= tools and not added.is_error
    r = httpx.get(f"{base}/v1/documents/w", headers={"x-api-key": keys["reader"]})
    assert r.status_code == 200  # the same tenant, acme, through REST
    metrics = httpx.get(f"{base}/metrics").text
    assert 'method="POST",route="/mcp",status="401"' in metrics
    assert 'method="POST",route="/mcp",status="200"' in metrics

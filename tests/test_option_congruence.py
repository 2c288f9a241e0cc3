"""Every search option is declared once, in `SearchOptions`: each front end must take every
field, or name it here with the reason it does not. A field added to `SearchOptions` and
forgotten by a front end fails this test; so does a front end option the library lacks."""

from __future__ import annotations

import argparse
import inspect
import typing

import pytest

from rag_splade.search import OptionArgs, SearchArgs, SearchOptions, option_names

FIELDS = set(option_names())

# Front-end names for the library's fields, and fields a front end leaves out, with why.
RENAMED: dict[str, dict[str, str]] = {
    "llama_index": {"similarity_top_k": "top_k"},  # LlamaIndex's own name for it
}
EXCLUDED: dict[str, dict[str, str]] = {
    "http": {},
    "cli": {},
    "llama_index": {},
    "library": {},
    "mcp": {},
}
# Front-end options that are not search options (shaping the answer, not the search).
EXTRA: dict[str, set[str]] = {
    "http": {"context", "context_style", "query", "queries"},
    "mcp": {"context", "context_style", "query"},
    "cli": {
        "query",
        "rerank_model",
        "sparse_model",
        "dense_model",
        "json",
        "context",
        "index_path",
        "qdrant_url",
        "collection",
        "device",
        "context_style",
        "tenant",  # which tenant, not how to search
        "payload_index",
        "help",
    },
    "llama_index": {"self", "index", "key_terms", "callback_manager"},
    "library": {"self", "query", "queries"},
}


def _http() -> set[str]:
    from rag_splade.api.schemas import BatchSearchRequest, SearchRequest

    single, batch = set(SearchRequest.model_fields), set(BatchSearchRequest.model_fields)
    assert single - {"query"} == batch - {"queries"}, "single and batch search differ"
    return single | batch


def _cli() -> set[str]:
    from rag_splade.pipelines.search import add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return {a.dest for a in parser._actions}


def _llama_index() -> set[str]:
    from rag_splade.llama_index import SpladeHybridRetriever

    params = set(inspect.signature(SpladeHybridRetriever.__init__).parameters) - {"options"}
    return {"index", *params} | set(typing.get_type_hints(OptionArgs))


def _library() -> set[str]:
    from rag_splade import HybridIndex

    names: set[str] = set()
    for method in (HybridIndex.search, HybridIndex.search_batch):
        params = set(inspect.signature(method).parameters) - {"options"}
        names |= params | set(typing.get_type_hints(SearchArgs))
    return names


def _mcp() -> set[str]:
    """The `search` tool's input schema, as an MCP client lists it."""
    import asyncio

    from mcp import Client

    from rag_splade.api.mcp import build_mcp_server

    async def listed() -> set[str]:
        server = build_mcp_server(None, None, lambda ctx, role: None)  # type: ignore[arg-type]
        async with Client(server) as client:
            tools = {t.name: t for t in (await client.list_tools()).tools}
        return set(tools["search"].input_schema["properties"])

    return asyncio.run(listed())


FRONT_ENDS = {
    "http": _http,
    "cli": _cli,
    "llama_index": _llama_index,
    "library": _library,
    "mcp": _mcp,
}


@pytest.mark.parametrize("front_end", sorted(FRONT_ENDS))
def test_front_end_takes_every_search_option(front_end: str) -> None:
    seen = FRONT_ENDS[front_end]()
    renamed = RENAMED.get(front_end, {})
    taken = {renamed.get(name, name) for name in seen}
    missing = FIELDS - taken - set(EXCLUDED[front_end])
    assert not missing, f"{front_end} lacks search options {sorted(missing)}"
    unknown = taken - FIELDS - EXTRA[front_end]
    assert not unknown, f"{front_end} has options SearchOptions lacks: {sorted(unknown)}"


def test_exclusions_name_real_fields() -> None:
    for front_end, excluded in EXCLUDED.items():
        assert set(excluded) <= FIELDS, front_end


def test_keyword_types_list_every_field_but_top_k() -> None:
    assert set(typing.get_type_hints(SearchArgs)) == FIELDS - {"top_k"}
    assert set(typing.get_type_hints(OptionArgs)) == FIELDS - {"top_k", "filters"}


def test_the_check_fails_when_a_front_end_drops_a_field(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setitem(FRONT_ENDS, "cli", lambda: _cli() - {"offset"})
    with pytest.raises(AssertionError, match="cli lacks search options \\['offset'\\]"):
        test_front_end_takes_every_search_option("cli")


def test_unknown_keyword_names_the_known_ones() -> None:
    from rag_splade.search import options_from

    with pytest.raises(TypeError, match="unknown search option\\(s\\) topk; the options are"):
        options_from(5, {"topk": 3})  # type: ignore[typeddict-unknown-key]
    assert options_from(3, {"mode": "sparse"}) == SearchOptions(top_k=3, mode="sparse")

"""`SearchOptions` / `SearchRequest`: validated once, on construction; the search stages."""

from __future__ import annotations

import dataclasses
import inspect
import math
import subprocess
import sys
import typing

import pytest

from rag_splade import HybridIndex, QdrantServerStore, SearchOptions, SearchRequest
from rag_splade.search import (
    DEFAULT_EXPLAIN,
    FUSIONS,
    MAX_TOP_K,
    MODES,
    Fusion,
    Mode,
    QueryVectors,
    requests_for,
)
from rag_splade.store.filters import Condition


def test_choices_are_spelled_once() -> None:
    assert MODES == typing.get_args(Mode) == ("hybrid", "sparse", "dense")
    assert FUSIONS == typing.get_args(Fusion) == ("rrf", "dbsf")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"top_k": 0}, "top_k must be an int from 1 to"),
        ({"top_k": MAX_TOP_K + 1}, "top_k must be an int from 1 to"),
        ({"top_k": True}, "top_k must be an int"),
        ({"top_k": 2.0}, "top_k must be an int"),
        ({"mode": "bm25"}, "mode must be one of"),
        ({"fusion": "sum"}, "fusion must be one of"),
        ({"rrf_k": 0}, "rrf_k must be None or a positive int"),
        ({"candidates": -3}, "candidates must be None or a positive int"),
        ({"explain": "yes"}, "explain must be a bool"),
        ({"weights": (1.0, 2.0), "mode": "dense"}, "weights apply to hybrid mode with rrf"),
        ({"weights": (1.0, 2.0), "fusion": "dbsf"}, "weights apply to hybrid mode with rrf"),
        ({"weights": (1.0,)}, "weights must be two finite non-negative numbers"),
        ({"weights": (0, 0)}, "not both 0"),
        ({"weights": (-1, 1)}, "non-negative"),
        ({"weights": (math.nan, 1)}, "finite"),
        ({"weights": (math.inf, 1)}, "finite"),
        ({"weights": "12"}, "two finite"),
        ({"filters": {"year": 2.5}}, "equality on a float"),
        ({"filters": ["source"]}, "filters must be a dict"),
    ],
)
def test_bad_options_are_refused_on_construction(options: dict, message: str) -> None:
    with pytest.raises((TypeError, ValueError), match=message):
        SearchOptions(**options)
    with pytest.raises((TypeError, ValueError), match=message):
        SearchRequest(query="燃費", **options)


@pytest.mark.parametrize("query", ["", "   ", None, 3])
def test_a_request_needs_a_query(query: object) -> None:
    with pytest.raises((TypeError, ValueError), match="query must be"):
        SearchRequest(query=query)  # type: ignore[arg-type]


def test_a_lone_surrogate_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="query must be valid Unicode text; character 2"):
        SearchRequest(query="燃費\ud800")
    with pytest.raises(ValueError, match=r"queries\[1\] must be valid Unicode"):
        requests_for(["燃費", "\udfff"], SearchOptions())


def test_batch_errors_name_the_query() -> None:
    with pytest.raises(ValueError, match=r"queries\[1\] must be a non-empty string"):
        requests_for(["燃費", " "], SearchOptions())
    with pytest.raises(TypeError, match="queries must be a list of str"):
        requests_for("燃費", SearchOptions())


@pytest.mark.parametrize(
    ("mode", "explain", "sparse", "dense"),
    [
        ("hybrid", False, True, True),
        ("sparse", False, True, False),
        ("dense", False, False, True),
        ("dense", True, True, True),  # explanations need the sparse vector
    ],
)
def test_needed_vectors(mode: Mode, explain: bool, sparse: bool, dense: bool) -> None:
    request = SearchRequest(query="燃費", mode=mode, explain=explain)
    assert (request.needs_sparse, request.needs_dense) == (sparse, dense)


def test_filters_are_parsed_once_and_copied() -> None:
    filters = {"source": "faq", "year": {"gte": 2020}}
    request = SearchRequest(query="燃費", filters=filters)
    filters["source"] = "changed"
    filters["year"]["gte"] = 1900
    assert request.filters == {"source": "faq", "year": {"gte": 2020}}
    assert request.conditions == (
        Condition("metadata.source", "eq", "faq"),
        Condition("metadata.year", "range", {"gte": 2020.0}),
    )


def test_options_and_request_round_trip() -> None:
    options = SearchOptions(top_k=3, mode="sparse", filters={"source": "faq"}, explain=False)
    request = options.with_query("燃費")
    assert request.query == "燃費" and request.top_k == 3 and request.mode == "sparse"
    assert request.options == options
    with pytest.raises(dataclasses.FrozenInstanceError):
        request.top_k = 9  # type: ignore[misc]


def test_resolved_fills_the_index_settings_and_checks_again() -> None:
    index = {"fusion": "rrf", "rrf_k": 61, "candidates": 5, "rerank_candidates": 50}
    request = SearchRequest(query="燃費", top_k=7, weights=(1.0, 2.0))
    resolved = request.resolved(**index)  # type: ignore[arg-type]
    assert (resolved.fusion, resolved.rrf_k, resolved.candidates) == ("rrf", 61, 7)
    assert (resolved.rerank_candidates, resolved.pool) == (None, 7)
    kept = SearchRequest(query="燃費", fusion="rrf", rrf_k=10, candidates=50)
    assert kept.resolved(**{**index, "fusion": "dbsf", "candidates": 100}) == kept  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="weights apply to hybrid mode with rrf"):
        request.resolved(**{**index, "fusion": "dbsf"})  # type: ignore[arg-type]


def test_resolved_rerank_pool() -> None:
    index = {"fusion": "rrf", "rrf_k": 61, "candidates": 20, "rerank_candidates": 50}
    # the index's rerank_candidates; each retriever's list is at least that long
    reranked = SearchRequest(query="燃費", top_k=5, rerank=True).resolved(**index)  # type: ignore[arg-type]
    assert (reranked.rerank_candidates, reranked.pool, reranked.candidates) == (50, 50, 50)
    # the request's own; and never fewer than top_k
    own = SearchRequest(query="燃費", top_k=5, rerank=True, rerank_candidates=8)
    assert own.resolved(**index).pool == 8  # type: ignore[arg-type]
    wide = SearchRequest(query="燃費", top_k=80, rerank=True).resolved(**index)  # type: ignore[arg-type]
    assert (wide.pool, wide.candidates) == (80, 80)


def test_explain_default_is_one_value() -> None:
    from rag_splade.api.schemas import SearchRequest as SearchBody

    assert SearchOptions().explain is DEFAULT_EXPLAIN
    assert SearchBody(query="燃費").explain is DEFAULT_EXPLAIN
    top_k = inspect.signature(HybridIndex.search).parameters["top_k"]
    assert top_k.default == SearchOptions().top_k


def test_settings_and_search_import_no_torch() -> None:
    code = (
        "import sys\n"
        "from rag_splade import Settings, SearchRequest\n"
        "Settings(); SearchRequest(query='燃費')\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=600)


@pytest.fixture()
def index(splade, dense) -> HybridIndex:  # type: ignore[no-untyped-def]
    from rag_splade import Document
    from rag_splade.sample import sample_texts

    idx = HybridIndex(splade, dense, QdrantServerStore(location=":memory:"))
    idx.add([Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:8])])
    return idx


def test_run_matches_search_and_refuses_missing_vectors(index: HybridIndex) -> None:
    request = SearchRequest(query="石油の主成分は何か。", top_k=3)
    [vectors] = index.encode_queries([request])
    assert vectors.sparse is not None and vectors.dense is not None
    by_run = index.finish(index.retrieve(request, vectors), None)
    by_search = index.search("石油の主成分は何か。", top_k=3)
    assert [h.id for h in by_run] == [h.id for h in by_search]
    assert all(h.explanation is not None for h in by_run)  # explain is on by default
    with pytest.raises(ValueError, match="needs the query's dense vector"):
        index.retrieve(request, QueryVectors(sparse=vectors.sparse))
    sparse_only = SearchRequest(query="石油", mode="sparse", explain=False)
    [only] = index.encode_queries([sparse_only])
    assert only.dense is None and only.sparse is not None
    assert index.finish(index.retrieve(sparse_only, only), None)


def test_index_settings_fill_what_the_request_left_open(splade, dense) -> None:  # type: ignore[no-untyped-def]
    idx = HybridIndex(splade, dense, QdrantServerStore(location=":memory:"), fusion="dbsf")
    assert idx.resolve(SearchRequest(query="燃費")).fusion == "dbsf"
    with pytest.raises(ValueError, match="weights apply to hybrid mode with rrf"):
        idx.search("燃費", weights=(1.0, 2.0))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"offset": -1}, "offset must be an int >= 0"),
        ({"offset": 1.5}, "offset must be an int >= 0"),
        ({"offset": True}, "offset must be an int >= 0"),
        ({"offset": 996, "top_k": 5}, "offset \\+ top_k must be at most 1000"),
        ({"min_score": float("nan")}, "min_score must be a finite number"),
        ({"min_score": float("inf")}, "min_score must be a finite number"),
        ({"min_score": "0.5"}, "min_score must be a finite number"),
        ({"group_by_document": 0}, "group_by_document must be None or a positive int"),
        (
            {"offset": 5, "top_k": 5, "rerank": True, "rerank_candidates": 8},
            "at least offset \\+ top_k \\(5 \\+ 5\\)",
        ),
    ],
)
def test_paging_threshold_and_grouping_options_are_checked(options, message) -> None:
    with pytest.raises(ValueError, match=message):
        SearchRequest(query="燃費", **options)


def test_pool_covers_the_page() -> None:
    index = {"fusion": "rrf", "rrf_k": 61, "candidates": 5, "rerank_candidates": 10}
    paged = SearchRequest(query="燃費", top_k=5, offset=20).resolved(**index)  # type: ignore[arg-type]
    assert (paged.wanted, paged.pool, paged.candidates) == (25, 25, 25)
    reranked = SearchRequest(query="燃費", top_k=5, offset=20, rerank=True).resolved(**index)  # type: ignore[arg-type]
    assert reranked.pool == 25

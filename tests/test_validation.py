"""Bad input raises a clear error naming the argument and what is allowed."""

from __future__ import annotations

import pytest

from rag_splade import Document, HybridIndex, QdrantServerStore
from rag_splade.store.filters import parse_filters


@pytest.fixture(scope="module")
def index(splade, dense):
    idx = HybridIndex(splade, dense, QdrantServerStore(location=":memory:"))
    idx.add([Document(id="a", text="梅雨は日本の気象現象である。", metadata={"n": 1})])
    return idx


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"query": ""}, ValueError, "query must be a non-empty string"),
        ({"query": "  \n"}, ValueError, "query must be a non-empty string"),
        ({"query": 3}, TypeError, "query must be a str"),
        ({"top_k": 0}, ValueError, "top_k must be an int from 1 to 1000"),
        ({"top_k": 5000}, ValueError, "top_k must be an int from 1 to 1000"),
        ({"top_k": True}, ValueError, "top_k"),
        ({"mode": "bm25"}, ValueError, "mode must be one of"),
        ({"fusion": "max"}, ValueError, "fusion must be one of"),
        ({"weights": (1.0,)}, ValueError, "weights must be two"),
        ({"weights": (-1.0, 1.0)}, ValueError, "weights must be two"),
        ({"weights": (1.0, 1.0), "fusion": "dbsf"}, ValueError, "rrf fusion only"),
        ({"weights": (1.0, 1.0), "mode": "sparse"}, ValueError, "hybrid mode"),
        ({"filters": {"n": {"near": 3}}}, ValueError, "range operators"),
        ({"filters": {"n": [{"a": 1}]}}, TypeError, "all str or all int"),
        ({"filters": {"n": None}}, TypeError, "allowed"),
        ({"filters": {"n": 1.5}}, TypeError, "use a range"),
        ({"filters": ["n"]}, TypeError, "filters must be a dict"),
        ({"candidates": 0}, ValueError, "candidates"),
        ({"explain": "yes"}, TypeError, "explain must be a bool"),
    ],
)
def test_search_rejects_bad_input(index, kwargs, error, message) -> None:
    args = {"query": "梅雨"} | kwargs
    with pytest.raises(error, match=message):
        index.search(**args)


def test_add_rejects_bad_documents(index) -> None:
    before = index.count()
    with pytest.raises(ValueError, match="'e' has no text"):
        index.add([Document(id="ok", text="良い文書。"), Document(id="e", text="   ")])
    with pytest.raises(ValueError, match="appears twice"):
        index.add([Document(id="x", text="一。"), Document(id="x", text="二。")])
    with pytest.raises(TypeError, match=r"documents\[0\] must be a Document"):
        index.add([{"id": "x", "text": "dict"}])  # type: ignore[list-item]
    assert index.count() == before  # nothing was written


def test_bad_ids_and_store_arguments(index) -> None:
    with pytest.raises(ValueError, match="doc_id"):
        index.delete("")
    with pytest.raises(ValueError, match="exactly one of url"):
        QdrantServerStore()
    with pytest.raises(ValueError, match="exactly one of url"):
        QdrantServerStore("http://localhost:6333", location=":memory:")


def test_filter_language() -> None:
    [eq, any_, rng] = parse_filters({"source": "faq", "doc_id": ["a", "b"], "year": {"gte": 2020}})
    assert (eq.field, eq.kind, eq.value) == ("metadata.source", "eq", "faq")
    assert (any_.field, any_.kind) == ("doc_id", "any")
    assert (rng.field, rng.kind, rng.value) == ("metadata.year", "range", {"gte": 2020.0})
    with pytest.raises(TypeError, match="range bound gte must be a number"):
        parse_filters({"year": {"gte": "2020"}})
    with pytest.raises(TypeError, match="non-empty"):
        parse_filters({"tags": []})
    with pytest.raises(TypeError, match="all str or all int"):
        parse_filters({"tags": ["a", 1]})


def _nested(levels: int) -> dict:
    value: object = 1
    for _ in range(levels):
        value = {"x": value}
    return {"a": value}


@pytest.mark.parametrize("levels", [17, 478, 5000])
def test_deep_filters_are_a_value_error_not_a_recursion_error(levels) -> None:
    from rag_splade import SearchOptions

    with pytest.raises(ValueError, match="filters nests deeper than 16 levels"):
        SearchOptions(filters=_nested(levels))
    deep_list: object = ["x"]
    for _ in range(levels):
        deep_list = [deep_list]
    with pytest.raises(ValueError, match="nests deeper"):
        SearchOptions(filters={"a": deep_list})


@pytest.mark.parametrize("key", ["title\n", "a\nb", "\n", "title\r", "title\u2028"])
def test_a_key_with_a_line_break_is_no_key(key) -> None:
    from rag_splade.metadata import check_metadata
    from rag_splade.store.filters import parse_filters

    with pytest.raises(ValueError, match="is not allowed"):
        check_metadata({key: "x"}, "d")
    with pytest.raises(ValueError, match="is not allowed"):
        parse_filters({key: "x"})


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"rrf_k": 2**64}, "rrf_k must be None or a positive int"),
        ({"candidates": 2**70}, "candidates must be None or a positive int"),
        ({"weights": (10**400, 1.0)}, "weights must be two finite"),
        ({"weights": b"ab"}, "weights must be two finite"),
        ({"weights": {1.0, 2.0}}, "weights must be two finite"),
        ({"weights": (1e-320, 0.0)}, r"each 0 or from 1e-06 to 1e\+06"),  # float32: 0
        ({"weights": (1e30, 1.0)}, r"each 0 or from 1e-06 to 1e\+06"),
    ],
)
def test_numbers_past_what_the_engine_holds_are_refused(options, message) -> None:
    from rag_splade import SearchOptions

    with pytest.raises(ValueError, match=message):
        SearchOptions(**options)


def test_add_names_its_argument(splade, dense) -> None:
    from rag_splade import Document, HybridIndex, QdrantServerStore

    with HybridIndex(splade, dense, QdrantServerStore(location=":memory:")) as idx:
        for wrong in (None, Document("a", "本文"), "本文", 3):
            with pytest.raises(TypeError, match="documents must be an iterable of Document"):
                idx.add(wrong)  # type: ignore[arg-type]
        assert idx.count() == 0

"""`rag-splade search` on an index filled through the library."""

from __future__ import annotations

import io
import json

import pytest

from rag_splade import Document, HybridIndex, Settings
from rag_splade.pipelines.cli import main
from rag_splade.pipelines.demo import print_hit
from rag_splade.types import Explanation, SearchHit, TermMatch


@pytest.fixture
def filled(tmp_path, monkeypatch, lexical_splade_path, lexical_dense_path):
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)
    path = tmp_path / "index"
    with HybridIndex.from_settings(Settings(index_path=path)) as index:
        index.add(
            [
                Document("a", "小笠原諸島は東京都に属する島々です。", {"source": "faq", "n": 1}),
                Document("b", "石油の主成分は炭化水素です。", {"source": "wiki", "n": 2}),
            ]
        )
    return path


def test_search_prints_json_hits(filled, capsys) -> None:
    code = main(
        ["search", "小笠原諸島", "石油", "--index-path", str(filled), "--json", "--top-k", "2"]
    )
    assert code == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(r["query"], r["rank"]) for r in lines] == [
        ("小笠原諸島", 1),
        ("小笠原諸島", 2),
        ("石油", 1),
        ("石油", 2),
    ]
    assert lines[0]["doc_id"] == "a" and lines[2]["doc_id"] == "b"
    terms = lines[0]["explanation"]["terms"]
    assert sum(t["contribution"] for t in terms) == pytest.approx(
        lines[0]["sparse_score"], rel=1e-4
    )


def test_search_filters_and_context(filled, capsys) -> None:
    args = ["search", "小笠原諸島", "--index-path", str(filled), "--context"]
    assert main([*args, "--filter", 'source="wiki"']) == 0
    out = capsys.readouterr().out
    assert "1. b" in out and "1. a" not in out and "[1] 出典:" in out
    assert main([*args, "--filter", 'n={"gte": 2}', "--mode", "sparse"]) == 0
    assert "1. b" in capsys.readouterr().out


def test_search_errors_are_clear(filled, tmp_path, capsys) -> None:
    assert main(["search", "x", "--index-path", str(filled), "--filter", "oops"]) == 2
    assert "FIELD=VALUE" in capsys.readouterr().err
    assert main(["search", "x", "--index-path", str(filled), "--filter", 'n={"bad": 1}']) == 2
    assert "range operators" in capsys.readouterr().err
    # a mistyped path is not created (and then called empty): it is not there
    assert main(["search", "x", "--index-path", str(tmp_path / "typo")]) == 2
    assert f"no index at {tmp_path / 'typo'}" in capsys.readouterr().err
    assert not (tmp_path / "typo").exists()


def test_search_weights_and_no_explain(filled, capsys) -> None:
    args = ["search", "小笠原諸島", "--index-path", str(filled), "--json"]
    assert main([*args, "--no-explain", "--weights", "1,2"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["doc_id"] == "a" and first["explanation"] is None
    with pytest.raises(SystemExit) as exit_:
        main([*args, "--weights", "1,x"])
    assert exit_.value.code == 2 and "SPARSE,DENSE" in capsys.readouterr().err
    assert main([*args, "--weights", "1,2", "--mode", "dense"]) == 2
    assert "weights apply to hybrid mode with rrf fusion only" in capsys.readouterr().err


def test_context_keeps_its_key_terms_without_explanations(filled, capsys) -> None:
    args = ["search", "小笠原諸島", "--index-path", str(filled), "--context", "--mode", "sparse"]
    assert main(args) == 0
    explained = capsys.readouterr().out
    assert main([*args, "--no-explain"]) == 0
    bare = capsys.readouterr().out
    assert "matched:" in explained and "matched:" not in bare
    context = explained[explained.index("[1] 出典:") :]
    assert "一致語" in context and bare.endswith(context)


def test_search_reranks(filled, capsys, lexical_reranker_path, monkeypatch) -> None:
    monkeypatch.delenv("RAG_SPLADE_RERANK_MODEL", raising=False)
    base = ["search", "石油の主成分", "--index-path", str(filled), "--json", "--top-k", "2"]
    assert main([*base, "--rerank", "--rerank-model", str(lexical_reranker_path)]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["rerank_rank"] for r in lines] == [1, 2]
    assert lines[0]["doc_id"] == "b" and lines[0]["rerank_score"] > lines[1]["rerank_score"]
    shown = [*base[:-3], "--rerank", "--rerank-model", str(lexical_reranker_path)]
    assert main([arg for arg in shown if arg != "--json"]) == 0
    assert "rerank=" in capsys.readouterr().out  # the plain listing shows the rerank score
    # without a model: one clear line, exit 2
    assert main([*base, "--rerank"]) == 2
    assert "RAG_SPLADE_RERANK_MODEL" in capsys.readouterr().err
    # a model named but no --rerank: it is not even loaded
    assert main([*base, "--rerank-model", "no-such-org/never-loaded-reranker"]) == 0


def test_search_paging_floor_grouping_and_fusion_flags(filled, capsys) -> None:
    base = ["search", "小笠原諸島", "--index-path", str(filled), "--json"]
    assert main([*base, "--top-k", "1", "--offset", "1", "--candidates", "5", "--rrf-k", "2"]) == 0
    [line] = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert (line["rank"], line["doc_id"]) == (2, "b")  # the second hit, numbered as such
    assert main([*base, "--min-score", "1e6"]) == 0
    assert capsys.readouterr().out == ""
    assert main(["search", "小笠原諸島", "--index-path", str(filled), "--min-score", "1e6"]) == 0
    assert "(no hits)" in capsys.readouterr().out
    assert main([*base, "--group-by-document", "0"]) == 2
    assert "group_by_document" in capsys.readouterr().err


@pytest.mark.parametrize(
    "value", ['{"gte":', "[1, 2", '"faq', '  {"gte": 1,}', "{population}", '{"a": 1} x']
)
def test_a_filter_value_that_starts_like_json_must_be_json(filled, capsys, value) -> None:
    """Taken as a string it would match nothing and exit 0: refused, exit 2, one line."""
    args = ["search", "x", "--index-path", str(filled), "--filter", f"population={value}"]
    assert main(args) == 2
    [line] = capsys.readouterr().err.splitlines()
    assert line.startswith("rag-splade search: --filter population: ")
    assert "starts like JSON but is not valid JSON" in line


def test_a_plain_filter_value_is_still_a_string(filled, capsys) -> None:
    args = ["search", "小笠原諸島", "--index-path", str(filled), "--json"]
    assert main([*args, "--filter", "source=faq"]) == 0
    assert {json.loads(x)["doc_id"] for x in capsys.readouterr().out.splitlines()} == {"a"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--candidates", "1", "--top-k", "5"],
            "candidates (1) must be at least offset + top_k (5)",
        ),
        (["--top-k", "abc"], "argument --top-k: invalid int value: 'abc'"),
        (["--mode", "bm25"], "argument --mode: invalid choice: 'bm25'"),
        (["--filter", "oops"], "--filter must look like FIELD=VALUE"),
        (["--weights", "1"], "--weights takes two numbers"),
        (["--offset", "-1"], "offset must be an int >= 0"),
    ],
)
def test_every_error_line_names_the_command(filled, capsys, argv, message) -> None:
    """Usage errors (argparse's) and the command's own look alike: `rag-splade search: ...`."""
    try:
        code = main(["search", "x", "--index-path", str(filled), *argv])
    except SystemExit as e:  # argparse exits itself
        code = int(e.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    problems = [line for line in err.splitlines() if not line.startswith(("usage:", " "))]
    assert problems == [problems[0]] and problems[0].startswith("rag-splade search: "), err
    assert message in problems[0]
    assert "error:" not in err


def test_model_loading_draws_no_progress_bars(filled, capsys) -> None:
    from transformers.utils import logging as transformers_logging

    transformers_logging.enable_progress_bar()  # as a fresh process starts
    try:
        assert main(["search", "小笠原諸島", "--index-path", str(filled)]) == 0
        err = capsys.readouterr().err
        assert "Loading weights" not in err and "it/s]" not in err, err
    finally:
        transformers_logging.enable_progress_bar()


def _hit(text: str, terms: list) -> SearchHit:
    explanation = Explanation(terms=terms, sparse_score=sum(t.contribution for t in terms))
    return SearchHit(
        id="h#0",
        doc_id="h",
        chunk_index=0,
        text=text,
        score=0.5,
        metadata={},
        explanation=explanation,
    )


def test_a_hit_that_matched_only_function_words_says_so() -> None:
    particle = TermMatch("の", 1.0, 2.0, 2.0, [(2, 3)], True, pieces=["の"], function_word=True)
    out = io.StringIO()
    print_hit(1, _hit("本文の段落", [particle]), out)
    lines = out.getvalue().splitlines()
    assert "     matched: function words only (particles, auxiliaries, symbols)" in lines
    assert not any(line.rstrip() == "matched:" or line.endswith("matched: ") for line in lines)
    out = io.StringIO()
    print_hit(1, _hit("本文", []), out)  # nothing literal (a dense-only hit): no line at all
    assert "matched" not in out.getvalue()


@pytest.mark.parametrize(
    "text", ["# 見出し\n本文です。", "本文\n\n## 節\n- 箇条\n\u2028> 引用", "\r\n#見出し\r\n"]
)
def test_a_passage_with_headings_and_line_breaks_stays_one_indented_line(text: str) -> None:
    word = TermMatch("見出し", 1.0, 2.0, 2.0, [], True, pieces=["見出し"])
    out = io.StringIO()
    print_hit(1, _hit(text, [word]), out)
    lines = out.getvalue().splitlines()
    assert all(line.startswith("  ") for line in lines), lines  # nothing at the left margin
    assert lines[-1] == "     " + " ".join(text.split())  # the passage's lines, joined

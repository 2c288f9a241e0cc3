"""`+rerank` runs in the evaluation, and identical runs from identical evaluations."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rag_splade import EdgeStore, HybridIndex
from rag_splade.pipelines.evaluate import RunSpec, evaluate, load_dataset
from rag_splade.pipelines.evaluate.cli import add_arguments, run
from rag_splade.pipelines.evaluate.runs import execute_index_runs, parse_runs
from rag_splade.sample import sample_path


@pytest.fixture(scope="module")
def sample():
    return load_dataset(sample_path())


@pytest.fixture(scope="module")
def edge_index(splade, dense, reranker, sample, tmp_path_factory):
    path = tmp_path_factory.mktemp("eval-rerank") / "index"
    with HybridIndex(
        splade, dense, EdgeStore(path), reranker=reranker, rerank_candidates=20
    ) as idx:
        idx.add(sample.documents(include_title=True))
        yield idx


def test_rerank_run_names() -> None:
    spec = RunSpec.parse("hybrid-rrf+rerank")
    assert (spec.mode, spec.fusion, spec.rerank, spec.without_rerank) == (
        "hybrid", "rrf", True, "hybrid-rrf"
    )  # fmt: skip
    assert RunSpec.parse("hybrid-rrf-w2+rerank").weights == (2.0, 1.0)
    assert RunSpec.parse("sparse").without_rerank is None
    for bad in ("bm25+rerank", "sparse+rerank+rerank"):
        with pytest.raises(ValueError, match=r"\+rerank applies once"):
            RunSpec.parse(bad)
    names = [s.name for s in parse_runs("bm25,sparse,hybrid-rrf", rerank=True)]
    assert names == ["bm25", "sparse", "sparse+rerank", "hybrid-rrf", "hybrid-rrf+rerank"]


def test_evaluation_reports_rerank_rows_against_the_plain_runs(edge_index, sample) -> None:
    report = evaluate(
        edge_index,
        sample.limit(60),
        runs="sparse,dense,hybrid-rrf",
        rerank=True,
        latency_queries=2,
        ingest=False,
    )
    names = [r.name for r in report.runs]
    assert names == [
        "sparse", "sparse+rerank", "dense", "dense+rerank", "hybrid-rrf", "hybrid-rrf+rerank"
    ]  # fmt: skip
    for r in report.runs:
        if r.name.endswith("+rerank"):
            assert set(r.rerank_p_values) == set(report.metrics)
            assert r.latency["queries"] == 2
        else:
            assert r.rerank_p_values == {}
    assert report.config["rerank_candidates"] == 20
    markdown = report.to_markdown()
    assert "‡ p < 0.05 for a `+rerank` run against the same run without reranking" in markdown
    # a reranked run changes the order of the first 20 chunks only: recall@100 holds
    plain, reranked = report.run("hybrid-rrf"), report.run("hybrid-rrf+rerank")
    assert reranked.metrics["recall@100"] == pytest.approx(plain.metrics["recall@100"])
    assert reranked.metrics["ndcg@10"] != plain.metrics["ndcg@10"]


def test_two_identical_evaluations_give_identical_runs(edge_index, sample) -> None:
    """Edge returns tied points in a different order from call to call; the fixed order of
    equal scores makes every run the same, hybrid RRF and DBSF included."""
    specs = parse_runs("sparse,dense,hybrid-rrf,hybrid-dbsf,hybrid-rrf-w2")
    specs.append(RunSpec.parse("hybrid-rrf+rerank"))
    queries = dict(list(sample.queries.items())[:40])

    def once():
        outputs = execute_index_runs(
            edge_index, specs, queries, depth=20, chunk_top_k=30, latency_queries=0
        )
        return {o.spec.name: o.results for o in outputs}

    assert once() == once()


def test_rerank_runs_need_a_reranker(splade, dense, sample, tmp_path) -> None:
    with (
        HybridIndex(splade, dense, EdgeStore(tmp_path / "i")) as plain,
        pytest.raises(ValueError, match=r"need a reranker.*RAG_SPLADE_RERANK_MODEL"),
    ):
        evaluate(plain, sample, runs="sparse", rerank=True)


def test_cli_rerank(tmp_path: Path, lexical_splade_path, lexical_dense_path,
                    lexical_reranker_path, capsys) -> None:  # fmt: skip
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            str(sample_path()),
            "--runs", "sparse",
            "--rerank",
            "--rerank-model", str(lexical_reranker_path),
            "--rerank-candidates", "10",
            "--sparse-model", str(lexical_splade_path),
            "--dense-model", str(lexical_dense_path),
            "--device", "cpu",
            "--limit", "20",
            "--latency-queries", "0",
            "--output-dir", str(out),
            "--quiet",
        ]
    )  # fmt: skip
    assert run(args) == 0
    assert "| sparse+rerank |" in capsys.readouterr().out
    result = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in result["runs"]] == ["sparse", "sparse+rerank"]
    assert result["config"]["rerank_candidates"] == 10

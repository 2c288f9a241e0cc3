"""The evaluation harness: loaders, metrics, runs, reports and the `eval` command."""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

import pytest

from rag_splade import HybridIndex, SearchHit, Settings
from rag_splade.pipelines.evaluate import (
    EvaluationReport,
    RetrievalDataset,
    RunResult,
    RunSpec,
    add_arguments,
    best_chunk_per_document,
    compare_runs,
    compute_metrics,
    evaluate,
    load_dataset,
    run,
    write_beir,
)
from rag_splade.pipelines.evaluate.bm25 import BM25Retriever, tokenize
from rag_splade.pipelines.evaluate.datasets import Passage
from rag_splade.pipelines.evaluate.runs import parse_runs
from rag_splade.sample import sample_path

# The full JSQuAD release is not shipped: point RAG_SPLADE_JSQUAD_DIR at it to run this check.
JSQUAD_DIR = Path(os.environ.get("RAG_SPLADE_JSQUAD_DIR", "/nonexistent"))
SAMPLE = sample_path()

# A corpus built so that BM25 ranks the relevant document 1st for q1-q3 and 2nd for q4
# (d1 says 梅雨 twice, d4 says 空港 once, both words are in one document each).
DOCS = {
    "d1": "梅雨は梅雨前線がもたらす雨の季節である。",
    "d2": "石油は燃料として使われる。",
    "d3": "サケは川を遡上する魚である。",
    "d4": "空港には飛行機が発着する。",
    "d5": "ラオスは東南アジアの国である。",
}
QUERIES = {"q1": "梅雨前線", "q2": "石油燃料", "q3": "川を遡上する魚", "q4": "空港と梅雨"}
QRELS = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}, "q4": {"d4": 1}}


def toy_dataset() -> RetrievalDataset:
    corpus = {d: Passage(d, t) for d, t in DOCS.items()}
    return RetrievalDataset("toy", corpus, dict(QUERIES), {q: dict(r) for q, r in QRELS.items()})


@pytest.fixture(scope="module")
def tiny_settings(lexical_splade_path: Path, lexical_dense_path: Path) -> Settings:
    return Settings(
        sparse_model=str(lexical_splade_path), dense_model=str(lexical_dense_path), device="cpu"
    )


def write_jsonl(path: Path, rows: list[dict]) -> None:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), "utf-8")


def write_toy_files(root: Path) -> None:
    write_jsonl(
        root / "corpus.jsonl",
        [{"_id": d, "title": "", "text": t} for d, t in DOCS.items()],
    )
    write_jsonl(
        root / "queries.jsonl",
        [{"_id": q, "text": t} for q, t in QUERIES.items()] + [{"_id": "q9", "text": "余り"}],
    )


# -- loaders ---------------------------------------------------------------------------------
def test_beir_loader(tmp_path: Path) -> None:
    write_toy_files(tmp_path)
    (tmp_path / "qrels").mkdir()
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, r in QRELS.items() for d in r]
    lines.append("q9\td5\t0")  # judged, not relevant: q9 is left out
    (tmp_path / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n")
    ds = load_dataset(tmp_path)
    assert list(ds.queries) == ["q1", "q2", "q3", "q4"]
    assert ds.qrels == QRELS
    assert ds.corpus["d3"].text == DOCS["d3"]
    assert ds.name == f"{tmp_path.name}/test"
    with pytest.raises(FileNotFoundError, match="dev"):
        load_dataset(tmp_path, split="dev", format="beir")


def test_trec_loader(tmp_path: Path) -> None:
    write_toy_files(tmp_path)
    (tmp_path / "qrels.txt").write_text("q1 0 d1 2\nq2 0 d2 1\nq2 0 d5 0\n")
    ds = load_dataset(tmp_path)
    assert ds.qrels == {"q1": {"d1": 2}, "q2": {"d2": 1, "d5": 0}}
    assert list(ds.queries) == ["q1", "q2"]
    (tmp_path / "bad.txt").write_text("q1 0 d1 x\n")
    with pytest.raises(ValueError, match="relevance must be a number"):
        load_dataset(tmp_path, qrels=tmp_path / "bad.txt")


def test_squad_loader(tmp_path: Path) -> None:
    data = {
        "data": [
            {
                "title": "梅雨",
                "paragraphs": [
                    {
                        "context": "梅雨 [SEP] 梅雨は雨の季節。",
                        "qas": [{"id": "a", "question": "梅雨とは", "answers": []}],
                    },
                    {
                        "context": "前線が停滞する。",
                        "qas": [
                            {"id": "b", "question": "何が停滞する", "answers": []},
                            {"id": "c", "question": "答えなし", "is_impossible": True},
                        ],
                    },
                ],
            }
        ]
    }
    (tmp_path / "valid-v1.json").write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    ds = load_dataset(tmp_path, split="valid")
    assert list(ds.corpus) == ["梅雨-0", "梅雨-1"]
    assert ds.corpus["梅雨-0"].text == "梅雨は雨の季節。"
    assert ds.corpus["梅雨-0"].title == "梅雨"
    assert ds.qrels == {"a": {"梅雨-0": 1}, "b": {"梅雨-1": 1}}
    docs = ds.documents()
    assert docs[0].text == "梅雨\n梅雨は雨の季節。" and docs[0].metadata["title"] == "梅雨"
    assert ds.documents(include_title=False)[0].text == "梅雨は雨の季節。"
    with pytest.raises(FileNotFoundError, match=r"test\*\.json"):
        load_dataset(tmp_path, split="test", format="squad")


def test_write_beir_round_trip(tmp_path: Path) -> None:
    ds = load_dataset(SAMPLE).limit(5, corpus=3)
    back = load_dataset(write_beir(ds, tmp_path / "beir", split="dev"), split="dev")
    assert back.queries == ds.queries and back.qrels == ds.qrels
    assert back.corpus == ds.corpus  # ids, texts, titles and metadata


def test_loader_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="format must be one of"):
        load_dataset(tmp_path, format="csv")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_dataset(tmp_path / "nope")
    with pytest.raises(ValueError, match="not a dataset folder"):
        load_dataset(tmp_path)
    write_jsonl(tmp_path / "corpus.jsonl", [{"title": "x", "text": "y"}])
    (tmp_path / "queries.jsonl").write_text("")
    (tmp_path / "qrels.txt").write_text("q1 0 d1 1\n")
    with pytest.raises(ValueError, match=r"corpus.jsonl:1: needs one of the fields \('_id'"):
        load_dataset(tmp_path)


def test_limit_keeps_queries_and_judged_documents() -> None:
    ds = toy_dataset()
    small = ds.limit(2)
    assert list(small.queries) == ["q1", "q2"] and len(small.corpus) == 5
    tight = ds.limit(2, corpus=1)
    assert list(tight.corpus) == ["d1", "d2", "d3"]  # judged d1, d2 + the first other one
    with pytest.raises(ValueError, match="limit queries"):
        ds.limit(-1)


def test_jsquad_sample_counts() -> None:
    ds = load_dataset(SAMPLE)
    assert (len(ds.corpus), len(ds.queries)) == (64, 227)
    assert ds.corpus["梅雨-0"].title == "梅雨"
    assert not ds.corpus["梅雨-0"].text.startswith("梅雨 [SEP]")


@pytest.mark.skipif(not JSQUAD_DIR.is_dir(), reason="set RAG_SPLADE_JSQUAD_DIR to JSQuAD v1.3")
def test_jsquad_valid_counts() -> None:
    ds = load_dataset(JSQUAD_DIR, split="valid")
    assert (len(ds.corpus), len(ds.queries)) == (1145, 4442)


# -- metrics -----------------------------------------------------------------------------------
def test_metrics_on_a_hand_built_run() -> None:
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
    # q1: relevant 1st; q2: relevant 3rd; q3: not retrieved at all.
    ranked = {"q1": {"d1": 3.0, "x": 1.0}, "q2": {"a": 3.0, "b": 2.0, "d2": 1.0}}
    scores = compute_metrics(qrels, ranked)
    assert scores["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 3, abs=1e-12)
    assert scores["mrr@10"] == pytest.approx((1 + 1 / 3) / 3, abs=1e-12)
    assert scores["recall@10"] == pytest.approx(2 / 3, abs=1e-12)
    assert scores["recall@100"] == pytest.approx(2 / 3, abs=1e-12)
    assert compute_metrics(qrels, ranked, ["recall@2"]) == {"recall@2": pytest.approx(1 / 3)}
    with pytest.raises(ValueError, match="unknown metric 'foo@10'"):
        compute_metrics(qrels, ranked, ["foo@10"])


def test_compare_runs_paired_t_test() -> None:
    from scipy.stats import ttest_rel

    qrels = {f"q{i}": {"good": 1} for i in range(6)}
    strong = {q: {"good": 2.0, "bad": 1.0} for q in qrels}
    weak = {q: ({"good": 2.0, "bad": 1.0} if i < 2 else {"bad": 2.0, "good": 1.0})
            for i, q in enumerate(qrels)}  # fmt: skip
    out = compare_runs(qrels, {"strong": strong, "weak": weak}, "strong", ["mrr@10"])
    assert out["strong"]["p_values"] == {}
    assert out["weak"]["scores"]["mrr@10"] == pytest.approx((2 + 4 * 0.5) / 6)
    expected = ttest_rel([1.0] * 6, [1, 1, 0.5, 0.5, 0.5, 0.5]).pvalue
    assert out["weak"]["p_values"]["mrr@10"] == pytest.approx(expected, rel=1e-6)
    same = compare_runs(qrels, {"strong": strong, "copy": dict(strong)}, "strong", ["mrr@10"])
    assert same["copy"]["p_values"] == {"mrr@10": None}  # undefined, not NaN in the JSON
    with pytest.raises(ValueError, match="baseline 'bm25'"):
        compare_runs(qrels, {"strong": strong}, "bm25")


# -- runs --------------------------------------------------------------------------------------
def test_run_names() -> None:
    assert RunSpec.parse("hybrid-rrf-w0.25").weights == (0.25, 1.0)
    assert [s.name for s in parse_runs("bm25,hybrid-rrf", sweep=(0.5, 1, 2))] == [
        "bm25",
        "hybrid-rrf",
        "hybrid-rrf-w0.5",
        "hybrid-rrf-w2",
    ]
    with pytest.raises(ValueError, match="unknown run 'splade'"):
        RunSpec.parse("splade")
    with pytest.raises(ValueError, match="unknown run 'hybrid-rrf-w0'"):
        RunSpec.parse("hybrid-rrf-w0")


def test_best_chunk_per_document() -> None:
    def hit(doc: str, chunk: int, score: float) -> SearchHit:
        return SearchHit(f"{doc}#{chunk}", doc, chunk, "", {}, score)

    hits = [hit("a", 1, 0.9), hit("b", 0, 0.8), hit("a", 0, 0.7), hit("c", 0, 0.6)]
    assert best_chunk_per_document(hits, 10) == {"a": 0.9, "b": 0.8, "c": 0.6}
    assert best_chunk_per_document(hits, 2) == {"a": 0.9, "b": 0.8}


def test_bm25_tokens_and_ranking() -> None:
    assert tokenize("梅雨の季節に雨が降った。") == ["梅雨", "季節", "雨", "降る"]
    assert tokenize("梅雨の季節に雨が降った。", "surface") == ["梅雨", "季節", "雨", "降っ"]
    bm25 = BM25Retriever(DOCS)
    assert list(bm25.search("空港と梅雨", 10)) == ["d1", "d4"]
    assert bm25.search("ありがとう", 10) == {}  # no shared content word: no ranking


def test_bm25_only_evaluation_is_exact_and_loads_no_model(monkeypatch) -> None:
    def no_models(*args, **kwargs):
        raise AssertionError("a bm25-only evaluation must not load models")

    monkeypatch.setattr(HybridIndex, "from_settings", no_models)
    report = evaluate(None, toy_dataset(), runs="bm25", latency_queries=2)
    scores = report.run("bm25").metrics
    # q1-q3: the relevant document 1st; q4: 2nd.
    assert scores["ndcg@10"] == pytest.approx((3 + 1 / math.log2(3)) / 4, abs=1e-12)
    assert scores["mrr@10"] == pytest.approx(3.5 / 4, abs=1e-12)
    assert scores["recall@10"] == scores["recall@100"] == 1.0
    assert report.run("bm25").latency["queries"] == 2
    assert report.baseline == "bm25"


def test_index_runs(tiny_settings: Settings, tmp_path: Path) -> None:
    ds = toy_dataset().limit(3)  # q1-q3 share content words with their document only
    report = evaluate(
        tiny_settings,
        ds,
        runs="sparse,dense,hybrid-rrf,hybrid-dbsf",
        rrf_sweep=(2,),
        latency_queries=1,
        index_path=tmp_path / "index",
    )
    assert [r.name for r in report.runs] == [
        "sparse",
        "dense",
        "hybrid-rrf",
        "hybrid-dbsf",
        "hybrid-rrf-w2",
    ]
    assert report.baseline == "hybrid-rrf"
    assert report.run("sparse").metrics == {
        "ndcg@10": 1.0,
        "recall@10": 1.0,
        "recall@100": 1.0,
        "mrr@10": 1.0,
    }
    for r in report.runs:
        assert r.latency["p50_ms"] > 0 and r.latency["queries"] == 1
        assert all(0.0 <= v <= 1.0 for v in r.metrics.values())
        assert all(r.name != report.baseline for _ in r.p_values)
    assert report.dataset["chunks"] == 5
    # The same corpus and models reuse the index; another corpus in it is refused.
    again = evaluate(
        tiny_settings, ds, runs="sparse", latency_queries=0, index_path=tmp_path / "index"
    )
    assert again.run("sparse").metrics == report.run("sparse").metrics
    with pytest.raises(ValueError, match="already holds 5 chunks"):
        evaluate(
            tiny_settings,
            ds.limit(1, corpus=0),
            runs="sparse",
            latency_queries=0,
            index_path=tmp_path / "index",
        )
    pruned = tiny_settings.model_copy(update={"document_min_weight": 1.0})
    with pytest.raises(ValueError, match="already holds 5 chunks"):  # other document vectors
        evaluate(pruned, ds, runs="sparse", latency_queries=0, index_path=tmp_path / "index")


def test_evaluate_validates_arguments() -> None:
    with pytest.raises(ValueError, match="baseline 'dense' is not one of the runs"):
        evaluate(None, toy_dataset(), runs="bm25", baseline="dense")
    with pytest.raises(ValueError, match="stat_test must be one of"):
        evaluate(None, toy_dataset(), runs="bm25", stat_test="wilcoxon")
    with pytest.raises(TypeError, match="needs a HybridIndex, a Settings or None"):
        evaluate("settings", toy_dataset(), runs="sparse")  # type: ignore[arg-type]


# -- report and CLI ----------------------------------------------------------------------------
def test_report_outputs(tmp_path: Path) -> None:
    latency = {"p50_ms": 1.5, "p95_ms": 3.0, "mean_ms": 2.0, "queries": 4}
    report = EvaluationReport(
        dataset={"name": "toy", "queries": 4, "documents": 5},
        metrics=["ndcg@10"],
        baseline="a",
        stat_test="student",
        alpha=0.05,
        runs=[
            RunResult("a", {"ndcg@10": 0.5}, {}, latency),
            RunResult("b", {"ndcg@10": 0.25}, {"ndcg@10": 0.01}, latency),
        ],
    )
    markdown = report.to_markdown()
    assert "| **a** (baseline) | 0.5000 | 1.5 | 3.0 |" in markdown
    assert "| b | 0.2500† | 1.5 | 3.0 |" in markdown
    assert json.loads(report.to_json(tmp_path / "r.json"))["runs"][1]["p_values"] == {
        "ndcg@10": 0.01
    }
    png = report.plot(tmp_path / "r.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_end_to_end(tmp_path: Path, lexical_splade_path: Path, lexical_dense_path: Path,
                        capsys) -> None:  # fmt: skip
    data = tmp_path / "toy"
    data.mkdir()
    write_toy_files(data)
    (data / "qrels").mkdir()
    rows = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, r in QRELS.items() for d in r]
    (data / "qrels" / "test.tsv").write_text("\n".join(rows) + "\n")
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    out = tmp_path / "out"
    args = parser.parse_args(
        [
            str(data),
            "--runs",
            "bm25,sparse,hybrid-rrf",
            "--sparse-model",
            str(lexical_splade_path),
            "--dense-model",
            str(lexical_dense_path),
            "--device",
            "cpu",
            "--limit",
            "3",
            "--latency-queries",
            "1",
            "--output-dir",
            str(out),
            "--quiet",
        ]
    )
    assert run(args) == 0
    printed = capsys.readouterr().out
    assert "| **hybrid-rrf** (baseline) |" in printed and "| bm25 | 1.0000 |" in printed
    result = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in result["runs"]] == ["bm25", "sparse", "hybrid-rrf"]
    assert result["dataset"]["queries"] == 3
    assert (out / "results.md").read_text().startswith("**toy/test**")
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit):
        parser.parse_args([str(data), "--limit", "-1"])

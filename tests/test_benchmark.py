"""The benchmark at tiny sizes: every row is reported, with positive finite numbers.

No timing is asserted: the figures depend on the machine and its load. The full run is
`slow` (each encoding path starts a Python process that imports torch, and the serving rows
start the service twice); its inputs are the fewest that still give every statistic.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
from pathlib import Path

import pytest

from rag_splade.pipelines.benchmark import add_arguments, run
from rag_splade.pipelines.benchmark.common import BenchContext, document_texts, jsquad
from rag_splade.pipelines.benchmark.encode import text_sets
from rag_splade.pipelines.benchmark.store import make_points, make_queries
from rag_splade.sample import sample_path

EXPECTED_ROWS = {
    "encode": [
        f"sample: {name}"
        for name in (
            "rag_splade SpladeEncoder float32",
            "rag_splade SpladeEncoder bfloat16",
            "rag_splade SpladeEncoder float32, 1 tokenizer workers",
            "rag_splade SpladeEncoder float32, ONNX Runtime",
            "rag_splade SpladeEncoder, ONNX Runtime int8",
            "rag_splade SpladeEncoder, PyTorch dynamic int8",
            "sentence-transformers encode_document float32",
            "LlamaIndex default_sparse_encoder fp32, torch.no_grad",
            "LlamaIndex default_sparse_encoder fp32, as QdrantVectorStore calls it",
        )
    ],
    "tokenizer": [
        "bundled sample: BertJapaneseTokenizer",
        "bundled sample: fast path (MeCab -Owakati + Rust WordPiece)",
        "JSQuAD valid + test: BertJapaneseTokenizer",
        "JSQuAD valid + test: fast path (MeCab -Owakati + Rust WordPiece)",
    ],
    "query": [
        "SPLADE query (SpladeEncoder.encode_queries)",
        "dense query (DenseEncoder.encode_queries)",
        "sparse + dense overlapped (2 threads)",
        "hybrid search, top 10, no explanations",
        "hybrid search, top 10, explained",
        "hybrid search, top 10, no explanations, real sparsity",
        "hybrid search, top 10, explained, real sparsity",
    ],
    "store": [
        "EdgeStore, 200 points, before optimize()",
        "EdgeStore, 200 points, after optimize()",
        "QdrantServerStore (qdrant-client local mode), 200 points",
        "LlamaIndex QdrantVectorStore hybrid (same client), 200 points",
    ],
    "size": [
        "unpruned, float32",
        "top-32, float32",
        "weights ≥ 1.5, float32",
        "unpruned, float16",
        "top-32, float16",
        "weights ≥ 1.5, float16",
    ],
    "serving": [
        "micro-batching on, concurrency 1",
        "micro-batching on, concurrency 4",
        "micro-batching on, concurrency 4, explanations and context on",
        "micro-batching off, concurrency 1",
        "micro-batching off, concurrency 4",
    ],
    "explain": [
        "lexical test model: without explanations",
        "lexical test model: with explanations",
        "random model: without explanations",
        "random model: with explanations",
    ],
    "rerank": [
        "hybrid search, no rerank",
        "hybrid search + rerank of 20 candidates",
        "hybrid search + rerank of 50 candidates",
        "hybrid search + rerank of 100 candidates",
    ],
    "filtered": [
        f"{kind}, {label} payload indexes"
        for label in ("without", "with")
        for kind in (
            "unfiltered, every tenant",
            "source filter (2%), every tenant",
            "tenant-00 (half the points)",
            "tenant-07 (about 2.6%)",
            "tenant-07 + source filter",
        )
    ],
    "remote": [
        f"{kind} documents, batch {size}" for size in (1, 8) for kind in ("SPLADE", "dense")
    ],
    "scale": [
        f"300 points, {variant}: {kind}"
        for variant in ("default", "int8", "int8-lean", "mmap")
        for kind in (
            "index",
            "unfiltered hybrid",
            "filter on an indexed field (source, 2%)",
            "filter on an unindexed field (topic, 2%)",
            "tenant-scoped (tenant-07, about 2.6%)",
        )
    ],
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def bench_models(
    tmp_path_factory: pytest.TempPathFactory,
    random_splade_path: Path,
    random_dense_path: Path,
    lexical_splade_path: Path,
) -> Path:
    """A `--model-dir` holding the session's tiny models under the benchmark's names: the
    same shapes (hidden 64, 2 layers) that `--tiny` would build, built once per session."""
    folder = tmp_path_factory.mktemp("bench-models")
    (folder / "splade-tiny").symlink_to(random_splade_path, target_is_directory=True)
    (folder / "dense-tiny").symlink_to(random_dense_path, target_is_directory=True)
    (folder / "splade-lexical").symlink_to(lexical_splade_path, target_is_directory=True)
    return folder


@pytest.fixture(scope="module")
def jsquad_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in JSQuAD folder: the bundled sample as its valid and test files."""
    folder = tmp_path_factory.mktemp("jsquad")
    for name in ("valid-v1.3.json", "test-v1.3.json"):
        shutil.copy(sample_path(), folder / name)
    return folder


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory, bench_models: Path, jsquad_dir) -> dict:
    out = tmp_path_factory.mktemp("bench")
    args = parse(
        [
            "--tiny",
            "--encode-sets=sample",  # the sets themselves: test_encode_text_sets
            f"--jsquad-dir={jsquad_dir}",
            "--docs=3",  # 2 warm up each path, then all 3 are timed
            "--queries=4",
            "--points=200",
            "--store-queries=5",
            "--local-queries=2",
            "--prune-k=32",
            "--prune-min-weight=1.5",
            "--dtype=float32,bfloat16",
            "--tokenizer-workers=1",
            "--serving-concurrency=1,4",
            "--serving-requests=8",
            "--serving-docs=8",
            "--explain-queries=3",
            "--rerank-queries=2",
            "--filter-points=2000",  # enough for the small tenant to hold the filtered source
            "--filter-queries=3",
            "--remote-batch-sizes=1,8",
            "--remote-texts=8",
            "--scale-points=300",
            "--scale-queries=3",
            "--scale-recall-queries=2",
            f"--scale-dir={out}",
            f"--model-dir={bench_models}",
            f"--json={out / 'bench.json'}",
        ]
    )
    assert run(args) == 0
    return json.loads((out / "bench.json").read_text())


@pytest.mark.slow
def test_every_row_is_reported_with_sane_numbers(results: dict) -> None:
    sections = results["sections"]
    assert list(sections) == [
        "encode",
        "tokenizer",
        "query",
        "store",
        "size",
        "serving",
        "explain",
        "rerank",
        "filtered",
        "remote",
        "scale",
    ]
    for name, expected in EXPECTED_ROWS.items():
        rows = {row["name"]: row for row in sections[name]["rows"]}
        assert list(rows) == expected, name
        for row in rows.values():
            assert row["status"] == "ok", row
            assert row["metrics"], row
            for key, value in row["metrics"].items():
                assert math.isfinite(value), (row["name"], key)
                if "ndcg_loss_pct" not in key:  # a variant may even score a little higher
                    assert value >= 0, (row["name"], key)
    encode = {r["name"]: r["metrics"] for r in sections["encode"]["rows"]}
    for metrics in encode.values():
        assert metrics["docs_per_s"] > 0 and metrics["tokens_per_s"] > 0
        assert metrics["peak_mem_gb"] > 0
    assert 0 < encode["sample: rag_splade SpladeEncoder bfloat16"]["cosine"] <= 1.0 + 1e-6
    for kind in ("rag_splade SpladeEncoder bfloat16", "rag_splade SpladeEncoder, ONNX Runtime int8",
                 "rag_splade SpladeEncoder, PyTorch dynamic int8"):  # fmt: skip
        gated = encode[f"sample: {kind}"]
        assert 0 < gated["gate_top20"] <= 1 and 0 < gated["top20_overlap"] <= 1
        assert abs(gated["gate_ndcg_loss_pct"]) < 100
    assert "gate_top20" not in encode["sample: rag_splade SpladeEncoder float32"]
    assert any(n.startswith("Fidelity gates (lexical") for n in sections["encode"]["notes"])
    tokenizer = {r["name"]: r["metrics"] for r in sections["tokenizer"]["rows"]}
    fast = tokenizer["JSQuAD valid + test: fast path (MeCab -Owakati + Rust WordPiece)"]
    assert fast["identical_pct"] == 100 and fast["texts"] == 128 and fast["x_slow"] > 0
    query = {r["name"]: r["metrics"] for r in sections["query"]["rows"]}
    explained = query["hybrid search, top 10, explained"]
    assert explained["x_splade"] == pytest.approx(
        explained["p50_ms"] / query["SPLADE query (SpladeEncoder.encode_queries)"]["p50_ms"]
    )
    assert any("Breakdown of the explained search" in n for n in sections["query"]["notes"])
    for row in sections["query"]["rows"] + sections["store"]["rows"]:
        if "p50_ms" in row["metrics"]:
            m = row["metrics"]
            assert 0 < m["p50_ms"] <= m["p95_ms"] <= m["p99_ms"]
    for row in sections["serving"]["rows"]:
        m = row["metrics"]
        assert m["requests_per_s"] > 0 and 0 < m["p50_ms"] <= m["p95_ms"]
        assert m["mean_batch"] >= 1
    off = [r for r in sections["serving"]["rows"] if "off" in r["name"]]
    assert all(r["metrics"]["mean_batch"] == 1 for r in off)
    assert any(n.startswith("micro_batching_ratio_at_4=") for n in sections["serving"]["notes"])
    explained = [r["metrics"] for r in sections["explain"]["rows"] if "with " in r["name"]]
    assert all(m["x_unexplained"] > 0 and m["shared_terms"] >= 1 for m in explained)
    size = {r["name"]: r["metrics"] for r in sections["size"]["rows"]}
    assert size["top-32, float16"]["bytes"] < size["unpruned, float32"]["bytes"]
    filtered = {r["name"]: r["metrics"] for r in sections["filtered"]["rows"]}
    for label in ("without", "with"):  # the same points match with or without an index
        matching = filtered[f"tenant-07 + source filter, {label} payload indexes"]["matching"]
        assert (
            0 < matching < filtered[f"tenant-07 (about 2.6%), {label} payload indexes"]["matching"]
        )
        assert filtered[f"unfiltered, every tenant, {label} payload indexes"]["matching"] == 2000
    scale = {r["name"]: r["metrics"] for r in sections["scale"]["rows"]}
    for variant in ("default", "int8", "int8-lean", "mmap"):
        assert scale[f"300 points, {variant}: unfiltered hybrid"]["matching"] == 300
        index = scale[f"300 points, {variant}: index"]
        assert 0 < index["recall_hybrid"] <= 1 and index["disk_per_point"] > 0
    assert any(n.startswith("Goal hybrid p50 <= 10 ms") for n in sections["scale"]["notes"])
    rerank = {r["name"]: r for r in sections["rerank"]["rows"]}
    for n in (20, 50, 100):
        m = rerank[f"hybrid search + rerank of {n} candidates"]["metrics"]
        assert m["x_search"] > 0 and m["ms_per_pair"] > 0
    # the bundled corpus has 64 paragraphs: a row that could not rerank 100 says so
    assert "64 chunks" in rerank["hybrid search + rerank of 100 candidates"]["note"]
    assert size["weights ≥ 1.5, float32"]["terms"] < size["unpruned, float32"]["terms"]
    assert 0 < size["unpruned, float32"]["ndcg10"] <= 1


@pytest.mark.slow
def test_machine_and_notes_are_recorded(results: dict) -> None:
    machine = results["machine"]
    assert machine["cpu"] and machine["cores"] >= 1 and machine["torch"]
    assert "gpu" in machine and isinstance(machine["cpu_isa"], list)
    for name in ("encode", "tokenizer", "query"):  # the CPU and its instruction sets
        assert results["sections"][name]["notes"][0].startswith(f"CPU: {machine['cpu']}")
    assert any("Fidelity" in note for note in results["sections"]["encode"]["notes"])


def test_markdown_table_is_printed(bench_models, capsys) -> None:
    args = parse(["--tiny", "--sections=size", "--prune-k=16", f"--model-dir={bench_models}"])
    assert run(args) == 0
    out = capsys.readouterr().out
    assert "Machine:" in out
    assert "| unpruned, float32 |" in out
    assert "|---|" in out


def test_unknown_section_is_refused(capsys) -> None:
    assert run(parse(["--sections=encode,nope"])) == 2
    assert "nope" in capsys.readouterr().err


def test_list_flags_name_what_they_expect(capsys) -> None:
    with pytest.raises(SystemExit):
        parse(["--prune-min-weight=0.5,high"])
    assert "expected comma-separated float values, got '0.5,high'" in capsys.readouterr().err


def test_synthetic_store_data_looks_like_splade() -> None:
    points = make_points(50)
    lengths = [len(p.sparse) for p in points]
    assert min(lengths) >= 150 and max(lengths) <= 400
    assert all(p.sparse.indices.max() < 32768 and (p.sparse.values > 0).all() for p in points)
    queries = make_queries(20)
    assert all(20 <= len(q) <= 40 for q, _ in queries)
    assert all(abs(float((d * d).sum()) - 1.0) < 1e-4 for _, d in queries)


def test_encode_text_sets(jsquad_dir: Path) -> None:
    paragraphs, _ = jsquad()
    ctx = BenchContext({}, {}, "", paragraphs, [], doc_texts=paragraphs[:5], query_texts=[])
    args = parse([f"--jsquad-dir={jsquad_dir}", "--jsquad-docs=4", "--window-docs=3"])
    sets, notes = text_sets(args, ctx)
    assert [label for label, _ in sets] == ["sample", "JSQuAD", "512-token windows"]
    assert [len(texts) for _, texts in sets] == [5, 4, 3] and not notes
    assert all(" [SEP] " in text for text in sets[1][1])  # as JSQuAD writes it, title included
    args = parse(["--jsquad-dir=", "--encode-sets=jsquad,sample"])
    sets, notes = text_sets(args, ctx)
    assert [label for label, _ in sets] == ["sample"] and "no --jsquad-dir" in notes[0]
    with pytest.raises(ValueError, match=r"--encode-sets: unknown \['long'\]"):
        text_sets(parse(["--encode-sets=sample,long"]), ctx)


def test_document_texts_fill_512_tokens() -> None:
    paragraphs, questions = jsquad()
    assert len(paragraphs) == 64 and questions
    docs = document_texts(paragraphs, 5, "512")
    assert len(set(docs)) == 5 and all(len(d) == 1400 for d in docs)
    assert document_texts(paragraphs, 70, "natural")[64] == paragraphs[0]

"""The scale section's parts on a few hundred points: data, shard variants, requests, report.

The full section runs (tiny) in tests/test_benchmark.py; nothing here asserts a time.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pytest

from rag_splade.pipelines.benchmark import add_arguments
from rag_splade.pipelines.benchmark import scale_shard as s
from rag_splade.pipelines.benchmark.common import Section
from rag_splade.pipelines.benchmark.scale import from_results, goal_notes, rows_of, run_worker
from rag_splade.pipelines.benchmark.scale_worker import build, measure


def test_batches_do_not_depend_on_what_came_before() -> None:
    one, other = s.Stream(0), s.Stream(0)
    list(one.batches(3 * s.BATCH))
    a, b = one.batch(2, 3 * s.BATCH), other.batch(2, 3 * s.BATCH)
    assert [p.doc_id for p in a] == [f"doc-{i}" for i in range(2 * s.BATCH, 3 * s.BATCH)]
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x.sparse.indices, y.sparse.indices)
        assert np.array_equal(x.dense, y.dense)
    assert len(one.batch(1, s.BATCH + 5)) == 5  # the last batch stops at n
    assert all(150 <= len(p.sparse) <= 400 and (p.sparse.values > 0).all() for p in a)
    assert all(abs(float(p.dense @ p.dense) - 1) < 1e-4 for p in a)


def test_a_query_is_nearest_its_own_document() -> None:
    stream = s.Stream(0)
    points = stream.batch(0, 500)
    rng = np.random.default_rng(1)
    dense = np.stack([p.dense for p in points])
    for target in (0, 17, 499):
        sparse, q = stream.query_from(points[target], rng)
        assert int(np.argmax(dense @ q)) == target
        shared = set(sparse.indices.tolist()) & set(points[target].sparse.indices.tolist())
        assert len(shared) >= 10


def test_the_two_metadata_fields_are_equally_selective_and_unrelated() -> None:
    metadata = [s.metadata_of(i) for i in range(10_000)]
    source = sum(m["source"] == "s07" for m in metadata)
    topic = sum(m["topic"] == "t07" for m in metadata)
    both = sum(m["source"] == "s07" and m["topic"] == "t07" for m in metadata)
    assert source == topic == 200 and both < 20


def test_an_unknown_variant_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"unknown scale variant 'pq'.*default.*int8.*mmap"):
        s.edge_config("pq")


@pytest.mark.parametrize("variant", list(s.VARIANTS))
def test_build_and_measure_each_variant(tmp_path: Path, variant: str) -> None:
    spec = {"folder": str(tmp_path), "points": 600, "variant": variant, "queries": 4,
            "recall_queries": 2, "kind_budget_s": 60.0}  # fmt: skip
    built = build(spec)
    assert built["upsert_per_s"] > 0 and built["segments"] >= 1
    assert 0 < built["wal_bytes"] < built["disk_bytes"]
    measured = measure(spec)
    assert measured["points"] == 600 and measured["open_s"] > 0
    kinds = measured["kinds"]
    assert list(kinds) == list(s.KINDS)
    assert kinds["unfiltered hybrid"]["matching"] == 600
    assert kinds["filter on an indexed field (source, 2%)"]["matching"] == 12
    assert kinds["filter on an unindexed field (topic, 2%)"]["matching"] == 12
    assert 0 < kinds["tenant-scoped (tenant-07, about 2.6%)"]["matching"] < 30
    assert all(k["queries"] == 4 and k["p50_ms"] <= k["p99_ms"] for k in kinds.values())
    assert 0 < measured["recall_hybrid"] <= 1 and 0 < measured["recall_dense"] <= 1
    assert measured["rss_queried"]["rss"] >= measured["rss_queried"]["anon"] > 0


def test_the_variants_differ_where_they_say(tmp_path: Path) -> None:
    configs = {name: s.edge_config(name) for name in s.VARIANTS}
    dense = {name: c.vectors[s.SPEC.dense_name] for name, c in configs.items()}
    assert dense["default"].quantization_config is None
    assert dense["int8"].quantization_config is not None
    assert str(dense["int8"].memory) == str(dense["mmap"].memory) == "Memory.Cold"
    sparse = configs["mmap"].sparse_vectors[s.SPEC.sparse_name]
    assert str(sparse.memory) == "Memory.Cold" and configs["mmap"].hnsw_config is not None


def test_a_failing_step_says_why(tmp_path: Path) -> None:
    spec = {"folder": str(tmp_path), "points": 10, "variant": "pq", "queries": 1}
    result, status = run_worker("build", spec, memory_cap_gb=8, timeout_s=120)
    assert result is None and status.startswith("failed:") and "'pq'" in status


def test_disk_bytes_count_allocated_blocks(tmp_path: Path) -> None:
    (tmp_path / "wal").mkdir()
    (tmp_path / "wal" / "seg").write_bytes(b"x" * 10_000)
    with (tmp_path / "holey").open("wb") as f:  # a sparse file: large apparent size
        f.seek(50_000_000)
        f.write(b"x")
    total, wal = s.disk_bytes(tmp_path)
    assert 10_000 <= wal <= total < 1_000_000


def _result(n: int, p50: float, ram_per_point: float) -> dict:
    kinds = {k: {"p50_ms": p50, "p99_ms": 2 * p50, "queries": 20.0, "matching": 1.0}
             for k in s.KINDS}  # fmt: skip
    before = {"rss": 100_000_000, "anon": 50_000_000, "file": 50_000_000}
    after = {k: v + int(ram_per_point * n) for k, v in before.items()}
    return {"points": n, "upsert_per_s": 1.0, "optimize_s": 1.0, "open_s": 1.0,
            "rss_before": before, "rss_queried": after, "disk_bytes": 9 * n, "wal_bytes": n,
            "segments": 2, "recall_hybrid": 0.9, "recall_dense": 0.8, "kinds": kinds}  # fmt: skip


def test_goals_are_stated_met_or_not_and_extrapolated_below_a_million() -> None:
    measured = {
        (100_000, "int8"): _result(100_000, 4.0, 2_000),
        (1_000_000, "int8"): _result(1_000_000, 12.0, 3_000),
        (10_000, "default"): _result(10_000, 2.0, 5_000),
        (100_000, "default"): _result(100_000, 4.0, 5_000),
    }
    notes = goal_notes(measured, ["default", "int8"])
    default, extra, int8 = notes
    assert "default at 100,000 points (not 1M): 4.00 ms, met" in default
    assert "~8.0 ms" in extra and "resident memory ~5.0 GB" in extra
    assert "int8 at 1,000,000 points: 12.00 ms, NOT met" in int8
    assert "RAM 3,000 B/point, goal <= 2,500 B/point with quantisation NOT met" in int8


def test_rows_and_a_report_from_a_results_file(tmp_path: Path) -> None:
    rows = rows_of("1,000 points, default", 1000, _result(1000, 3.0, 4_000))
    assert [r.name for r in rows] == ["1,000 points, default: index"] + [
        f"1,000 points, default: {k}" for k in s.KINDS
    ]
    assert rows[0].metrics["ram_per_point"] == 4_000 and rows[0].metrics["disk_per_point"] == 9
    path = tmp_path / "results.jsonl"
    lines = [{"label": f"{n:,} points, default", **_result(n, 3.0, 4_000)} for n in (10, 100)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args([f"--scale-results={path}"])
    section = from_results(Section("scale", "t", []), path, args)
    assert len(section.rows) == 10
    assert any(n.startswith("Growth 10 -> 100 points (x10), default") for n in section.notes)

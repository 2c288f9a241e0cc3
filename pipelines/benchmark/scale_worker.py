"""One scale step in its own process, so that its memory is its own.

`python -m rag_splade.pipelines.benchmark.scale_worker build SPEC.json`: create a shard of
the spec's variant, upsert `points` synthetic points (timed without their making), save
the queries, optimize (timed), close; measure the disk. `... measure SPEC.json`: open the
shard (timed), run every kind of query (`scale_shard.KINDS`) through the store's own
hybrid request, read the resident memory, then the recall of the hybrid and the dense top
10 against exact search. Each prints one `RESULT {json}` line.
"""

from __future__ import annotations

import json
import resource
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from rag_splade.store.filters import parse_filters

from . import scale_shard as s
from .common import percentiles
from .store import hybrid

SHARD = "shard"
QUERIES = "queries.npz"


def build(spec: dict[str, Any]) -> dict[str, Any]:
    folder, n = Path(spec["folder"]), int(spec["points"])
    shard = s.create_shard(folder / SHARD, spec["variant"])
    store = s.store_over(shard, folder)
    stream = s.Stream(spec.get("seed", 0))
    rng = np.random.default_rng(spec.get("seed", 0) + 1)
    targets = set(rng.choice(n, min(n, spec["queries"]), replace=False).tolist())
    queries: list[tuple[Any, Any]] = []
    upsert_s = 0.0
    for batch in stream.batches(n):  # the points are made outside the timed upserts
        first = int(batch[0].doc_id.split("-")[1])
        queries += [stream.query_from(p, rng) for i, p in enumerate(batch, first) if i in targets]
        t1 = time.perf_counter()
        store.upsert(batch)
        upsert_s += time.perf_counter() - t1
    order = np.random.default_rng(7).permutation(len(queries))  # not in document order
    _save_queries(folder / QUERIES, [queries[i] for i in order])
    start = time.perf_counter()
    shard.optimize()
    optimize_s = time.perf_counter() - start
    segments = shard.info().segments_count
    shard.close()
    total, wal = s.disk_bytes(folder / SHARD)
    return {
        "upsert_per_s": n / upsert_s,
        "optimize_s": optimize_s,
        "segments": segments,
        "disk_bytes": total,
        "wal_bytes": wal,
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def measure(spec: dict[str, Any]) -> dict[str, Any]:
    folder = Path(spec["folder"])
    queries = _load_queries(folder / QUERIES)
    before = s.rss()
    start = time.perf_counter()
    shard = qe.EdgeShard.load(str(folder / SHARD))
    open_s = time.perf_counter() - start
    opened = s.rss()
    store = s.store_over(shard, folder)
    kinds: dict[str, Any] = {}
    for name, (tenant, filters) in s.KINDS.items():
        conditions = parse_filters(filters)

        def ask(q: Any, tenant: str = tenant, conditions: Any = conditions) -> Any:
            return store.query(replace(hybrid(q), conditions=conditions, tenant=tenant))

        kinds[name] = {
            **timed(ask, queries, spec.get("kind_budget_s", 60.0)),
            "matching": float(store.count(conditions, tenant=tenant)),
        }
    queried = s.rss()  # before the exact searches, which read every dense vector
    few = queries[: spec["recall_queries"]]
    result = {
        "open_s": open_s,
        "rss_before": before,
        "rss_opened": opened,
        "rss_queried": queried,
        "kinds": kinds,
        "recall_hybrid": _recall(shard, few, s.fused_request),
        "recall_dense": _recall(shard, few, s.dense_request),
        "points": shard.count(qe.CountRequest(exact=True)),
    }
    shard.close()
    return result


def timed(fn: Any, queries: list[Any], budget_s: float, least: int = 20) -> dict[str, float]:
    """p50/p95/p99 over the queries, stopping early once `budget_s` is spent and `least`
    queries are timed (a slow kind at a million points would otherwise take an hour)."""
    fn(queries[0])  # warm-up
    samples: list[float] = []
    spent = 0.0
    for q in queries:
        start = time.perf_counter()
        fn(q)
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
        if spent > budget_s and len(samples) >= least:
            break
    return {**percentiles(samples), "queries": float(len(samples))}


def _recall(shard: qe.EdgeShard, queries: list[Any], request: Any) -> float:
    """Mean share of the exact top 10 that the approximate top 10 holds."""
    found = []
    for q in queries:
        approx = {str(p.id) for p in shard.query(request(q, None))}
        exact = {str(p.id) for p in shard.query(request(q, s.EXACT))}
        found.append(len(approx & exact) / max(1, len(exact)))
    return float(np.mean(found)) if found else float("nan")


def _save_queries(path: Path, queries: list[tuple[Any, Any]]) -> None:
    arrays: dict[str, np.ndarray] = {}
    for i, (sparse, dense) in enumerate(queries):
        arrays[f"i{i}"], arrays[f"v{i}"], arrays[f"d{i}"] = sparse.indices, sparse.values, dense
    np.savez(path, **arrays)  # type: ignore[arg-type]  # the stub reads **arrays as allow_pickle


def _load_queries(path: Path) -> list[tuple[Any, Any]]:
    from rag_splade.types import SparseVector

    with np.load(path) as data:
        count = len(data.files) // 3
        return [(SparseVector(data[f"i{i}"], data[f"v{i}"]), data[f"d{i}"]) for i in range(count)]


def main(argv: list[str]) -> int:
    mode, path = argv
    spec = json.loads(Path(path).read_text())
    result = {"build": build, "measure": measure}[mode](spec)
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

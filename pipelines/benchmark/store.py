"""Section 3: hybrid query latency and upsert throughput of the stores, on synthetic vectors.

Synthetic points look like SPLADE output: documents have 150-400 non-zero terms, queries
20-40, term ids drawn Zipf-like over a 32,768-term vocabulary (a few frequent terms, a long
tail), positive weights; dense vectors are 512-d unit vectors. Every store gets the same
points and queries: one hybrid request (sparse + dense prefetch of 100, RRF, top 10).
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from rag_splade.store.base import ChunkPoint, HybridQuery, VectorSpec
from rag_splade.types import SparseVector

from .common import BenchContext, Row, Section, percentiles

VOCAB = 32_768
DENSE = 512
COLUMNS = [
    ("points", "points"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("queries", "queries"),
    ("upsert_per_s", "upsert points/s"),
    ("optimize_s", "optimize s"),
]
UPSERT_BATCH = 256


class Synthetic:
    """Deterministic SPLADE-like sparse vectors and unit dense vectors."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
        weights = 1.0 / (ranks + 10.0) ** 1.07
        self.cdf = np.cumsum(weights) / weights.sum()
        self.term_of_rank = self.rng.permutation(VOCAB).astype(np.int32)

    def sparse(self, low: int, high: int) -> SparseVector:
        nnz = int(self.rng.integers(low, high + 1))
        draws = np.searchsorted(self.cdf, self.rng.random(nnz * 3))
        ids = np.unique(self.term_of_rank[np.minimum(draws, VOCAB - 1)])
        while ids.size < nnz:  # rare: top up from the uniform tail
            ids = np.unique(np.concatenate([ids, self.rng.integers(0, VOCAB, nnz, np.int32)]))
        ids = self.rng.choice(ids, nnz, replace=False)
        values = self.rng.gamma(2.0, 0.5, nnz).astype(np.float32) + 0.01
        return SparseVector(ids, values)

    def dense(self, n: int) -> np.ndarray:
        x = self.rng.standard_normal((n, DENSE)).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_points(n: int, seed: int = 0) -> list[ChunkPoint]:
    gen = Synthetic(seed)
    dense = gen.dense(n)
    return [
        ChunkPoint(
            doc_id=f"doc-{i}",
            chunk_index=0,
            text=f"doc-{i}",
            start=0,
            end=8,
            metadata={},
            sparse=gen.sparse(150, 400),
            dense=dense[i],
            chunk_count=1,
        )
        for i in range(n)
    ]


def make_queries(n: int, seed: int = 1) -> list[tuple[SparseVector, np.ndarray]]:
    gen = Synthetic(seed)
    dense = gen.dense(n)
    return [(gen.sparse(20, 40), dense[i]) for i in range(n)]


def hybrid(query: tuple[SparseVector, np.ndarray]) -> HybridQuery:
    return HybridQuery(mode="hybrid", limit=10, candidates=100, sparse=query[0], dense=query[1])


def time_queries(fn: Any, queries: list[Any]) -> dict[str, float]:
    fn(queries[0])  # warm-up
    samples = []
    for q in queries:
        start = time.perf_counter()
        fn(q)
        samples.append(time.perf_counter() - start)
    return {**percentiles(samples), "queries": float(len(queries))}


def upsert_timed(store: Any, points: list[ChunkPoint]) -> float:
    start = time.perf_counter()
    for i in range(0, len(points), UPSERT_BATCH):
        store.upsert(points[i : i + UPSERT_BATCH])
    return len(points) / (time.perf_counter() - start)


def run(args: Any, ctx: BenchContext) -> Section:
    section = Section("store", "4. Store: hybrid query latency and upserts", COLUMNS)
    sizes = sorted(args.points)
    queries = make_queries(args.store_queries)
    local_queries = queries[: args.local_queries]
    spec = VectorSpec(dense_size=DENSE, sparse_vocab_size=VOCAB)
    points = make_points(max(sizes))
    nnz = np.mean([len(p.sparse) for p in points])
    qnnz = np.mean([len(q[0]) for q in queries])
    for n in sizes:
        print(f"  store: {n:,} points ...", file=sys.stderr, flush=True)
        section.rows += _edge(points[:n], queries, spec)
        if n <= args.local_max_points:
            section.rows += _local(points[:n], local_queries, spec, args.skip_peers)
        else:
            section.rows.append(
                Row(
                    f"qdrant-client local mode, {n:,} points",
                    {"points": float(n)},
                    status="skipped",
                    note=f"--local-max-points {args.local_max_points:,}",
                )
            )
    _speedups(section)
    section.notes.append(
        f"Synthetic points: {nnz:.0f} sparse terms a document and {qnnz:.0f} a query on "
        f"average, Zipf-like term ids over {VOCAB:,}, {DENSE}-d dense; one hybrid request per "
        f"query (sparse and dense prefetch of 100, RRF, top 10, payloads of the 10 hits). "
        f"Edge queries {len(queries)}, local-mode queries {len(local_queries)} (pure-Python "
        f"brute force: measured up to --local-max-points {args.local_max_points:,} points "
        f"only). Upserts in batches of {UPSERT_BATCH}."
    )
    return section


def _edge(points: list[ChunkPoint], queries: list[Any], spec: VectorSpec) -> list[Row]:
    from rag_splade.store.edge import EdgeStore

    n = len(points)
    folder = Path(tempfile.mkdtemp(prefix="rag-splade-bench-edge-"))
    store = EdgeStore(folder / "index")
    try:
        store.open(spec)
        rate = upsert_timed(store, points)
        few = queries[: max(10, len(queries) // 4)]
        before = time_queries(lambda q: store.query(hybrid(q)), few)
        start = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - start
        after = time_queries(lambda q: store.query(hybrid(q)), queries)
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return [
        Row(
            f"EdgeStore, {n:,} points, before optimize()",
            {"points": float(n), **before, "upsert_per_s": rate},
        ),
        Row(
            f"EdgeStore, {n:,} points, after optimize()",
            {"points": float(n), **after, "optimize_s": optimize_s},
        ),
    ]


def _local(
    points: list[ChunkPoint], queries: list[Any], spec: VectorSpec, skip_llama: bool
) -> list[Row]:
    from rag_splade.store.server import QdrantServerStore

    n = len(points)
    store = QdrantServerStore(location=":memory:", collection="bench")
    store.open(spec)
    rate = upsert_timed(store, points)
    stats = time_queries(lambda q: store.query(hybrid(q)), queries)
    rows = [
        Row(
            f"QdrantServerStore (qdrant-client local mode), {n:,} points",
            {"points": float(n), **stats, "upsert_per_s": rate},
        )
    ]
    if not skip_llama:
        try:
            rows.append(_llama(store.client, points, queries))
        except ImportError as e:
            name = f"LlamaIndex QdrantVectorStore hybrid, {n:,} points"
            rows.append(Row(name, status=f"skipped: {e}"))
    store.close()
    return rows


def _llama(client: Any, points: list[ChunkPoint], queries: list[Any]) -> Row:
    """LlamaIndex's QdrantVectorStore, hybrid mode, on the same local-mode client."""
    from llama_index.core.schema import BaseNode, TextNode
    from llama_index.core.vector_stores.types import VectorStoreQuery, VectorStoreQueryMode
    from llama_index.vector_stores.qdrant import QdrantVectorStore

    docs = {p.text: p.sparse for p in points}
    qvecs = {f"q-{i}": q[0] for i, q in enumerate(queries)}

    def lookup(table: dict[str, SparseVector]) -> Any:
        def fn(texts: list[str]) -> tuple[list[list[int]], list[list[float]]]:
            vecs = [table[t.strip()] for t in texts]
            return [v.indices.tolist() for v in vecs], [v.values.tolist() for v in vecs]

        return fn

    store = QdrantVectorStore(
        client=client,
        collection_name="bench_llama_index",
        enable_hybrid=True,
        sparse_doc_fn=lookup(docs),
        sparse_query_fn=lookup(qvecs),
    )
    nodes: list[BaseNode] = [
        TextNode(id_=p.id, text=p.text, embedding=p.dense.tolist()) for p in points
    ]
    start = time.perf_counter()
    store.add(nodes)
    rate = len(nodes) / (time.perf_counter() - start)
    named = [(f"q-{i}", q[1].tolist()) for i, q in enumerate(queries)]

    def search(item: tuple[str, list[float]]) -> Any:
        return store.query(
            VectorStoreQuery(
                query_embedding=item[1],
                query_str=item[0],
                similarity_top_k=100,
                sparse_top_k=100,
                hybrid_top_k=10,
                mode=VectorStoreQueryMode.HYBRID,
            )
        )

    stats = time_queries(search, named)
    return Row(
        f"LlamaIndex QdrantVectorStore hybrid (same client), {len(points):,} points",
        {"points": float(len(points)), **stats, "upsert_per_s": rate},
        note="two requests + client-side fusion",
    )


def _speedups(section: Section) -> None:
    """Note how much faster Edge (optimised) is than local mode at each size measured both."""
    edge = {
        r.metrics["points"]: r.metrics["p50_ms"]
        for r in section.rows
        if r.name.startswith("EdgeStore") and "after" in r.name
    }
    for row in section.rows:
        if row.name.startswith("QdrantServerStore") and "p50_ms" in row.metrics:
            n = row.metrics["points"]
            if n in edge:
                section.notes.append(
                    f"At {n:,.0f} points Edge (optimised) p50 is "
                    f"{row.metrics['p50_ms'] / edge[n]:,.0f}x faster than local mode."
                )
                for m, edge_ms in edge.items():
                    if m > n:  # local mode is a linear scan: scale its time by the size ratio
                        estimate = row.metrics["p50_ms"] * m / n
                        section.notes.append(
                            f"At {m:,.0f} points local mode was not run; scaled linearly from "
                            f"{n:,.0f} points it would take about {estimate:,.0f} ms, "
                            f"{estimate / edge_ms:,.0f}x Edge's optimised p50 (an estimate)."
                        )

"""What the scale section's builder and measurer share: shard variants, data, requests, sizes.

The points are the store section's kind (SPLADE-like sparse vectors, Zipf-like term ids over
32,768 terms; 512-d dense vectors), made batch by batch from a seed so that a million of
them never sit in memory at once. The dense vectors have structure (a 64-d latent space
plus noise) and each query is made from one document (its dense vector plus noise, half
its sparse terms plus Zipf-drawn ones): on independent random 512-d vectors every point is
about as far from a query as every other, which no embedding model produces and which
makes an approximate index look worse than it is.

A variant is an Edge shard configuration built here from qdrant-edge's own API: the store
builds only its default one (`default` below repeats it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import qdrant_edge as qe

from rag_splade.store.base import ChunkPoint, VectorSpec
from rag_splade.store.edge import EdgeStore
from rag_splade.store.tenants import TENANT_FIELD
from rag_splade.types import SparseVector

from .filtered import SOURCES, tenant_of
from .store import DENSE, VOCAB

SPEC = VectorSpec(dense_size=DENSE, sparse_vocab_size=VOCAB)
BATCH = 1024  # points made (and their seed) per batch; upserts go in the store's 256
LATENT = 64
EXACT = qe.SearchParams(exact=True, quantization=qe.QuantizationSearchParams(ignore=True))


@dataclass(frozen=True)
class Variant:
    name: str
    description: str


VARIANTS = {
    v.name: v
    for v in (
        Variant(
            "default", "EdgeStore's configuration: dense float32 (page cache), sparse index in RAM"
        ),
        Variant(
            "int8",
            "dense scalar int8 (quantile 0.99) in RAM, float32 originals on disk (rescoring), "
            "sparse index in RAM",
        ),
        Variant(
            "int8-lean",
            "dense scalar int8 in RAM; float32 originals and the sparse index on disk (mmap, "
            "not pre-warmed)",
        ),
        Variant(
            "mmap",
            "dense float32, HNSW graph, sparse index and payload on disk (mmap, not pre-warmed)",
        ),
    )
}


def edge_config(variant: str) -> qe.EdgeConfig:
    """The Edge shard configuration of a variant (`VARIANTS`)."""
    sparse_float = qe.VectorStorageDatatype.Float32
    if variant == "default":  # what EdgeStore._create builds
        dense = qe.EdgeVectorParams(DENSE, qe.Distance.Cosine)
        sparse = qe.EdgeSparseVectorParams(datatype=sparse_float)
        extra: dict[str, Any] = {}
    elif variant == "int8":
        quantized = qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned
        )
        dense = qe.EdgeVectorParams(
            DENSE, qe.Distance.Cosine, quantization_config=quantized, memory=qe.Memory.Cold
        )
        sparse = qe.EdgeSparseVectorParams(datatype=sparse_float)
        extra = {}
    elif variant == "int8-lean":  # what RAM per point comes to with the sparse index off-heap
        quantized = qe.ScalarQuantizationConfig(
            qe.ScalarType.Int8, quantile=0.99, memory=qe.Memory.Pinned
        )
        dense = qe.EdgeVectorParams(
            DENSE, qe.Distance.Cosine, quantization_config=quantized, memory=qe.Memory.Cold
        )
        sparse = qe.EdgeSparseVectorParams(datatype=sparse_float, memory=qe.Memory.Cold)
        extra = {}
    elif variant == "mmap":
        dense = qe.EdgeVectorParams(DENSE, qe.Distance.Cosine, memory=qe.Memory.Cold)
        sparse = qe.EdgeSparseVectorParams(datatype=sparse_float, memory=qe.Memory.Cold)
        extra = {
            # Qdrant's HNSW defaults, spelled out: a graph on disk needs the whole config
            "hnsw_config": qe.HnswIndexConfig(
                m=16, ef_construct=100, full_scan_threshold=10_000, memory=qe.Memory.Cold
            ),
            "payload_memory": qe.Memory.Cold,
        }
    else:
        raise ValueError(f"unknown scale variant {variant!r}; choose from {sorted(VARIANTS)}")
    return qe.EdgeConfig(
        vectors={SPEC.dense_name: dense}, sparse_vectors={SPEC.sparse_name: sparse}, **extra
    )


def create_shard(folder: Path, variant: str) -> qe.EdgeShard:
    """A new shard of `variant` with the payload indexes EdgeStore makes, plus the indexed
    metadata field `source` (the unindexed `topic` is left without one)."""
    shard = qe.EdgeShard.create(str(folder), edge_config(variant))
    for name, schema in [
        ("doc_id", qe.PayloadSchemaType.Keyword),
        ("chunk_index", qe.PayloadSchemaType.Integer),
        (TENANT_FIELD, qe.KeywordIndexParams(is_tenant=True)),
        ("metadata.source", qe.PayloadSchemaType.Keyword),
    ]:
        shard.update(qe.UpdateOperation.create_field_index(name, schema))  # type: ignore[arg-type]
    return shard


def store_over(shard: qe.EdgeShard, folder: Path) -> EdgeStore:
    """An EdgeStore whose requests (upserts, the hybrid batch, filters, tenants) run on
    `shard`: the queries measured are the store's own, on a shard configured here. Close
    the shard itself, not this store (there is no manifest)."""
    store = EdgeStore(folder)
    store._shard = shard
    store.spec = SPEC
    return store


class Stream:
    """Deterministic points, batch by batch: batch `b` is the same whatever came before."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        ranks = np.arange(1, VOCAB + 1, dtype=np.float64)
        weights = 1.0 / (ranks + 10.0) ** 1.07
        self.cdf = np.cumsum(weights) / weights.sum()
        self.term_of_rank = rng.permutation(VOCAB).astype(np.int32)
        self.mixing = rng.standard_normal((LATENT, DENSE)).astype(np.float32)
        self.seed = seed

    def zipf_terms(self, rng: np.random.Generator, nnz: int) -> np.ndarray:
        draws = np.searchsorted(self.cdf, rng.random(nnz * 3))
        ids = np.unique(self.term_of_rank[np.minimum(draws, VOCAB - 1)])
        while ids.size < nnz:  # rare: top up from the uniform tail
            ids = np.unique(np.concatenate([ids, rng.integers(0, VOCAB, nnz, np.int32)]))
        return rng.choice(ids, nnz, replace=False).astype(np.int32)

    def sparse(self, rng: np.random.Generator, low: int, high: int) -> SparseVector:
        nnz = int(rng.integers(low, high + 1))
        values = rng.gamma(2.0, 0.5, nnz).astype(np.float32) + 0.01
        return SparseVector(self.zipf_terms(rng, nnz), values)

    def batch(self, b: int, n: int) -> list[ChunkPoint]:
        """Points `b * BATCH` up to `min((b + 1) * BATCH, n)`."""
        rng = np.random.default_rng((self.seed, b))
        first = b * BATCH
        count = min(BATCH, n - first)
        latent = rng.standard_normal((count, LATENT)).astype(np.float32) @ self.mixing
        latent /= np.linalg.norm(latent, axis=1, keepdims=True)
        noise = rng.standard_normal((count, DENSE)).astype(np.float32)
        dense = latent + 0.5 * noise / np.linalg.norm(noise, axis=1, keepdims=True)
        dense /= np.linalg.norm(dense, axis=1, keepdims=True)
        return [
            ChunkPoint(
                doc_id=f"doc-{i}",
                chunk_index=0,
                text=f"doc-{i}",
                start=0,
                end=8,
                metadata=metadata_of(i),
                sparse=self.sparse(rng, 150, 400),
                dense=dense[i - first],
                chunk_count=1,
                tenant=tenant_of(i),
            )
            for i in range(first, first + count)
        ]

    def batches(self, n: int) -> Iterator[list[ChunkPoint]]:
        for b in range((n + BATCH - 1) // BATCH):
            yield self.batch(b, n)

    def query_from(self, point: ChunkPoint, rng: np.random.Generator) -> tuple[Any, Any]:
        """A query near `point`: half its sparse terms (at most 20) plus Zipf-drawn ones, its
        dense vector plus noise."""
        keep = rng.choice(len(point.sparse), min(20, len(point.sparse) // 2), replace=False)
        ids = np.unique(np.concatenate([point.sparse.indices[keep], self.zipf_terms(rng, 15)]))
        values = rng.gamma(2.0, 0.5, ids.size).astype(np.float32) + 0.01
        noise = rng.standard_normal(DENSE).astype(np.float32)
        dense = point.dense + 0.6 * noise / np.linalg.norm(noise)
        return SparseVector(ids, values), dense / np.linalg.norm(dense)


def metadata_of(i: int) -> dict[str, Any]:
    """`source` (payload-indexed) and `topic` (not indexed): each one of 50 values, 2% of the
    points apiece, spread differently so that a filter on one says nothing of the other."""
    return {"source": f"s{i % SOURCES:02d}", "topic": f"t{(3 * i + i // SOURCES) % SOURCES:02d}"}


# The measured kinds of query: name -> (tenant, metadata filter)
KINDS: dict[str, tuple[str, dict[str, Any]]] = {
    "unfiltered hybrid": ("*", {}),
    "filter on an indexed field (source, 2%)": ("*", {"source": "s07"}),
    "filter on an unindexed field (topic, 2%)": ("*", {"topic": "t07"}),
    "tenant-scoped (tenant-07, about 2.6%)": ("tenant-07", {}),
}


def fused_request(query: tuple[Any, Any], params: qe.SearchParams | None) -> qe.QueryRequest:
    """The store's fused request (sparse and dense prefetch of 100, RRF k=61, top 10), ids
    only; `params=EXACT` makes it the exact reference."""
    prefetches = [
        qe.Prefetch(100, _nearest(query[0], SPEC.sparse_name), params=params),
        qe.Prefetch(100, _nearest(query[1], SPEC.dense_name), params=params),
    ]
    fusion: Any = qe.Fusion.Rrf(61, None)
    return qe.QueryRequest(10, prefetches=prefetches, query=fusion, with_payload=False)


def dense_request(query: tuple[Any, Any], params: qe.SearchParams | None) -> qe.QueryRequest:
    return qe.QueryRequest(
        10, query=_nearest(query[1], SPEC.dense_name), params=params, with_payload=False
    )


def _nearest(vector: Any, using: str) -> qe.Query:
    if isinstance(vector, SparseVector):
        vector = qe.SparseVector(vector.indices.tolist(), vector.values.tolist())
    else:
        vector = np.asarray(vector, dtype=np.float32).tolist()
    return qe.Query.Nearest(vector, using=using)


def disk_bytes(folder: Path) -> tuple[int, int]:
    """(all, write-ahead log) bytes the files under `folder` occupy on disk: allocated blocks
    (st_blocks * 512), not apparent sizes (sparse files and preallocation differ)."""
    total = wal = 0
    for root, _, files in os.walk(folder):
        for name in files:
            try:
                used = os.lstat(os.path.join(root, name)).st_blocks * 512
            except FileNotFoundError:  # pragma: no cover - a file the engine just removed
                continue
            total += used
            if "wal" in Path(root).relative_to(folder).parts:
                wal += used
    return total, wal


def rss() -> dict[str, int]:
    """This process's resident memory in bytes: all, anonymous (heap) and file-backed (mapped
    files whose pages are in memory), from /proc/self/status."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    found = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in fields:
            found[fields[key]] = int(value.split()[0]) * 1024
    return found

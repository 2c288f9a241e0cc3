"""`EdgeStore`: the embedded default, Qdrant Edge (the Qdrant engine in-process, on disk)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rag_splade.store.base import (
    ChunkPoint,
    HybridQuery,
    RankedChunk,
    StoredChunk,
    VectorSpec,
    assemble,
    check_sparse_datatype,
    datatype_mismatch,
    describe_mismatch,
    plan,
)
from rag_splade.store.filters import Condition
from rag_splade.types import SparseVector

logger = logging.getLogger(__name__)

MANIFEST = "rag_splade.json"
SHARD_DIR = "shard"
FORMAT_VERSION = 1
SCROLL_PAGE = 256


def _edge() -> Any:
    try:
        import qdrant_edge
    except ImportError as e:  # pragma: no cover - core dependency
        raise ImportError(
            "EdgeStore needs qdrant-edge-py: pip install 'qdrant-edge-py==0.9.0'"
        ) from e
    return qdrant_edge


class EdgeStore:
    """A persistent index in a local folder, created on first use and reopened after.

    Hybrid queries run in-process (about a millisecond at tens of thousands of chunks),
    with no server to run. For many processes or more data, use `QdrantServerStore`.

    Args:
        path: folder of the index (created if missing).
        optimize_after: after this many points written since the last optimisation,
            `HybridIndex.add` ends with `optimize()` (bulk loads leave Edge's segments
            unindexed, which makes queries ~3x slower until optimised).
        sparse_datatype: `float32` or `float16` storage of the SPLADE weights, chosen when
            the index is created (float16: 6 instead of 8 bytes a term).

    Example:
        >>> store = EdgeStore("./data/index")  # doctest: +SKIP
    """

    def __init__(
        self, path: str | Path, *, optimize_after: int = 5_000, sparse_datatype: str = "float32"
    ) -> None:
        self.path = Path(path)
        self.sparse_datatype = check_sparse_datatype(sparse_datatype)
        self.optimize_after = optimize_after
        self.spec: VectorSpec | None = None
        self._shard: Any = None
        self._written = 0
        self._lock = threading.RLock()

    # -- lifecycle -------------------------------------------------------------------------
    def open(self, spec: VectorSpec) -> None:
        qe = _edge()
        manifest_path = self.path / MANIFEST
        shard_path = self.path / SHARD_DIR
        if manifest_path.exists():
            found = json.loads(manifest_path.read_text())
            problems = describe_mismatch(spec, found)
            if problems:
                raise ValueError(
                    f"The index at {self.path} does not fit the encoders: "
                    + "; ".join(problems)
                    + ". Use the models it was built with, or a new index path."
                )
            stored = found.get("sparse_datatype", "float32")
            if stored != self.sparse_datatype:
                raise datatype_mismatch(f"The index at {self.path}", stored, self.sparse_datatype)
            self._shard = qe.EdgeShard.load(str(shard_path))
        else:
            if shard_path.exists() and any(shard_path.iterdir()):
                raise ValueError(
                    f"{shard_path} holds data but no {MANIFEST}: not an index this library wrote"
                )
            self.path.mkdir(parents=True, exist_ok=True)
            config = qe.EdgeConfig(
                vectors={spec.dense_name: qe.EdgeVectorParams(spec.dense_size, qe.Distance.Cosine)},
                sparse_vectors={
                    spec.sparse_name: qe.EdgeSparseVectorParams(
                        datatype=getattr(qe.VectorStorageDatatype, self.sparse_datatype.title())
                    )
                },
            )
            self._shard = qe.EdgeShard.create(str(shard_path), config)
            self._shard.update(
                qe.UpdateOperation.create_field_index("doc_id", qe.PayloadSchemaType.Keyword)
            )
            self._shard.update(
                qe.UpdateOperation.create_field_index("chunk_index", qe.PayloadSchemaType.Integer)
            )
            manifest = {
                "format": FORMAT_VERSION,
                "dense": {spec.dense_name: spec.dense_size},
                "sparse": [spec.sparse_name],
                "sparse_vocab_size": spec.sparse_vocab_size,
                "sparse_datatype": self.sparse_datatype,
            }
            manifest_path.write_text(json.dumps(manifest, indent=2))
        self.spec = spec

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                self._shard.close()
                self._shard = None

    def optimize(self) -> None:
        """Build the HNSW and sparse indexes of freshly written segments (blocking)."""
        with self._lock:
            self._require().optimize()
            self._written = 0

    def maybe_optimize(self) -> bool:
        """Optimise when enough points were written since the last time; say if it did."""
        if self._written >= self.optimize_after:
            self.optimize()
            return True
        return False

    # -- writes ----------------------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        qe = _edge()
        spec = self._spec()
        edge_points = [
            qe.Point(
                p.id,
                {
                    spec.dense_name: p.dense.astype("float32").tolist(),
                    spec.sparse_name: qe.SparseVector(
                        p.sparse.indices.tolist(), p.sparse.values.tolist()
                    ),
                },
                p.payload(),
            )
            for p in points
        ]
        if not edge_points:
            return
        with self._lock:
            self._require().update(qe.UpdateOperation.upsert_points(edge_points))
            self._written += len(edge_points)

    def delete_stale_chunks(self, doc_id: str, keep: int) -> None:
        qe = _edge()
        stale = qe.Filter(
            must=[
                qe.FieldCondition("doc_id", match=qe.MatchValue(doc_id)),
                qe.FieldCondition("chunk_index", range=qe.RangeFloat(gte=float(keep))),
            ]
        )
        with self._lock:
            self._require().update(qe.UpdateOperation.delete_points_by_filter(stale))

    def delete_document(self, doc_id: str) -> int:
        qe = _edge()
        flt = qe.Filter(must=[qe.FieldCondition("doc_id", match=qe.MatchValue(doc_id))])
        with self._lock:
            shard = self._require()
            n = shard.count(qe.CountRequest(exact=True, filter=flt))
            if n:
                shard.update(qe.UpdateOperation.delete_points_by_filter(flt))
        return int(n)

    # -- reads -----------------------------------------------------------------------------
    def get_document(self, doc_id: str) -> list[StoredChunk]:
        qe = _edge()
        flt = qe.Filter(must=[qe.FieldCondition("doc_id", match=qe.MatchValue(doc_id))])
        chunks = [StoredChunk.from_payload(r.id, r.payload) for r in self._scroll(flt, True)]
        return sorted(chunks, key=lambda c: c.chunk_index)

    def iter_payloads(
        self, fields: Sequence[str], conditions: list[Condition] | None = None
    ) -> Iterator[dict[str, Any]]:
        for record in self._scroll(self._filter(conditions or []), list(fields)):
            yield dict(record.payload or {})

    def _scroll(self, flt: Any, with_payload: bool | list[str]) -> Iterator[Any]:
        """Every matching record, page by page."""
        qe = _edge()
        offset = None
        while True:
            records, offset = self._require().scroll(
                qe.ScrollRequest(
                    offset=offset, limit=SCROLL_PAGE, filter=flt, with_payload=with_payload
                )
            )
            yield from records
            if offset is None:
                break

    def count(self, conditions: list[Condition] | None = None) -> int:
        qe = _edge()
        request = qe.CountRequest(exact=True, filter=self._filter(conditions or []))
        return int(self._require().count(request))

    def query(self, query: HybridQuery) -> list[RankedChunk]:
        qe = _edge()
        spec = self._spec()
        flt = self._filter(query.conditions)
        sources = {}
        if query.sparse is not None:
            sv = qe.SparseVector(query.sparse.indices.tolist(), query.sparse.values.tolist())
            sources["sparse"] = qe.Query.Nearest(sv, using=spec.sparse_name)
        if query.dense is not None:
            sources["dense"] = qe.Query.Nearest(
                query.dense.astype("float32").tolist(), using=spec.dense_name
            )
        with_vector = [spec.sparse_name] if query.with_sparse_vectors else False
        requests = []
        items = plan(query)
        for item in items:
            if item.source == "fused":
                prefetches = [
                    qe.Prefetch(limit=query.candidates, query=sources[name], filter=flt)
                    for name in ("sparse", "dense")
                ]
                fusion = (
                    qe.Fusion.Rrf(
                        k=query.rrf_k, weights=list(query.weights) if query.weights else None
                    )
                    if query.fusion == "rrf"
                    else qe.Fusion.Dbsf()
                )
                requests.append(
                    qe.QueryRequest(
                        limit=item.limit,
                        prefetches=prefetches,
                        query=fusion,
                        filter=flt,
                        with_payload=True,
                        with_vector=with_vector,
                    )
                )
            else:
                requests.append(
                    qe.QueryRequest(
                        limit=item.limit,
                        query=sources[item.source],
                        filter=flt,
                        with_payload=item.with_payload,
                        with_vector=with_vector if item.with_payload else False,
                    )
                )
        results = self._require().query_batch(qe.QueryBatchRequest(requests))
        lists = [
            [
                (str(p.id), float(p.score), self._chunk(p) if spec_item.with_payload else None)
                for p in points
            ]
            for spec_item, points in zip(items, results, strict=True)
        ]
        return assemble(query, lists)

    # -- helpers ---------------------------------------------------------------------------
    def _chunk(self, point: Any) -> StoredChunk:
        sparse = None
        if point.vector and self._spec().sparse_name in point.vector:
            v = point.vector[self._spec().sparse_name]
            sparse = SparseVector(v.indices, v.values)
        return StoredChunk.from_payload(point.id, point.payload, sparse)

    @staticmethod
    def _filter(conditions: list[Condition]) -> Any:
        if not conditions:
            return None
        qe = _edge()
        must = []
        for c in conditions:
            if c.kind == "eq":
                must.append(qe.FieldCondition(c.field, match=qe.MatchValue(c.value)))
            elif c.kind == "any":
                must.append(qe.FieldCondition(c.field, match=qe.MatchAny(c.value)))
            else:
                must.append(qe.FieldCondition(c.field, range=qe.RangeFloat(**c.value)))
        return qe.Filter(must=must)

    def _require(self) -> Any:
        if self._shard is None:
            raise RuntimeError(
                "EdgeStore is not open: call open(spec) or use it through HybridIndex"
            )
        return self._shard

    def _spec(self) -> VectorSpec:
        self._require()
        assert self.spec is not None  # set by open() together with the shard
        return self.spec

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r})"

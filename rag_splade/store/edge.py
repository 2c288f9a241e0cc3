"""`EdgeStore`: the embedded default, Qdrant Edge (the Qdrant engine in-process, on disk)."""

from __future__ import annotations

import contextlib
import shutil
import threading
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any, Literal, cast

import qdrant_edge as qe

from rag_splade.errors import (
    DiskFullError,
    IndexDamagedError,
    IndexInUseError,
    UnsupportedFilterError,
)
from rag_splade.store.base import HybridQuery, VectorSpec
from rag_splade.store.filters import Condition
from rag_splade.store.manifest import (
    FORMAT_VERSION,
    MANIFEST,
    RECOVER,
    SHARD_DIR,
    changed_files,
    read_manifest,
    seal,
    unsealed,
    write_manifest,
)
from rag_splade.store.probe import ShardLayout, check_shard
from rag_splade.store.qdrant_base import Ask, QdrantStoreBase, Source, With
from rag_splade.store.tenants import TENANT_FIELD
from rag_splade.types import SparseVector

CREATING = ".creating"  # present from the start of a creation until its manifest is written
MIB = 1 << 20  # every size in messages is in MiB
# A write is refused while less than this is free on the index's disk: a full disk made
# the engine die with SIGBUS in the middle of a write.
MIN_FREE_BYTES = 256 * MIB
# How the files were found at open: `verified` (a new index, or every file matched the
# checksums of its last clean close) or `not_closed_cleanly` (a crash: no checksums to
# compare; the shard was read whole in a child process first).
Integrity = Literal["verified", "not_closed_cleanly"]


# Edge's payload index types by their names, as `payload_indexes()` reports them.
_SCHEMA_NAMES = {
    f"PayloadSchemaType.{name}": name.lower()
    for name in ("Keyword", "Integer", "Float", "Bool", "Datetime", "Text", "Geo", "Uuid")
}

# The errors live in one module; importing them from here keeps working.
__all__ = [
    "FORMAT_VERSION",
    "MANIFEST",
    "MIN_FREE_BYTES",
    "SHARD_DIR",
    "DiskFullError",
    "EdgeStore",
    "IndexDamagedError",
    "IndexInUseError",
]


class EdgeStore(QdrantStoreBase[qe.Filter, qe.Point, qe.QueryRequest]):
    """A persistent index in a local folder, created on first use and reopened after.

    Hybrid queries run in-process, with no server to run and no network round trip
    (timings: `docs/benchmarks.md`). For many processes or more data, use
    `QdrantServerStore`. It is `Optimizable`.

    Args:
        path: folder of the index (created if missing).
        optimize_after: after this many points written since the last optimisation,
            `HybridIndex.add` ends with `optimize()`: a bulk load leaves Edge's segments
            without their vector indexes, and queries scan them until optimised.
        sparse_datatype: `float32` or `float16` storage of the SPLADE weights, chosen when
            the index is created (float16: 6 instead of 8 bytes a term).

    Example:
        >>> store = EdgeStore("./data/index")  # doctest: +SKIP
    """

    _elsewhere = "a new index path"

    def __init__(
        self, path: str | Path, *, optimize_after: int = 5_000, sparse_datatype: str = "float32"
    ) -> None:
        super().__init__(sparse_datatype)
        self.path = Path(path)
        self._where = f"The index at {self.path}"
        self.optimize_after = optimize_after
        self._shard: qe.EdgeShard | None = None
        self._written = 0
        self.integrity: Integrity | None = None  # set by open()
        self._lock = threading.RLock()  # the shard lives in this process: writes take turns

    @staticmethod
    def is_index_dir(path: str | Path) -> bool:
        """True when the folder `path` holds an index this library wrote (its manifest)."""
        return (Path(path) / MANIFEST).is_file()

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

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """Hold off every write (this process's) with the shard flushed, e.g. while its files
        are copied into a snapshot."""
        with self._lock:
            self._require().flush()
            yield

    def close(self) -> None:
        with self._lock:
            if self._shard is not None:
                self._shard.flush()
                # a clean close records the point count and the files' checksums; the next
                # open checks both before the engine reads the files
                points = self._shard.count(qe.CountRequest(exact=True))
                self._shard.close()
                self._shard = None
                seal(self.path, points)

    # -- hooks -----------------------------------------------------------------------------
    def _found(self, spec: VectorSpec) -> dict[str, Any] | None:
        if self.is_index_dir(self.path):
            return read_manifest(self.path)
        shard = self.path / SHARD_DIR
        if (self.path / CREATING).exists():  # a creation cut short: it held no data yet
            shutil.rmtree(shard, ignore_errors=True)
            (self.path / CREATING).unlink()
            return None
        if shard.exists() and any(shard.iterdir()):
            raise ValueError(
                f"{shard} holds data but no {MANIFEST}: not an index this library wrote"
            )
        return None

    def _load(self) -> None:
        manifest = read_manifest(self.path)
        checksums = manifest.get("checksums") if manifest.get("clean") else None
        if checksums:
            changed = changed_files(self.path, checksums)
            if changed:
                self._check_in_child(manifest)  # another process holding it changes files
                raise IndexDamagedError(
                    f"the index at {self.path} is damaged or was changed since it was closed: "
                    f"{len(changed)} file(s) of {SHARD_DIR}/ differ from their checksums "
                    f"({', '.join(changed[:3])}); {RECOVER}"
                )
            self.integrity = "verified"
        else:  # a crash (or an index from before checksums): let a child read it first
            problem = self._check_in_child(manifest)
            if problem:
                raise IndexDamagedError(
                    f"the index at {self.path} was not closed cleanly and does not read back "
                    f"({problem}); {RECOVER}"
                )
            self.integrity = "verified" if manifest.get("clean") else "not_closed_cleanly"
        try:
            shard = qe.EdgeShard.load(str(self.path / SHARD_DIR))
            points = shard.count(qe.CountRequest(exact=True))
        except BaseException as e:  # BaseException: pyo3's PanicException from damaged files
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            if "WouldBlock" in str(e):  # Edge's WAL lock: one process per index
                raise self._in_use() from e
            raise IndexDamagedError(
                f"the index at {self.path} does not open ({type(e).__name__}: {e}); {RECOVER}"
            ) from e
        recorded = manifest.get("points")
        if manifest.get("clean") and recorded is not None and recorded != points:
            shard.close()
            raise IndexDamagedError(
                f"the index at {self.path} holds {points} points but was closed with "
                f"{recorded} ({self.path / SHARD_DIR} is damaged or was changed); {RECOVER}"
            )
        self._shard = shard
        unsealed(self.path)  # until a clean close records the count and checksums again

    def _check_in_child(self, manifest: dict[str, Any]) -> str | None:
        """Read the whole shard in a child process; its problem in words, or None. Raises
        `IndexInUseError` when another process holds the index."""
        [(dense_name, dense_size)] = manifest["dense"].items()
        layout = ShardLayout(
            dense_name, dense_size, manifest["sparse"][0], manifest.get("sparse_vocab_size") or 0
        )
        result = check_shard(self.path / SHARD_DIR, layout)
        if result.in_use:
            raise self._in_use()
        return result.problem

    def _in_use(self) -> IndexInUseError:
        return IndexInUseError(
            f"the index at {self.path} is open in another process (a running service, "
            "an ingest?): stop it first, or use the service's routes"
        )

    def _create(self, spec: VectorSpec) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        (self.path / CREATING).touch()  # an open after a kill from here on starts over
        datatype = getattr(qe.VectorStorageDatatype, self.sparse_datatype.title())
        config = qe.EdgeConfig(
            vectors={spec.dense_name: qe.EdgeVectorParams(spec.dense_size, qe.Distance.Cosine)},
            sparse_vectors={spec.sparse_name: qe.EdgeSparseVectorParams(datatype=datatype)},
        )
        self._shard = qe.EdgeShard.create(str(self.path / SHARD_DIR), config)
        for name, schema in [
            ("doc_id", qe.PayloadSchemaType.Keyword),
            ("chunk_index", qe.PayloadSchemaType.Integer),
        ]:
            self._shard.update(qe.UpdateOperation.create_field_index(name, schema))
        manifest = {
            "format": FORMAT_VERSION,
            "dense": {spec.dense_name: spec.dense_size},
            "sparse": [spec.sparse_name],
            "sparse_vocab_size": spec.sparse_vocab_size,
            "sparse_datatype": self.sparse_datatype,
            "sparse_fingerprint": spec.sparse_fingerprint,
            "dense_fingerprint": spec.dense_fingerprint,
            "sparse_dtype": spec.sparse_dtype,
        }
        write_manifest(self.path, {**manifest, "points": 0, "clean": False})
        (self.path / CREATING).unlink()
        self.integrity = "verified"

    def _check_free_space(self, points: int) -> None:
        free = shutil.disk_usage(self.path).free
        if free < MIN_FREE_BYTES:
            raise DiskFullError(
                f"only {free / MIB:.0f} MiB free on the disk of {self.path} (a write needs "
                f"{MIN_FREE_BYTES / MIB:.0f} MiB spare); free some space: nothing of these "
                f"{points} points was written and the index is unchanged"
            )

    def _condition(self, condition: Condition) -> qe.FieldCondition | qe.IsEmptyCondition:
        field, kind, value = condition.field, condition.kind, condition.value
        if kind == "empty":
            return qe.IsEmptyCondition(field)
        if kind == "range":
            return qe.FieldCondition(field, range=qe.RangeFloat(**value))
        if isinstance(value, bool):
            # qdrant-edge-py reads MatchValue(True) as the int 1, which no stored true equals:
            # the filter would silently match nothing (or the 1s). Refused until it does not.
            raise UnsupportedFilterError(
                f"filter {field!r}: equality on true/false is not supported by the embedded "
                f"Qdrant Edge store (qdrant-edge-py {version('qdrant-edge-py')} reads {value} as "
                f"{int(value)}); store the flag as a string or an int, or use a Qdrant server"
            )
        return qe.FieldCondition(
            field, match=qe.MatchValue(value) if kind == "eq" else qe.MatchAny(value)
        )

    def _must(self, conditions: list[Any]) -> qe.Filter:
        return qe.Filter(must=conditions)

    def _sparse(self, vector: SparseVector) -> qe.SparseVector:
        return qe.SparseVector(vector.indices.tolist(), vector.values.tolist())

    def _point(self, id_: str, vectors: dict[str, Any], payload: dict[str, Any]) -> qe.Point:
        return qe.Point(id_, vectors, payload)

    def _nearest_request(self, source: Source, ask: Ask) -> qe.QueryRequest:
        return qe.QueryRequest(query=self._nearest(source), **ask._asdict())

    def _fusion_request(
        self, query: HybridQuery, sources: Sequence[Source], ask: Ask
    ) -> qe.QueryRequest:
        prefetches = [
            qe.Prefetch(query.candidates, self._nearest(s), filter=ask.filter) for s in sources
        ]
        weights = list(query.weights) if query.weights else None
        # Rrf and Dbsf subclass Fusion at run time; the 0.9.0 stubs only nest them in it.
        fusion = cast(
            qe.Fusion,
            qe.Fusion.Rrf(query.rrf_k, weights) if query.fusion == "rrf" else qe.Fusion.Dbsf(),
        )
        return qe.QueryRequest(prefetches=prefetches, query=fusion, **ask._asdict())

    @staticmethod
    def _nearest(source: Source) -> qe.Query:
        return qe.Query.Nearest(source.vector, using=source.using)

    def _upsert(self, points: list[qe.Point]) -> None:
        self._check_free_space(len(points))
        self._require().update(qe.UpdateOperation.upsert_points(points))
        self._written += len(points)

    def _delete(self, flt: qe.Filter) -> None:
        self._require().update(qe.UpdateOperation.delete_points_by_filter(flt))

    def _count(self, flt: qe.Filter | None) -> int:
        return self._require().count(qe.CountRequest(exact=True, filter=flt))

    def _scroll_page(
        self, flt: qe.Filter | None, with_payload: With, offset: Any, limit: int
    ) -> tuple[list[qe.Record], Any]:
        request = qe.ScrollRequest(offset, limit, filter=flt, with_payload=with_payload)
        return self._require().scroll(request)

    def _run_batch(self, requests: list[qe.QueryRequest]) -> list[list[qe.ScoredPoint]]:
        return self._require().query_batch(qe.QueryBatchRequest(requests))

    def _payload_schema(self) -> dict[str, str]:
        held = self._require().info().payload_schema
        return {
            path: "tenant" if path == TENANT_FIELD else _SCHEMA_NAMES[str(info.data_type)]
            for path, info in held.items()
        }

    def _create_field_index(self, path: str, kind: str) -> None:
        schema: Any = (
            qe.KeywordIndexParams(is_tenant=True)
            if kind == "tenant"
            else getattr(qe.PayloadSchemaType, kind.title())
        )
        self._require().update(qe.UpdateOperation.create_field_index(path, schema))

    def _require(self) -> qe.EdgeShard:
        if self._shard is None:
            raise RuntimeError(
                "EdgeStore is not open: call open(spec) or use it through HybridIndex"
            )
        return self._shard

    def __repr__(self) -> str:
        return f"EdgeStore({str(self.path)!r})"

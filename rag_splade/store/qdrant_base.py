"""`QdrantStoreBase`: the store flow both Qdrant backends share, written once.

A backend only spells requests in its own types (`qdrant_edge` or qdrant-client's
`models`) and sends them; the hooks at the end of the class are all it supplies.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Generic, NamedTuple, Protocol, TypeAlias, TypeVar

from rag_splade.errors import IndexMismatchError
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
from rag_splade.store.filters import Condition, payload_field
from rag_splade.store.payload_indexes import check_declared
from rag_splade.store.tenants import ALL_TENANTS, DEFAULT_TENANT, TENANT_FIELD, check_tenant
from rag_splade.types import SparseVector

SCROLL_PAGE = 256  # records one scroll request asks for
UPSERT_BATCH = 256  # points one upsert request carries

FilterT = TypeVar("FilterT")
PointT = TypeVar("PointT")
RequestT = TypeVar("RequestT")
With: TypeAlias = bool | list[str]  # with_payload / with_vector: none, all, or the named


class Record(Protocol):
    """A point read back (Edge's and qdrant-client's `Record` and `ScoredPoint` alike)."""

    @property
    def id(self) -> Any: ...
    @property
    def payload(self) -> dict[str, Any] | None: ...


class ScoredRecord(Record, Protocol):
    @property
    def score(self) -> float: ...
    @property
    def vector(self) -> Any: ...


class Source(NamedTuple):
    """One retriever's query: its vector in the backend's type and the named vector searched."""

    vector: Any
    using: str


class Ask(NamedTuple):
    """What one request returns; the fields are both backends' `QueryRequest` keywords."""

    limit: int
    filter: Any
    with_payload: bool
    with_vector: With


class QdrantStoreBase(ABC, Generic[FilterT, PointT, RequestT]):
    """`HybridStore` on a Qdrant engine: filters, scrolling, batching and query plans.

    The type parameters are the backend's filter, point and query request types. The
    backend sets `_where` (the index in words, for errors) and implements the hooks.

    Args:
        sparse_datatype: `float32` or `float16` storage of the SPLADE weights, chosen when
            the index is created and checked when it is opened.
    """

    batch_size: int = UPSERT_BATCH  # points per upsert request
    _where: str  # starts an error message: "The index at ...", "Collection '...'"
    _elsewhere = "a new index"  # the fix an open error offers besides the original models

    def __init__(self, sparse_datatype: str = "float32") -> None:
        self.sparse_datatype = check_sparse_datatype(sparse_datatype)
        self.spec: VectorSpec | None = None
        # Writes that must not interleave (count-then-delete) hold it; an engine living in
        # this process needs a real lock, a server orders writes itself.
        self._lock: contextlib.AbstractContextManager[object] = contextlib.nullcontext()

    def open(self, spec: VectorSpec) -> None:
        """Create the index, or open it and check it matches `spec` (raise if not)."""
        found = self._found(spec)
        if found is None:
            self._create(spec)
        else:
            problems = describe_mismatch(spec, found)
            if problems:
                raise IndexMismatchError(
                    f"{self._where} does not fit the encoders: "
                    + "; ".join(problems)
                    + f". Use the models it was built with, or {self._elsewhere}."
                )
            stored = str(found.get("sparse_datatype") or "float32")
            if stored != self.sparse_datatype:
                raise datatype_mismatch(self._where, stored, self.sparse_datatype)
            self._load()
        self.spec = spec
        # an index from before tenants gets its tenant index here, once
        self._ensure({TENANT_FIELD: "tenant"})

    def _load(self) -> None:
        """Open the existing index once it is known to fit (a hook; nothing by default)."""

    @abstractmethod
    def close(self) -> None:
        """Let go of the index: flush and close the engine, or the connection."""

    # -- writes ----------------------------------------------------------------------------
    def upsert(self, points: Sequence[ChunkPoint]) -> None:
        """Write `points` (a known id is overwritten), `batch_size` a request."""
        spec = self._spec()
        for tenant in {p.tenant for p in points}:
            check_tenant(tenant)  # ALL_TENANTS is for reads only
        built = [
            self._point(
                p.id,
                {
                    spec.dense_name: p.dense.astype("float32").tolist(),
                    spec.sparse_name: self._sparse(p.sparse),
                },
                p.payload(),
            )
            for p in points
        ]
        for start in range(0, len(built), self.batch_size):
            with self._lock:
                self._upsert(built[start : start + self.batch_size])

    def delete_stale_chunks(self, doc_id: str, keep: int, *, tenant: str = DEFAULT_TENANT) -> None:
        """Delete the chunks of `doc_id` whose index is >= `keep`."""
        stale = [_of_document(doc_id), Condition("chunk_index", "range", {"gte": float(keep)})]
        flt = self._all_of(self._with_tenant(stale, tenant, every_tenant=False))
        with self._lock:
            self._delete(flt)

    def delete_document(self, doc_id: str, *, tenant: str = DEFAULT_TENANT) -> int:
        """Delete every chunk of `doc_id`; return how many there were."""
        flt = self._all_of(self._with_tenant([_of_document(doc_id)], tenant, every_tenant=False))
        with self._lock:
            n = self._count(flt)
            if n:
                self._delete(flt)
        return n

    # -- reads -----------------------------------------------------------------------------
    def get_document(self, doc_id: str, *, tenant: str = DEFAULT_TENANT) -> list[StoredChunk]:
        """A document's chunks in order ([] for an unknown id)."""
        flt = self._scoped([_of_document(doc_id)], tenant, every_tenant=False)
        records = self._scroll(flt, True)
        chunks = [StoredChunk.from_payload(r.id, r.payload or {}) for r in records]
        return sorted(chunks, key=lambda c: c.chunk_index)

    def iter_payloads(
        self,
        fields: Sequence[str],
        conditions: list[Condition] | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> Iterator[dict[str, Any]]:
        """Every chunk's payload, only the top-level `fields`, page by page, in no set order."""
        for record in self._scroll(self._scoped(conditions or [], tenant), list(fields)):
            yield dict(record.payload or {})

    def count(
        self, conditions: list[Condition] | None = None, *, tenant: str = DEFAULT_TENANT
    ) -> int:
        """Chunks of `tenant` that meet every condition (all its chunks without any)."""
        return self._count(self._scoped(conditions or [], tenant))

    # -- payload indexes -------------------------------------------------------------------
    def ensure_payload_indexes(self, fields: Mapping[str, str]) -> None:
        """Create the payload index of each declared metadata field that lacks one (an
        index is never dropped here: other processes may rely on it)."""
        self._ensure({payload_field(k): kind for k, kind in check_declared(fields).items()})

    def payload_indexes(self) -> dict[str, str]:
        """The payload indexes the engine holds: payload path -> type (`tenant` for the
        tenant field)."""
        return dict(sorted(self._payload_schema().items()))

    def _ensure(self, fields: Mapping[str, str]) -> None:
        held = self._payload_schema()
        missing = {path: kind for path, kind in fields.items() if path not in held}
        if missing:
            with self._lock:
                for path, kind in missing.items():
                    self._create_field_index(path, kind)

    def query(self, query: HybridQuery) -> list[RankedChunk]:
        """One search as one batch: the answer list first, then each retriever's list."""
        spec = self._spec()
        flt = self._scoped(query.conditions, query.tenant)
        sources = {}
        if query.sparse is not None:
            sources["sparse"] = Source(self._sparse(query.sparse), spec.sparse_name)
        if query.dense is not None:
            sources["dense"] = Source(query.dense.astype("float32").tolist(), spec.dense_name)
        with_vector: With = [spec.sparse_name] if query.with_sparse_vectors else False
        items, requests = plan(query), []
        for item in items:
            ask = Ask(
                item.limit, flt, item.with_payload, with_vector if item.with_payload else False
            )
            if item.source == "fused":
                fused = (sources["sparse"], sources["dense"])  # the order of query.weights
                requests.append(self._fusion_request(query, fused, ask))
            else:
                requests.append(self._nearest_request(sources[item.source], ask))
        lists = [
            [(str(p.id), float(p.score), self._chunk(p) if item.with_payload else None) for p in ps]
            for item, ps in zip(items, self._run_batch(requests), strict=True)
        ]
        return assemble(query, lists)

    # -- shared helpers --------------------------------------------------------------------
    def _chunk(self, point: ScoredRecord) -> StoredChunk:
        vectors = point.vector if isinstance(point.vector, dict) else {}
        stored = vectors.get(self._spec().sparse_name)
        sparse = SparseVector(stored.indices, stored.values) if stored is not None else None
        return StoredChunk.from_payload(point.id, point.payload or {}, sparse)

    def _scroll(self, flt: FilterT | None, with_payload: With) -> Iterator[Record]:
        offset = None
        while True:
            records, offset = self._scroll_page(flt, with_payload, offset, SCROLL_PAGE)
            yield from records
            if offset is None:
                return

    def _scoped(
        self, conditions: Sequence[Condition], tenant: str, *, every_tenant: bool = True
    ) -> FilterT | None:
        """`conditions` ANDed beneath the tenant's own condition: the user's conditions can
        only narrow what the tenant sees. `ALL_TENANTS` adds none; it is refused where
        `every_tenant` is False (writes, and reading one document by id)."""
        scoped = self._with_tenant(conditions, tenant, every_tenant=every_tenant)
        return self._all_of(scoped) if scoped else None

    @staticmethod
    def _with_tenant(
        conditions: Sequence[Condition], tenant: str, *, every_tenant: bool
    ) -> list[Condition]:
        tenant = check_tenant(tenant, allow_all=every_tenant)
        if tenant == ALL_TENANTS:
            return list(conditions)
        return [tenant_condition(tenant), *conditions]

    def _all_of(self, conditions: Sequence[Condition]) -> FilterT:
        return self._must([self._condition(c) for c in conditions])

    def _spec(self) -> VectorSpec:
        if self.spec is None:
            raise RuntimeError(
                f"{type(self).__name__} is not open: call open(spec) or use it through HybridIndex"
            )
        return self.spec

    # -- backend hooks ---------------------------------------------------------------------
    # The existing index's vectors as `describe_mismatch` reads them plus its
    # `sparse_datatype`, or None when there is no index yet.
    @abstractmethod
    def _found(self, spec: VectorSpec) -> dict[str, Any] | None: ...
    @abstractmethod
    def _create(self, spec: VectorSpec) -> None: ...

    # Filters: one field condition (`eq` a value, `any` of a list, a `range` of gt/gte/lt/lte
    # bounds), and a filter that needs all the conditions given.
    @abstractmethod
    def _condition(self, condition: Condition) -> Any: ...
    @abstractmethod
    def _must(self, conditions: list[Any]) -> FilterT: ...

    # Points, and the two requests: one retriever's top `ask.limit`; or the fused one,
    # each source prefetched to `query.candidates` and fused as `query.fusion` says.
    @abstractmethod
    def _sparse(self, vector: SparseVector) -> Any: ...
    @abstractmethod
    def _point(self, id_: str, vectors: dict[str, Any], payload: dict[str, Any]) -> PointT: ...
    @abstractmethod
    def _nearest_request(self, source: Source, ask: Ask) -> RequestT: ...
    @abstractmethod
    def _fusion_request(
        self, query: HybridQuery, sources: Sequence[Source], ask: Ask
    ) -> RequestT: ...

    # Calls on the engine. `_scroll_page` gives one page and the next page's offset (None:
    # the last page); `_run_batch` one list of points per request, in order.
    @abstractmethod
    def _upsert(self, points: list[PointT]) -> None: ...
    @abstractmethod
    def _delete(self, flt: FilterT) -> None: ...
    @abstractmethod
    def _count(self, flt: FilterT | None) -> int: ...
    @abstractmethod
    def _scroll_page(
        self, flt: FilterT | None, with_payload: With, offset: Any, limit: int
    ) -> tuple[Sequence[Record], Any]: ...
    @abstractmethod
    def _run_batch(self, requests: list[RequestT]) -> Sequence[Sequence[ScoredRecord]]: ...

    # Payload indexes: what the engine holds (payload path -> one of FIELD_TYPES, or
    # "tenant"), and creating one (`kind` "tenant": a keyword index with is_tenant=true).
    @abstractmethod
    def _payload_schema(self) -> dict[str, str]: ...
    @abstractmethod
    def _create_field_index(self, path: str, kind: str) -> None: ...


def _of_document(doc_id: str) -> Condition:
    return Condition("doc_id", "eq", doc_id)


def tenant_condition(tenant: str) -> Condition:
    """The condition that keeps `tenant`'s points: the default tenant's carry no field."""
    if tenant == DEFAULT_TENANT:
        return Condition(TENANT_FIELD, "empty", None)
    return Condition(TENANT_FIELD, "eq", tenant)

"""The store protocol and what both Qdrant backends share: ids, payloads, query plans."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

from rag_splade.checks import check_choice
from rag_splade.errors import IndexMismatchError
from rag_splade.ranking import Fusion, Mode, list_ranks, tie_break_key
from rag_splade.store.filters import Condition
from rag_splade.store.tenants import DEFAULT_TENANT, TENANT_FIELD
from rag_splade.types import SparseVector

DENSE_VECTOR = "dense"
SPARSE_VECTOR = "sparse"
# Namespace of chunk point ids: uuid5(namespace, "<doc_id>\x1f<chunk_index>").
POINT_NAMESPACE = uuid.UUID("3f0c6a52-8d1e-4d8e-9a39-1f6b2c7d9e10")


def point_id(doc_id: str, chunk_index: int, tenant: str = DEFAULT_TENANT) -> str:
    """The stable point id of a chunk: re-adding a document overwrites the same points.

    The tenant is part of it (the default tenant's ids are the ones indexes always had),
    so one document id in two tenants is two documents."""
    scoped = doc_id if tenant == DEFAULT_TENANT else f"{tenant}\x1e{doc_id}"
    return str(uuid.uuid5(POINT_NAMESPACE, f"{scoped}\x1f{chunk_index}"))


@dataclass(frozen=True)
class VectorSpec:
    """What an index's vectors look like; a store refuses to open an index that differs."""

    dense_size: int
    sparse_vocab_size: int
    dense_name: str = DENSE_VECTOR
    sparse_name: str = SPARSE_VECTOR
    # which SPLADE model built the index (`rag_splade.fingerprint`); None: not checked
    sparse_fingerprint: str | None = None
    # which dense model built it; None: not checked (an index from before it was recorded)
    dense_fingerprint: str | None = None
    # what the SPLADE model computed in when the index was created (`float32`, `bfloat16`):
    # recorded, not checked (the bf16 path passed the fidelity gates; the two can mix)
    sparse_dtype: str | None = None


@dataclass(frozen=True)
class ChunkPoint:
    """A chunk ready to store: payload fields plus both vectors."""

    doc_id: str
    chunk_index: int
    text: str
    start: int
    end: int
    metadata: dict[str, Any]
    sparse: SparseVector
    dense: np.ndarray
    chunk_count: int  # chunks in its document: tells a complete document from one cut short
    # metadata keys that belong to this chunk alone (e.g. its page), not to the document
    chunk_keys: tuple[str, ...] = ()
    tenant: str = DEFAULT_TENANT

    @property
    def id(self) -> str:
        return point_id(self.doc_id, self.chunk_index, self.tenant)

    def payload(self) -> dict[str, Any]:
        payload = {
            "doc_id": self.doc_id,
            "chunk_index": self.chunk_index,
            "chunk_count": self.chunk_count,
            "text": self.text,
            "start": self.start,
            "end": self.end,
            "metadata": self.metadata,
        }
        if self.chunk_keys:
            payload["chunk_keys"] = list(self.chunk_keys)
        if self.tenant != DEFAULT_TENANT:  # the default tenant's points carry no tenant field
            payload[TENANT_FIELD] = self.tenant
        return payload


@dataclass(frozen=True)
class StoredChunk:
    """A chunk read back from a store."""

    id: str
    doc_id: str
    chunk_index: int
    text: str
    start: int
    end: int
    metadata: dict[str, Any]
    sparse: SparseVector | None = None

    @classmethod
    def from_payload(
        cls, id_: Any, payload: dict[str, Any], sparse: SparseVector | None = None
    ) -> StoredChunk:
        return cls(
            id=str(id_),
            doc_id=payload["doc_id"],
            chunk_index=int(payload["chunk_index"]),
            text=payload["text"],
            start=int(payload.get("start", 0)),
            end=int(payload.get("end", len(payload["text"]))),
            metadata=dict(payload.get("metadata") or {}),
            sparse=sparse,
        )


@dataclass(frozen=True)
class HybridQuery:
    """One search, as the store runs it.

    `candidates` is the length of each retriever's list (the prefetch limit); in hybrid
    mode the same two lists come back beside the fused one, giving per-retriever ranks.
    """

    mode: Mode
    limit: int
    candidates: int
    sparse: SparseVector | None = None
    dense: np.ndarray | None = None
    fusion: Fusion = "rrf"
    rrf_k: int = 61
    weights: tuple[float, float] | None = None  # (sparse, dense), RRF only
    conditions: list[Condition] = field(default_factory=list)
    with_sparse_vectors: bool = False
    tenant: str = DEFAULT_TENANT  # the store adds its condition beneath `conditions`


@dataclass(frozen=True)
class RankedChunk:
    """A store hit with its fused score and each retriever's score and 1-based rank."""

    chunk: StoredChunk
    score: float
    sparse_score: float | None
    dense_score: float | None
    sparse_rank: int | None
    dense_rank: int | None


@dataclass(frozen=True)
class ListSpec:
    """One ranked list of a query plan: `fused`, or one retriever's `sparse`/`dense` list."""

    source: Literal["fused", "sparse", "dense"]
    limit: int
    with_payload: bool


def plan(query: HybridQuery) -> list[ListSpec]:
    """The lists a search needs, in one batch: the answer list first, then candidate lists."""
    if query.mode == "hybrid":
        return [
            ListSpec("fused", query.limit, True),
            ListSpec("sparse", query.candidates, False),
            ListSpec("dense", query.candidates, False),
        ]
    return [ListSpec(query.mode, query.limit, True)]


def assemble(
    query: HybridQuery,
    lists: Sequence[Sequence[tuple[str, float, StoredChunk | None]]],
) -> list[RankedChunk]:
    """Join the plan's lists `(id, score, chunk)` into hits with per-retriever scores and
    ranks, in the fixed order `tie_break_key` gives (the store's order of equal scores can
    change from call to call)."""
    answer = lists[0]
    if query.mode != "hybrid":
        ordered = sorted(answer, key=lambda item: (-item[1], item[0]))
        return [
            RankedChunk(
                chunk=chunk,  # type: ignore[arg-type]  # the answer list carries payloads
                score=score,
                sparse_score=score if query.mode == "sparse" else None,
                dense_score=score if query.mode == "dense" else None,
                sparse_rank=rank if query.mode == "sparse" else None,
                dense_rank=rank if query.mode == "dense" else None,
            )
            for rank, (_, score, chunk) in enumerate(ordered, start=1)
        ]
    sparse = list_ranks([(pid, score) for pid, score, _ in lists[1]])
    dense = list_ranks([(pid, score) for pid, score, _ in lists[2]])
    hits = []
    for pid, score, chunk in answer:
        s_rank, s_score = sparse.get(pid, (None, None))
        d_rank, d_score = dense.get(pid, (None, None))
        hits.append(RankedChunk(chunk, score, s_score, d_score, s_rank, d_rank))  # type: ignore[arg-type]
    return sorted(hits, key=tie_break_key)


SPARSE_DATATYPES = ("float32", "float16")


def check_sparse_datatype(value: object) -> str:
    check_choice("sparse_datatype", value, SPARSE_DATATYPES)
    return str(value)


def datatype_mismatch(where: str, stored: str, asked: str) -> IndexMismatchError:
    return IndexMismatchError(
        f"{where} stores sparse weights as {stored} but sparse_datatype={asked!r} was asked for; "
        f"open it with sparse_datatype={stored!r} (RAG_SPLADE_SPARSE_DATATYPE={stored}), "
        "or build a new index"
    )


def describe_mismatch(expected: VectorSpec, found: dict[str, Any]) -> list[str]:
    """What differs between the encoders' vectors and an existing index's, in words."""
    problems = []
    dense = found.get("dense", {})
    if expected.dense_name not in dense:
        problems.append(
            f"dense vector {expected.dense_name!r} missing (index has {sorted(dense) or 'none'})"
        )
    elif dense[expected.dense_name] != expected.dense_size:
        problems.append(
            f"dense vector {expected.dense_name!r} has size {dense[expected.dense_name]} in the "
            f"index but the dense encoder gives {expected.dense_size}"
        )
    sparse = found.get("sparse", [])
    if expected.sparse_name not in sparse:
        problems.append(
            f"sparse vector {expected.sparse_name!r} missing (index has {sorted(sparse) or 'none'})"
        )
    built_by = found.get("sparse_fingerprint")
    if built_by and expected.sparse_fingerprint and built_by != expected.sparse_fingerprint:
        problems.append(
            "it was built with another SPLADE model (a different fingerprint of its config and "
            "weights, e.g. a fine-tuned one): its stored vectors do not match this model's; "
            "rebuild it with `rag-splade ingest --reindex`"
        )
    dense_built_by = found.get("dense_fingerprint")
    if (
        dense_built_by
        and expected.dense_fingerprint
        and dense_built_by != expected.dense_fingerprint
    ):
        problems.append(
            "it was built with another dense model (a different fingerprint of its weights, "
            "e.g. another model of the same size): its stored vectors do not match this "
            "model's; rebuild it with `rag-splade ingest --reindex`"
        )
    vocab = found.get("sparse_vocab_size")
    if vocab is not None and vocab != expected.sparse_vocab_size:
        problems.append(
            f"sparse vocabulary has {vocab} terms in the index but the SPLADE model has "
            f"{expected.sparse_vocab_size}"
        )
    return problems


@runtime_checkable
class HybridStore(Protocol):
    """What `HybridIndex` needs from a store. `EdgeStore` and `QdrantServerStore` implement it.

    Every read and write is scoped to one tenant (`rag_splade.store.tenants`): the store
    adds the tenant's condition beneath the caller's conditions. Reads alone may name
    `ALL_TENANTS`.
    """

    def open(self, spec: VectorSpec) -> None:
        """Create the index, or open it and check it matches `spec` (raise if not)."""

    def upsert(self, points: Sequence[ChunkPoint]) -> None: ...

    def delete_stale_chunks(self, doc_id: str, keep: int, *, tenant: str = DEFAULT_TENANT) -> None:
        """Delete the chunks of `doc_id` whose index is >= `keep`."""

    def delete_document(self, doc_id: str, *, tenant: str = DEFAULT_TENANT) -> int:
        """Delete every chunk of `doc_id`; return how many there were."""

    def get_document(self, doc_id: str, *, tenant: str = DEFAULT_TENANT) -> list[StoredChunk]: ...

    def iter_payloads(
        self,
        fields: Sequence[str],
        conditions: list[Condition] | None = None,
        *,
        tenant: str = DEFAULT_TENANT,
    ) -> Iterator[dict[str, Any]]:
        """Every chunk's payload, only the top-level `fields`, page by page, in no set order."""

    def query(self, query: HybridQuery) -> list[RankedChunk]: ...

    def count(
        self, conditions: list[Condition] | None = None, *, tenant: str = DEFAULT_TENANT
    ) -> int: ...

    def ensure_payload_indexes(self, fields: Mapping[str, str]) -> None:
        """Create the payload index of each declared metadata field that lacks one."""

    def payload_indexes(self) -> dict[str, str]:
        """The payload indexes the engine holds: payload path -> type."""

    def close(self) -> None: ...


@runtime_checkable
class Optimizable(Protocol):
    """An optional store capability: index freshly written data on request.

    An embedded engine builds its vector indexes only when asked (`EdgeStore`); a server
    does it in the background and has nothing to offer here. Check with
    `isinstance(store, Optimizable)`.
    """

    def optimize(self) -> None:
        """Build the indexes of freshly written segments now (blocking)."""

    def maybe_optimize(self) -> bool:
        """Optimise if enough was written since the last time (after bulk writes); say if
        it did."""

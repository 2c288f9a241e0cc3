"""Store congruence: every `HybridStore` operation, run on the embedded Edge index and on
qdrant-client's local mode (the server store's code) with the same data, gives the same
answer. A method added to the protocol without a case here fails the coverage test."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from rag_splade.store import ChunkPoint, HybridQuery, HybridStore, VectorSpec, parse_filters
from rag_splade.store.qdrant_base import QdrantStoreBase
from rag_splade.types import SparseVector
from tests.stores import STORE_KINDS, new_store

SPEC = VectorSpec(dense_size=8, sparse_vocab_size=64)
# what each protocol method is exercised by below
COVERED = {
    "open": "test_open_and_reopen",
    "upsert": "both fixture",
    "count": "test_count",
    "get_document": "test_get_document",
    "iter_payloads": "test_iter_payloads",
    "query": "test_query",
    "delete_stale_chunks": "test_deletes",
    "delete_document": "test_deletes",
    "ensure_payload_indexes": "test_payload_indexes",
    "payload_indexes": "test_payload_indexes",
    "close": "both fixture",
}
TENANTS = ("default", "acme")


def corpus(seed: int = 7) -> list[ChunkPoint]:
    """24 documents of 1-3 chunks, random sparse and dense vectors, varied metadata; the
    last 8 ids also in tenant `acme` (other vectors: two documents under one id)."""
    rng = np.random.default_rng(seed)
    found = []
    for d, tenant in [(d, "default") for d in range(24)] + [(d, "acme") for d in range(16, 24)]:
        chunks = int(rng.integers(1, 4))
        for c in range(chunks):
            terms = np.sort(
                rng.choice(SPEC.sparse_vocab_size, size=int(rng.integers(3, 9)), replace=False)
            )
            dense = rng.normal(size=SPEC.dense_size).astype(np.float32)
            found.append(
                ChunkPoint(
                    doc_id=f"doc-{d:02d}",
                    chunk_index=c,
                    text=f"文書{d}の{c}番目の段落",
                    start=10 * c,
                    end=10 * c + 9,
                    metadata={
                        "source": ["faq", "manual", "blog"][d % 3],
                        "year": 2018 + d % 6,
                        "tags": ["a", "b"] if d % 2 else ["c"],
                        "nested": {"team": f"t{d % 4}"},
                    },
                    sparse=SparseVector(
                        terms.astype(np.int32),
                        rng.uniform(0.1, 3.0, size=terms.size).astype(np.float32),
                    ),
                    dense=dense / np.linalg.norm(dense),
                    chunk_count=chunks,
                    tenant=tenant,
                )
            )
    return found


@pytest.fixture
def both(tmp_path: Path) -> Iterator[dict[str, QdrantStoreBase]]:
    """The same corpus in each kind of store, opened, closed after the test."""
    stores = {kind: new_store(kind, tmp_path / kind) for kind in STORE_KINDS}
    data = corpus()
    for store in stores.values():
        store.open(SPEC)
        store.upsert(data)
    yield stores
    for store in stores.values():
        store.close()


def same(stores: dict[str, QdrantStoreBase], ask: Any) -> Any:
    """`ask(store)` on every store; assert the answers are equal and return one."""
    answers = {kind: ask(store) for kind, store in stores.items()}
    first = answers[STORE_KINDS[0]]
    for kind, answer in answers.items():
        assert answer == first, f"{kind} differs from {STORE_KINDS[0]}"
    return first


def test_every_protocol_method_is_covered() -> None:
    methods = {
        name
        for name, _ in inspect.getmembers(HybridStore, inspect.isfunction)
        if not name.startswith("_")
    }
    assert methods == set(COVERED)


def test_open_and_reopen(both: dict[str, QdrantStoreBase], tmp_path: Path) -> None:
    for _kind, store in both.items():
        assert isinstance(store, HybridStore)
    # the edge index is reopened from disk with the same spec; another spec is refused
    edge = new_store("edge", tmp_path / "edge")
    both["edge"].close()
    edge.open(SPEC)
    assert edge.count() == both["memory"].count()
    edge.close()
    wrong = VectorSpec(dense_size=SPEC.dense_size + 1, sparse_vocab_size=SPEC.sparse_vocab_size)
    for store in (new_store("edge", tmp_path / "edge"), both["memory"]):
        with pytest.raises(ValueError, match="dense"):
            store.open(wrong)
    both["edge"] = new_store("edge", tmp_path / "edge")
    both["edge"].open(SPEC)


@pytest.mark.parametrize(
    "filters",
    [
        None,
        {"source": "faq"},
        {"year": {"gte": 2020, "lt": 2022}},
        {"tags": ["a"]},
        {"nested.team": "t1", "source": ["manual", "blog"]},
        {"doc_id": "doc-03"},
        {"chunk_index": 0},
        {"source": "none-such"},
    ],
)
def test_count(both: dict[str, QdrantStoreBase], filters: dict[str, Any] | None) -> None:
    conditions = parse_filters(filters) if filters is not None else None
    total = same(both, lambda s: s.count(conditions))
    assert (total == 0) == (filters == {"source": "none-such"})


def test_get_document(both: dict[str, QdrantStoreBase]) -> None:
    for doc_id in ("doc-00", "doc-05", "doc-23", "missing"):
        chunks = same(both, lambda s, d=doc_id: s.get_document(d))
        assert [c.chunk_index for c in chunks] == list(range(len(chunks)))
        assert (not chunks) == (doc_id == "missing")


def test_iter_payloads(both: dict[str, QdrantStoreBase]) -> None:
    def rows(store: QdrantStoreBase, fields: list[str], filters: Any = None) -> list[str]:
        conditions = parse_filters(filters) if filters else None
        found = store.iter_payloads(fields, conditions)
        return sorted(repr(sorted(p.items())) for p in found)

    defaults = [p for p in corpus() if p.tenant == "default"]
    assert len(same(both, lambda s: rows(s, ["doc_id", "chunk_index"]))) == len(defaults)
    same(both, lambda s: rows(s, ["doc_id", "metadata", "chunk_count"]))
    assert same(both, lambda s: rows(s, ["doc_id"], {"source": "blog"}))


def _plans() -> list[dict[str, Any]]:
    return [
        {"mode": "sparse"},
        {"mode": "dense"},
        {"mode": "hybrid", "fusion": "rrf"},
        {"mode": "hybrid", "fusion": "rrf", "rrf_k": 2, "weights": (2.0, 0.5)},
        {"mode": "hybrid", "fusion": "dbsf"},
        {"mode": "hybrid", "conditions": parse_filters({"year": {"gte": 2021}})},
        {"mode": "sparse", "with_sparse_vectors": True},
    ]


@pytest.mark.parametrize("plan", _plans(), ids=lambda p: "-".join(str(v) for v in p.values()))
def test_query(both: dict[str, QdrantStoreBase], plan: dict[str, Any]) -> None:
    rng = np.random.default_rng(11)
    terms = np.sort(rng.choice(SPEC.sparse_vocab_size, size=6, replace=False)).astype(np.int32)
    sparse = SparseVector(terms, rng.uniform(0.5, 2.0, size=6).astype(np.float32))
    dense = rng.normal(size=SPEC.dense_size).astype(np.float32)
    dense /= np.linalg.norm(dense)
    # hybrid: the whole fused pool (both lists), so that no cut falls inside a tie of RRF
    # scores (Qdrant keeps any of the tied points there; HybridIndex asks again, the store
    # does not)
    query = HybridQuery(
        limit=40 if plan["mode"] == "hybrid" else 10,
        candidates=20,
        sparse=sparse if plan["mode"] != "dense" else None,
        dense=dense if plan["mode"] != "sparse" else None,
        **plan,
    )

    def ranked(store: QdrantStoreBase) -> list[tuple[Any, ...]]:
        hits = store.query(query)
        return [
            (
                h.chunk.id,
                h.sparse_rank,
                h.dense_rank,
                round(h.score, 4),
                None if h.sparse_score is None else round(h.sparse_score, 4),
                None if h.dense_score is None else round(h.dense_score, 4),
                None if h.chunk.sparse is None else h.chunk.sparse.indices.tolist(),
            )
            for h in hits
        ]

    hits = same(both, ranked)
    assert hits, "the query found nothing: the comparison would prove nothing"
    if plan.get("with_sparse_vectors"):
        assert all(h[-1] for h in hits)


def test_deletes(both: dict[str, QdrantStoreBase]) -> None:
    longest = max(corpus(), key=lambda p: p.chunk_count).doc_id
    same(both, lambda s: s.delete_stale_chunks(longest, 1))
    assert [c.chunk_index for c in same(both, lambda s: s.get_document(longest))] == [0]
    assert same(both, lambda s: s.delete_document(longest)) == 1
    assert same(both, lambda s: s.delete_document(longest)) == 0
    assert same(both, lambda s: s.delete_document("missing")) == 0
    same(both, lambda s: s.count())


@pytest.mark.parametrize("tenant", [*TENANTS, "*"])
def test_tenants_see_their_own(both: dict[str, QdrantStoreBase], tenant: str) -> None:
    expected = [p for p in corpus() if tenant in ("*", p.tenant)]
    assert same(both, lambda s: s.count(tenant=tenant)) == len(expected)
    ids = same(
        both, lambda s: sorted(r["doc_id"] for r in s.iter_payloads(["doc_id"], tenant=tenant))
    )
    assert ids == sorted(p.doc_id for p in expected)
    if tenant == "*":
        return
    rng = np.random.default_rng(3)
    dense = rng.normal(size=SPEC.dense_size).astype(np.float32)
    query = HybridQuery(mode="dense", limit=50, candidates=50, dense=dense, tenant=tenant)
    hits = same(both, lambda s: [h.chunk.id for h in s.query(query)])
    assert sorted(hits) == sorted(p.id for p in expected)
    doc = same(both, lambda s: s.get_document("doc-20", tenant=tenant))
    assert {c.id for c in doc} == {p.id for p in expected if p.doc_id == "doc-20"}


def test_a_write_or_get_never_names_every_tenant(both: dict[str, QdrantStoreBase]) -> None:
    for store in both.values():
        calls = (
            (store.delete_document, ("doc-20",), "*"),
            (store.delete_stale_chunks, ("doc-20", 0), "*"),
            (store.get_document, ("doc-20",), "*"),
            (store.count, (), "no such/tenant"),
        )
        for call, args, tenant in calls:
            with pytest.raises(ValueError, match="not a tenant id"):
                call(*args, tenant=tenant)
    assert same(both, lambda s: s.count(tenant="*")) == len(corpus())


def test_deleting_in_one_tenant_leaves_the_other(both: dict[str, QdrantStoreBase]) -> None:
    acme = sum(p.doc_id == "doc-20" for p in corpus() if p.tenant == "acme")
    assert same(both, lambda s: s.delete_document("doc-20", tenant="acme")) == acme
    assert same(both, lambda s: len(s.get_document("doc-20"))) > 0


def test_payload_indexes(both: dict[str, QdrantStoreBase]) -> None:
    """Edge holds the tenant index and the declared ones; qdrant-client's local mode holds
    none (it would ignore them): the one answer that differs, and the docs say so."""
    for store in both.values():
        store.ensure_payload_indexes({"year": "integer", "nested.team": "keyword"})
        store.ensure_payload_indexes({"year": "integer"})  # again: nothing to do
    assert both["edge"].payload_indexes() == {
        "chunk_index": "integer",
        "doc_id": "keyword",
        "metadata.nested.team": "keyword",
        "metadata.year": "integer",
        "tenant": "tenant",
    }
    assert both["memory"].payload_indexes() == {}
    # the answers do not depend on the index
    same(both, lambda s: s.count(parse_filters({"year": {"gte": 2021}})))
    with pytest.raises(ValueError, match="type 'text' is not one of"):
        both["edge"].ensure_payload_indexes({"year": "text"})

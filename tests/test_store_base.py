"""The shared Qdrant store base: optional capabilities, the Edge index marker, paging."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from rag_splade.store import (
    ChunkPoint,
    EdgeStore,
    HybridStore,
    Optimizable,
    QdrantServerStore,
    VectorSpec,
    parse_filters,
    qdrant_base,
)
from rag_splade.store.qdrant_base import QdrantStoreBase
from rag_splade.types import SparseVector
from tests.stores import new_store

SPEC = VectorSpec(dense_size=4, sparse_vocab_size=16)


def points(doc_id: str, n: int) -> list[ChunkPoint]:
    """`n` tiny chunks of one document, with vectors that differ from chunk to chunk."""
    return [
        ChunkPoint(
            doc_id=doc_id,
            chunk_index=i,
            text=f"{doc_id} の {i} 番目",
            start=0,
            end=6,
            metadata={"source": doc_id},
            sparse=SparseVector(np.array([i % 16, 15]), np.array([1.0, 0.5])),
            dense=np.array([1.0, float(i), 0.5, 0.25], dtype=np.float32),
            chunk_count=n,
        )
        for i in range(n)
    ]


make_store = new_store


@pytest.fixture
def store(store_kind: str, tmp_path: Path) -> Iterator[QdrantStoreBase]:
    made = new_store(store_kind, tmp_path)
    made.open(SPEC)
    yield made
    made.close()


def test_only_edge_is_optimizable(tmp_path: Path) -> None:
    edge = EdgeStore(tmp_path / "index")
    server = QdrantServerStore(location=":memory:", collection="c")
    try:
        assert isinstance(edge, HybridStore) and isinstance(server, HybridStore)
        assert isinstance(edge, Optimizable)
        assert not isinstance(server, Optimizable)
        assert not hasattr(server, "optimize") and not hasattr(server, "maybe_optimize")
    finally:
        server.close()


def test_is_index_dir_knows_an_index_from_documents(tmp_path: Path) -> None:
    store = EdgeStore(tmp_path / "index")
    store.open(SPEC)
    store.close()
    assert EdgeStore.is_index_dir(tmp_path / "index")
    assert EdgeStore.is_index_dir(str(tmp_path / "index"))

    empty = tmp_path / "empty"
    empty.mkdir()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("梅雨のない地域", encoding="utf-8")
    (docs / "b.json").write_text("{}", encoding="utf-8")
    assert not EdgeStore.is_index_dir(empty)
    assert not EdgeStore.is_index_dir(docs)
    assert not EdgeStore.is_index_dir(tmp_path / "missing")


def test_scroll_pages_through_more_than_one_page(
    store: QdrantStoreBase, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(qdrant_base, "SCROLL_PAGE", 3)
    store.batch_size = 4  # several upsert requests too
    store.upsert(points("a", 7) + points("b", 4))

    pages = []
    scroll_page = store._scroll_page

    def counted(*args, **kwargs):
        records, offset = scroll_page(*args, **kwargs)
        pages.append(len(records))
        return records, offset

    monkeypatch.setattr(store, "_scroll_page", counted)

    payloads = list(store.iter_payloads(["doc_id", "chunk_index"]))
    assert len(pages) >= 4 and max(pages) <= 3  # 11 records, 3 a page
    assert sorted((p["doc_id"], p["chunk_index"]) for p in payloads) == sorted(
        [("a", i) for i in range(7)] + [("b", i) for i in range(4)]
    )
    assert all(set(p) == {"doc_id", "chunk_index"} for p in payloads)

    only_a = list(store.iter_payloads(["chunk_index"], parse_filters({"doc_id": "a"})))
    assert sorted(p["chunk_index"] for p in only_a) == list(range(7))
    assert [c.chunk_index for c in store.get_document("a")] == list(range(7))
    assert store.count() == 11

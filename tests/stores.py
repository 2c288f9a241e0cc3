"""The two stores every store-touching test runs on: the embedded Edge index and
qdrant-client's in-memory local mode (the server store's code path, without a server)."""

from __future__ import annotations

from pathlib import Path

from rag_splade.store.edge import EdgeStore
from rag_splade.store.qdrant_base import QdrantStoreBase
from rag_splade.store.server import QdrantServerStore

STORE_KINDS = ("edge", "memory")


def new_store(kind: str, folder: Path, collection: str = "test") -> QdrantStoreBase:
    """An unopened store of `kind`; an Edge one lives in `folder / "index"`."""
    if kind == "edge":
        return EdgeStore(folder / "index")
    if kind == "memory":
        return QdrantServerStore(location=":memory:", collection=collection)
    raise ValueError(f"store kind {kind!r}: one of {STORE_KINDS}")

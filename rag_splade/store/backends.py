"""The store backends, declared once: how each is built, found, dropped and snapshotted.

`store_backend(settings)` is the one place that chooses: the Qdrant server when
`qdrant_url` is set, else the embedded Edge index. `backend_of(store)` finds the entry
of a store that was built by hand. Everything else (the CLI, the service, the ingest
job) asks the entry and never branches on the backend itself. A new backend is one
`StoreBackend` subclass here, added to `STORE_BACKENDS`, plus its store module.

Either backend raises the library's errors (`rag_splade.errors`): `StoreUnavailableError`
when the store cannot be reached, `IndexInUseError`, `IndexDamagedError`, `DiskFullError`.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from rag_splade.errors import IndexNotFoundError

if TYPE_CHECKING:
    from rag_splade.settings import Settings
    from rag_splade.store.base import HybridStore
    from rag_splade.store.snapshots import Snapshots

StoreBackendName = Literal["edge", "server"]

__all__ = [
    "STORE_BACKENDS",
    "EdgeBackend",
    "ServerBackend",
    "StoreBackend",
    "StoreBackendName",
    "backend_of",
    "store_backend",
]


class StoreBackend(ABC):
    """One kind of store: what the front ends need of it, whatever it is."""

    name: ClassVar[StoreBackendName]
    summary: ClassVar[str]

    @abstractmethod
    def build(self, s: Settings) -> HybridStore:
        """The store `s` points at (not opened: `HybridIndex` opens it with its models)."""

    @abstractmethod
    def exists(self, s: Settings) -> bool:
        """Whether the index `s` points at exists; nothing is created."""

    @abstractmethod
    def require(self, s: Settings) -> None:
        """For commands that only read: raise `IndexNotFoundError` when it cannot exist."""

    @abstractmethod
    def drop(self, s: Settings) -> None:
        """Delete the index `s` points at (to rebuild it); nothing there, nothing done."""

    @abstractmethod
    def owns(self, store: HybridStore) -> bool:
        """Whether `store` is of this backend."""

    @abstractmethod
    def snapshots(self, s: Settings, store: HybridStore | None = None) -> Snapshots:
        """The snapshots of the index `s` points at, or of the open `store` when given."""

    @abstractmethod
    def open_for_snapshots(self, s: Settings) -> HybridStore:
        """The index opened without its models, to snapshot it (close it after)."""


class EdgeBackend(StoreBackend):
    """The embedded Qdrant Edge index: a folder with its manifest."""

    name = "edge"
    summary = "the embedded Qdrant Edge index at RAG_SPLADE_INDEX_PATH"

    def build(self, s: Settings) -> HybridStore:
        from rag_splade.store.edge import EdgeStore

        return EdgeStore(s.index_path, sparse_datatype=s.sparse_datatype)

    def exists(self, s: Settings) -> bool:
        from rag_splade.store.edge import EdgeStore

        return EdgeStore.is_index_dir(s.index_path)

    def require(self, s: Settings) -> None:
        # opening an Edge index creates it: a mistyped path would leave an empty one behind
        if not self.exists(s):
            raise IndexNotFoundError(
                f"no index at {s.index_path}; build it with `rag-splade ingest PATH "
                f"--index-path {s.index_path}` or point RAG_SPLADE_INDEX_PATH / --index-path "
                "at one"
            )

    def drop(self, s: Settings) -> None:
        # only a folder this library wrote (it holds the manifest) is ever deleted
        if self.exists(s):
            shutil.rmtree(s.index_path)
        elif s.index_path.exists() and any(s.index_path.iterdir()):
            raise ValueError(
                f"{s.index_path} is not an index this library wrote (no manifest): not deleted"
            )

    def owns(self, store: HybridStore) -> bool:
        from rag_splade.store.edge import EdgeStore

        return isinstance(store, EdgeStore)

    def snapshots(self, s: Settings, store: HybridStore | None = None) -> Snapshots:
        from rag_splade.store.snapshots import EdgeSnapshots

        path = getattr(store, "path", None) or s.index_path
        return EdgeSnapshots(path, s.snapshot_dir, keep_replaced=s.snapshot_keep_replaced)

    def open_for_snapshots(self, s: Settings) -> HybridStore:
        from rag_splade.store.snapshots import open_for_snapshot

        return open_for_snapshot(s.index_path)


class ServerBackend(StoreBackend):
    """A collection on a Qdrant server or cluster (`RAG_SPLADE_QDRANT_URL`)."""

    name = "server"
    summary = "collection RAG_SPLADE_COLLECTION on the Qdrant server at RAG_SPLADE_QDRANT_URL"

    def build(self, s: Settings) -> HybridStore:
        from rag_splade.store.server import QdrantServerStore

        return QdrantServerStore(
            url=s.qdrant_url,
            api_key=_api_key(s),
            collection=s.collection,
            shard_number=s.shard_number,
            replication_factor=s.replication_factor,
            timeout=s.qdrant_timeout,
            sparse_datatype=s.sparse_datatype,
        )

    def exists(self, s: Settings) -> bool:
        client = _client(s)
        try:
            return bool(client.collection_exists(s.collection))
        finally:
            client.close()

    def require(self, s: Settings) -> None:
        # a missing collection is created on first use and reads as empty; not refused
        return None

    def drop(self, s: Settings) -> None:
        client = _client(s)
        try:
            if client.collection_exists(s.collection):
                client.delete_collection(s.collection)
        finally:
            client.close()

    def owns(self, store: HybridStore) -> bool:
        from rag_splade.store.server import QdrantServerStore

        return isinstance(store, QdrantServerStore)

    def snapshots(self, s: Settings, store: HybridStore | None = None) -> Snapshots:
        from rag_splade.store.server import QdrantServerStore
        from rag_splade.store.snapshots import ServerSnapshots

        target = store if store is not None else self.build(s)
        if not isinstance(target, QdrantServerStore):
            raise TypeError(f"server snapshots need a QdrantServerStore, got {target!r}")
        return ServerSnapshots(target)

    def open_for_snapshots(self, s: Settings) -> HybridStore:
        return self.build(s)  # the server keeps the layout: nothing to open


STORE_BACKENDS: dict[StoreBackendName, StoreBackend] = {
    backend.name: backend for backend in (EdgeBackend(), ServerBackend())
}


def store_backend(s: Settings) -> StoreBackend:
    """The backend `s` names: the server when `qdrant_url` is set, else Edge."""
    return STORE_BACKENDS["server" if s.qdrant_url else "edge"]


def backend_of(store: HybridStore) -> StoreBackend:
    """The backend entry of an existing store (one a caller built by hand, say).

    Raises:
        TypeError: a store of no registered backend, naming the known ones.
    """
    for backend in STORE_BACKENDS.values():
        if backend.owns(store):
            return backend
    known = ", ".join(STORE_BACKENDS)
    raise TypeError(f"{type(store).__name__} is a store of no known backend ({known})")


def _api_key(s: Settings) -> str | None:
    return s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None


def _client(s: Settings) -> Any:
    from qdrant_client import QdrantClient

    from rag_splade.store.outage import GuardedClient

    client = QdrantClient(url=s.qdrant_url, api_key=_api_key(s), timeout=int(s.qdrant_timeout))
    return GuardedClient(client, str(s.qdrant_url))

"""Snapshots of a Qdrant server collection, through the server's own snapshot API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_splade.errors import SnapshotError
from rag_splade.store.snapshot_info import SnapshotInfo

if TYPE_CHECKING:
    from rag_splade.store.base import HybridStore, VectorSpec
    from rag_splade.store.server import QdrantServerStore


class ServerSnapshots:
    """Snapshots of a Qdrant server collection, through the server's snapshot API.

    The server writes them into its own snapshot folder (`/qdrant/snapshots` in the official
    image); a restore asks the server to recover from `file://<server_dir>/<collection>/<name>`.
    qdrant-client's local mode has no snapshots: its store raises a `SnapshotError`.
    """

    replaces_files = False  # the server swaps the collection's files itself

    def __init__(self, store: QdrantServerStore, server_dir: str = "/qdrant/snapshots") -> None:
        if store.url is None:
            raise SnapshotError(
                "snapshots of a qdrant-client local collection are not supported by Qdrant's "
                "local mode; use a Qdrant server, or the embedded Edge index"
            )
        self.store = store
        self.server_dir = server_dir.rstrip("/")

    def create(self, store: HybridStore | None = None) -> SnapshotInfo:
        """Ask the server to snapshot the collection (`store`, when given, must hold it)."""
        if store is not None and getattr(store, "collection", None) != self.store.collection:
            raise SnapshotError(
                f"these snapshots are of collection {self.store.collection!r}, not of {store!r}"
            )
        made = self.store.client.create_snapshot(self.store.collection, wait=True)
        if made is None:
            raise SnapshotError(f"the server made no snapshot of {self.store.collection!r}")
        return _server_info(made)

    def list(self) -> list[SnapshotInfo]:
        found = self.store.client.list_snapshots(self.store.collection)
        return sorted((_server_info(s) for s in found), key=lambda s: (s.created, s.name))

    def verify(self, name: str = "latest", expected: VectorSpec | None = None) -> SnapshotInfo:
        raise SnapshotError("verify applies to the embedded index; the server checks its own")

    def restore(
        self, name: str = "latest", expected: VectorSpec | None = None
    ) -> tuple[SnapshotInfo, Path | None]:
        # the server checks the collection's own layout; it records no fingerprints
        snapshots = self.list()
        chosen = snapshots[-1:] if name == "latest" else [s for s in snapshots if s.name == name]
        if not chosen:
            known = ", ".join(s.name for s in snapshots) or "none"
            raise SnapshotError(f"no snapshot {name!r} of {self.store.collection!r} ({known})")
        location = f"file://{self.server_dir}/{self.store.collection}/{chosen[0].name}"
        self.store.client.recover_snapshot(self.store.collection, location, wait=True)
        return chosen[0], None


def _server_info(description: Any) -> SnapshotInfo:

    return SnapshotInfo(
        name=description.name,
        created=str(description.creation_time or ""),
        points=None,
        size_bytes=int(description.size or 0),
    )

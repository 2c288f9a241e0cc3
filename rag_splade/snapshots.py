"""Snapshots of an index; the code lives with the stores (`rag_splade.store.snapshots`)."""

from rag_splade.store.snapshots import (
    EdgeSnapshots,
    IndexInUseError,
    ServerSnapshots,
    SnapshotError,
    SnapshotInfo,
    Snapshots,
    open_for_snapshot,
)

__all__ = [
    "EdgeSnapshots",
    "IndexInUseError",
    "ServerSnapshots",
    "SnapshotError",
    "SnapshotInfo",
    "Snapshots",
    "open_for_snapshot",
]

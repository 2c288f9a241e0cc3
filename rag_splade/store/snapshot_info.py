"""`SnapshotInfo`: one snapshot as every backend's snapshots describe it."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot: its name, when it was taken (UTC, ISO 8601), its points and size."""

    name: str
    created: str
    points: int | None
    size_bytes: int
    path: str | None = None  # the archive (Edge); None for a server snapshot

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

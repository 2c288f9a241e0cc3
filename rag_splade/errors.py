"""The library's errors, in one module: each names what happened and the way out.

A front end maps them without knowing any backend: `StoreUnavailableError` is worth a 503
and a retry, `IndexInUseError` worth waiting for, `DiskFullError` a 507, the rest a clear
refusal. The stores raise them; nothing above the library inspects qdrant-client's or
gRPC's exceptions.
"""

from __future__ import annotations

__all__ = [
    "DiskFullError",
    "IndexDamagedError",
    "IndexInUseError",
    "IndexNotFoundError",
    "ModelUnavailableError",
    "SnapshotError",
    "StoreUnavailableError",
    "is_store_outage",
]


class StoreUnavailableError(ConnectionError):
    """The store cannot be reached now (refused, reset, timed out, 502-504, gRPC
    UNAVAILABLE): retry later. The backend's own exception is the `__cause__`."""


class IndexInUseError(RuntimeError):
    """The embedded index is open in another process (Qdrant Edge allows one)."""


class IndexDamagedError(RuntimeError):
    """The Edge index's files do not open, or hold other than what was last written."""


class DiskFullError(OSError):
    """Too little free disk space to write safely; nothing of the write was done."""


class ModelUnavailableError(OSError):
    """A configured model that cannot be loaded; the message names the setting and the fix."""


class IndexNotFoundError(FileNotFoundError):
    """A reading command pointed at an index folder that does not exist."""


class SnapshotError(ValueError):
    """A snapshot that is missing, damaged, or cannot be taken or restored here."""


def is_store_outage(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is a `StoreUnavailableError`."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, StoreUnavailableError):
            return True
        current = current.__cause__ or current.__context__
    return False

"""The library's errors, in one module: each names what happened and the way out.

A front end maps them without knowing any backend: `StoreUnavailableError` is worth a 503
and a retry, `IndexInUseError` worth waiting for, `DiskFullError` a 507, the rest a clear
refusal. The stores raise them; nothing above the library inspects qdrant-client's or
gRPC's exceptions.
"""

from __future__ import annotations

from collections.abc import Iterator

__all__ = [
    "DiskFullError",
    "IndexDamagedError",
    "IndexInUseError",
    "IndexMismatchError",
    "IndexNotFoundError",
    "ModelUnavailableError",
    "RemoteEncoderError",
    "RemoteModelMismatchError",
    "SnapshotError",
    "StoreUnavailableError",
    "UnsupportedFilterError",
    "exception_chain",
    "is_store_outage",
]


class StoreUnavailableError(ConnectionError):
    """The store cannot be reached now (refused, reset, timed out, 502-504, gRPC
    UNAVAILABLE): retry later. The backend's own exception is the `__cause__`."""


class IndexInUseError(RuntimeError):
    """The embedded index is open in another process (Qdrant Edge allows one)."""


class IndexDamagedError(RuntimeError):
    """The Edge index's files do not open, or hold other than what was last written."""


class IndexMismatchError(ValueError):
    """An existing index (or a snapshot) built for other encoders: another vector size,
    vocabulary, model fingerprint or storage type. The message names the difference."""


class UnsupportedFilterError(ValueError):
    """A filter the chosen store cannot evaluate correctly (it would match the wrong points
    without an error); the message says what to do instead."""


class DiskFullError(OSError):
    """Too little free disk space to write safely; nothing of the write was done."""


class ModelUnavailableError(OSError):
    """A configured model that cannot be loaded; the message names the setting and the fix."""


class RemoteEncoderError(ConnectionError):
    """A remote encoder server that cannot be reached, or that refused a call; the message
    names its URL and the setting that set it. Nothing of the call was written."""


class RemoteModelMismatchError(ValueError):
    """A remote encoder server that runs another model than this process expects (model
    id, vocabulary, lengths, pruning or prefixes differ); checked once, at start."""


class IndexNotFoundError(FileNotFoundError):
    """A reading command pointed at an index folder that does not exist."""


class SnapshotError(ValueError):
    """A snapshot that is missing, damaged, or cannot be taken or restored here."""


def exception_chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then what it was raised from (`__cause__`, else `__context__`), and so on;
    each once, so a cycle in the chain ends the walk."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def is_store_outage(exc: BaseException) -> bool:
    """Whether `exc`, or an exception it was raised from, is a `StoreUnavailableError`."""
    return any(isinstance(e, StoreUnavailableError) for e in exception_chain(exc))

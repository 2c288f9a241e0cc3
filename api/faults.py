"""Telling a store outage (worth a 503 and a retry) from a bug."""

from __future__ import annotations

import httpx


def is_store_outage(exc: BaseException) -> bool:
    """True for errors meaning "Qdrant cannot be reached now" (worth retrying later).

    qdrant-client wraps transport failures (refused, reset, timed out) in
    `ResponseHandlingException`; a server that is up but failing answers 502-504; over
    gRPC the status is UNAVAILABLE or DEADLINE_EXCEEDED.
    """
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, (ConnectionError, TimeoutError, httpx.TransportError)):
            return True
        if isinstance(current, ResponseHandlingException):
            return True
        if isinstance(current, UnexpectedResponse) and current.status_code in (502, 503, 504):
            return True
        code = getattr(current, "code", None)
        if callable(code) and type(current).__module__.startswith("grpc"):
            name = getattr(code(), "name", "")
            if name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                return True
        current = current.__cause__ or current.__context__
    return False


def is_index_in_use(exc: BaseException) -> bool:
    """True when the embedded index is open in another process (worth waiting for)."""
    from rag_splade.store.edge import IndexInUseError

    return isinstance(exc, IndexInUseError)

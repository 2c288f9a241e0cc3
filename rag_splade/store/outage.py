"""qdrant-client's and gRPC's ways of saying "the server cannot be reached now", turned
into the library's `StoreUnavailableError` at the one place the server store calls out."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import httpx

from rag_splade.errors import StoreUnavailableError, exception_chain


def is_transport_outage(exc: BaseException) -> bool:
    """True for qdrant-client / httpx / gRPC errors meaning "Qdrant cannot be reached now".

    qdrant-client wraps transport failures (refused, reset, timed out) in
    `ResponseHandlingException`; a server that is up but failing answers 502-504; over
    gRPC the status is UNAVAILABLE or DEADLINE_EXCEEDED.
    """
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    for current in exception_chain(exc):
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
    return False


class GuardedClient:
    """A qdrant-client whose calls raise `StoreUnavailableError` (from the original) when
    the server cannot be reached; every other error passes unchanged."""

    def __init__(self, client: Any, where: str) -> None:
        self._client = client
        self._where = where

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._client, name)
        if not callable(attr):
            return attr
        return _guarded(attr, self._where)


def _guarded(fn: Callable[..., Any], where: str) -> Callable[..., Any]:
    @functools.wraps(fn)
    def call(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except StoreUnavailableError:
            raise
        except Exception as e:
            if not is_transport_outage(e):
                raise
            raise StoreUnavailableError(
                f"the Qdrant server {where} cannot be reached ({type(e).__name__}: {e})"
            ) from e

    return call

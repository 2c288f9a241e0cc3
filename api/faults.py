"""Telling a store outage (worth a 503 and a retry) from a bug: the library's own errors,
so the service knows no backend's exceptions."""

from __future__ import annotations

from rag_splade.errors import IndexInUseError, is_store_outage

__all__ = ["is_index_in_use", "is_store_outage"]


def is_index_in_use(exc: BaseException) -> bool:
    """True when the embedded index is open in another process (worth waiting for)."""
    return isinstance(exc, IndexInUseError)

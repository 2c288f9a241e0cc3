"""A server that cannot be reached is the library's `StoreUnavailableError`, raised by the
server store itself; no front end inspects qdrant-client's or gRPC's exceptions."""

from __future__ import annotations

import httpx
import pytest
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from rag_splade import QdrantServerStore
from rag_splade.errors import StoreUnavailableError, is_store_outage
from rag_splade.store.base import VectorSpec
from rag_splade.store.outage import GuardedClient, is_transport_outage


def _unexpected(status: int) -> UnexpectedResponse:
    return UnexpectedResponse(status, "x", b"", httpx.Headers())


class _GrpcError(Exception):
    def __init__(self, name: str) -> None:
        self._name = name

    def code(self) -> object:
        return type("Code", (), {"name": self._name})()


_GrpcError.__module__ = "grpc._channel"


@pytest.mark.parametrize(
    ("exc", "outage"),
    [
        (ResponseHandlingException(httpx.ConnectError("refused")), True),
        (httpx.ReadTimeout("slow"), True),
        (ConnectionResetError(), True),
        (_unexpected(503), True),
        (_unexpected(400), False),
        (_GrpcError("UNAVAILABLE"), True),
        (_GrpcError("DEADLINE_EXCEEDED"), True),
        (_GrpcError("INVALID_ARGUMENT"), False),
        (ValueError("bad filter"), False),
    ],
)
def test_transport_outages_are_told_from_bugs(exc: BaseException, outage: bool) -> None:
    assert is_transport_outage(exc) is outage
    calls = GuardedClient(type("C", (), {"search": lambda self: (_ for _ in ()).throw(exc)})(), "u")
    with pytest.raises(StoreUnavailableError if outage else type(exc)) as raised:
        calls.search()
    assert is_store_outage(raised.value) is outage
    if outage:
        assert raised.value.__cause__ is exc and "u cannot be reached" in str(raised.value)


def test_an_unreachable_server_raises_store_unavailable() -> None:
    store = QdrantServerStore(url="http://127.0.0.1:1", collection="c", timeout=2)
    with pytest.raises(StoreUnavailableError, match=r"http://127\.0\.0\.1:1 cannot be reached"):
        store.open(VectorSpec(dense_size=4, sparse_vocab_size=10))
    store.close()


def test_a_wrapped_outage_is_still_an_outage() -> None:
    try:
        try:
            raise StoreUnavailableError("down")
        except StoreUnavailableError as e:
            raise RuntimeError("while adding") from e
    except RuntimeError as outer:
        assert is_store_outage(outer)
    assert not is_store_outage(RuntimeError("a bug"))

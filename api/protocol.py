"""The HTTP/1.1 connection under `rag-splade serve`: uvicorn's h11 protocol with two things
it lacks.

- A request that h11 refuses before the app sees it (a Content-Length of ``-1`` or
  ``abc``, raw UTF-8 bytes in the path, a malformed request line, headers over the size
  limit) is answered in the service's JSON error shape, not uvicorn's plain text.
- A request's head (request line and headers) must arrive within
  `RAG_SPLADE_TIMEOUT_REQUEST_HEAD_SECONDS` of its first byte (or of the connection's
  start): uvicorn's keep-alive timer only runs between requests, so a client that sends
  half a request line and stalls held its connection for ever (slow loris). It gets a
  408 and the connection is closed. The body's own deadline is the middleware's.
- A body the service answered without reading (a 401 or 413 sent first) must finish
  arriving within `RAG_SPLADE_TIMEOUT_REQUEST_BODY_SECONDS` of that answer, else the
  connection is closed: the middleware's deadline only runs while the app reads, and
  uvicorn's keep-alive timer stops at every byte, so a trickled body held it for ever.

uvicorn takes it as `--http rag_splade.api.protocol:ServiceH11Protocol`; `rag-splade
serve` passes it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from functools import cache
from typing import Any

import h11
from h11._connection import DEFAULT_MAX_INCOMPLETE_EVENT_SIZE
from uvicorn.protocols.http.h11_impl import H11Protocol

from .config import ServiceSettings

PROTOCOL = "rag_splade.api.protocol:ServiceH11Protocol"
_MAX_DETAIL = 200  # characters of h11's reason kept in the message (it quotes the bytes)


@cache
def head_timeout() -> float:
    """`RAG_SPLADE_TIMEOUT_REQUEST_HEAD_SECONDS`, read once per process."""
    return ServiceSettings().timeout_request_head_seconds


@cache
def body_timeout() -> float:
    """`RAG_SPLADE_TIMEOUT_REQUEST_BODY_SECONDS`, read once per process."""
    return ServiceSettings().timeout_request_body_seconds


class _Connection(h11.Connection):
    """h11's connection, keeping the reason of the last protocol error for the answer."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as e:
            self.last_error = e
            raise


class ServiceH11Protocol(H11Protocol):
    """uvicorn's `H11Protocol`, with JSON refusals and a deadline for each request head."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        size = self.config.h11_max_incomplete_event_size
        self._recording = _Connection(h11.SERVER, size or DEFAULT_MAX_INCOMPLETE_EVENT_SIZE)
        self.conn = self._recording
        self._head_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def data_received(self, data: bytes) -> None:
        if self._head_timer is None and self.conn.their_state is h11.IDLE:
            self._arm_head_timer()  # the first bytes of the next request on this connection
        super().data_received(data)
        if self.conn.their_state is not h11.SEND_BODY:
            self._cancel_drain_timer()
        if self.conn.their_state is not h11.IDLE:  # the head is in (or the request failed)
            self._cancel_head_timer()
        elif self._head_timer is None:
            # an unread body just ended and a new request cycle began here, with uvicorn's
            # keep-alive timer stopped: the next head's clock runs from now
            self._arm_head_timer()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        # a pipelined request whose head came in part with the last one: its clock runs now
        if self.conn.their_state is h11.IDLE and self.conn.trailing_data[0]:
            self._arm_head_timer()
        # answered before the body was read: the rest of it has this long to arrive
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.SEND_BODY:
            self._drain_timer = self.loop.call_later(body_timeout(), self._drain_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_drain_timer()
        super().connection_lost(exc)

    def send_400_response(self, msg: str) -> None:
        error = self._recording.last_error
        status = error.error_status_hint if error is not None else 400
        reason = str(error)[:_MAX_DETAIL] if error is not None else msg
        self._answer_and_close(
            status,
            "invalid_http",
            f"the request is not valid HTTP/1.1 ({reason}); the service reads Content-Length "
            "as a decimal number of bytes and a path as ASCII, with other characters "
            "percent-encoded (UTF-8)",
        )

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_timer = self.loop.call_later(head_timeout(), self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_drain_timer(self) -> None:
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None

    def _drain_timed_out(self) -> None:
        self._drain_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.SEND_BODY:
            return
        self.logger.warning(
            "the rest of an answered request's body not received in %s s: connection closed",
            body_timeout(),
        )
        self.transport.close()  # the request was answered already: nothing more to say

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing() or self.conn.their_state is not h11.IDLE:
            return
        self.logger.warning("request head not received in %s s: connection closed", head_timeout())
        self._answer_and_close(
            408,
            "request_timeout",
            f"the request line and headers did not arrive within {head_timeout():g} s "
            "(RAG_SPLADE_TIMEOUT_REQUEST_HEAD_SECONDS)",
        )

    def _answer_and_close(self, status: int, error: str, message: str) -> None:
        """Write a JSON error straight to the socket (h11 sends no response before a
        request it accepted) and close the connection."""
        request_id = uuid.uuid4().hex
        body = json.dumps(
            {"error": error, "message": message, "request_id": request_id}, ensure_ascii=False
        ).encode()
        phrase = {
            400: "Bad Request",
            408: "Request Timeout",
            431: "Request Header Fields Too Large",
        }
        head = (
            f"HTTP/1.1 {status} {phrase.get(status, 'Error')}\r\n"
            "content-type: application/json\r\n"
            f"content-length: {len(body)}\r\n"
            f"x-request-id: {request_id}\r\n"
            "connection: close\r\n\r\n"
        )
        if not self.transport.is_closing():
            self.transport.write(head.encode("ascii") + body)
            self.transport.close()

"""One ASGI middleware for every request: id, size limit, a whole UTF-8 body in time,
metrics, access log, and a JSON answer instead of a stack trace when something escapes
the routes."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterable

from fastapi import APIRouter
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rag_splade.metadata import MAX_DEPTH, json_depth_ok

from .auth import CHALLENGE, UNAUTHORIZED, Authenticator
from .errors import (
    TEI_PATHS,
    ApiError,
    BadEncoding,
    InvalidRequest,
    NotJson,
    TooLarge,
    error_body,
    is_tei_path,
    tei_errors_var,
)
from .observability import Metrics, request_id_var

REQUEST_ID_HEADER = "x-request-id"
GUARDED = ("/v1", "/mcp", *TEI_PATHS)  # paths that need a key (where keys are set)
DOCS = ("/docs", "/redoc", "/openapi.json")  # also guarded unless the docs are public
# metadata nests at most MAX_DEPTH levels; a body adds a few of its own around it
MAX_BODY_DEPTH = MAX_DEPTH + 8
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")  # fullmatch
_BODY_METHODS = {"POST", "PUT", "PATCH"}
UTF8_BOM = b"\xef\xbb\xbf"
# Metric labels take bounded values: any other method is "other", any unmatched path is
# "unmatched", so that random requests cannot add series without end.
_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


class BadFraming(ApiError):
    """A body that is not the one its headers announce (shorter or longer than its
    Content-Length, cut off by the client): never handed to the routes."""

    status, error = 400, "invalid_body"


class BodyTimeout(ApiError):
    status, error = 408, "request_timeout"


class RequestContextMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        metrics: Metrics,
        logger: logging.Logger,
        max_body_bytes: int,
        authenticator: Authenticator | None = None,
        route_of: Callable[[Scope], str | None] | None = None,
        guarded: tuple[str, ...] = GUARDED,
        body_timeout: float | None = None,
    ) -> None:
        self.app = app
        self.body_timeout = body_timeout
        self.metrics = metrics
        self.logger = logger
        self.max_body_bytes = max_body_bytes
        self.authenticator = authenticator
        self.guarded = guarded
        self.route_of = route_of

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        incoming = headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if _VALID_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        tei_token = tei_errors_var.set(is_tei_path(scope["path"]))
        started = time.perf_counter()
        status = {"code": 500, "sent": False}
        refused_route: str | None = None

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"], status["sent"] = message["status"], True
                message.setdefault("headers", [])
                message["headers"] = [
                    *message["headers"],
                    (REQUEST_ID_HEADER.encode(), request_id.encode()),
                ]
            await send(message)

        try:
            if scope["method"] != "OPTIONS" and self._unauthorized(scope, headers):
                # before the body is read: an unauthenticated client costs no parsing; the
                # refusal is counted under the route it was for
                refused_route = self.route_of(scope) if self.route_of else None
                await _send_error(send_with_id, 401, "unauthorized", UNAUTHORIZED, CHALLENGE)
                return
            if scope["method"] in _BODY_METHODS:
                receive = await self._buffered(headers, receive)
            await self.app(scope, receive, send_with_id)
        # raised before the app saw the request
        except (TooLarge, BadEncoding, NotJson, InvalidRequest, BadFraming, BodyTimeout) as r:
            await _send_error(send_with_id, r.status, r.error, r.message)
        except BaseException as e:
            # BaseException: pyo3's PanicException (a Qdrant Edge panic) is not an Exception
            if isinstance(e, (KeyboardInterrupt, SystemExit, asyncio.CancelledError)):
                raise
            if status["sent"]:
                raise
            # Store outages were answered 503 where the store is called (Runtime.store_call):
            # what reaches this point is a bug.
            self.logger.exception("unhandled error")
            await _send_error(
                send_with_id,
                500,
                "internal_error",
                "an internal error occurred; the server log has the details under this request_id",
            )
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            label = getattr(route, "path", None) or refused_route
            if scope["path"] == "/mcp" or scope["path"].startswith("/mcp/"):
                label = "/mcp"  # the mounted MCP app's own routes are not the service's
            if label is None:  # Starlette's own routes (/docs, /openapi.json) set no "route"
                label = scope["path"] if "endpoint" in scope else "unmatched"
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
            self.metrics.requests.labels(label, method, str(status["code"])).inc()
            tenant = self._tenant_label(scope)
            if tenant is not None:
                self.metrics.tenant_requests.labels(tenant, label, str(status["code"])).inc()
            self.metrics.latency.labels(label, method).observe(elapsed)
            path = _printable(scope["path"])  # a %0A in a URL must not start a log line
            self.logger.info(
                "%s %s %s",
                _printable(scope["method"]),
                path,
                status["code"],
                extra={
                    "method": _printable(scope["method"]),
                    "path": path,
                    "route": label,
                    "tenant": tenant,
                    "status": status["code"],
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)
            tei_errors_var.reset(tei_token)

    def _unauthorized(self, scope: Scope, headers: dict[str, str]) -> bool:
        """A `/v1` request without a valid key (where keys are set); a valid one leaves its
        principal in the request's state for the routes."""
        path = scope["path"]
        guarded = any(path == p or path.startswith(p + "/") for p in self.guarded)
        if self.authenticator is None or not guarded:
            return False
        principal = self.authenticator.principal(headers)
        if principal is None:
            return True
        scope.setdefault("state", {})["principal"] = principal
        return False

    def _tenant_label(self, scope: Scope) -> str | None:
        """The request's tenant for metrics and logs: one a key names (or "default"),
        "other" for any other, None before a route chose one. Never the key."""
        tenant = scope.get("state", {}).get("tenant")
        if tenant is None or self.authenticator is None:
            return None
        return tenant if self.authenticator.is_known_tenant(tenant) else "other"

    async def _buffered(self, headers: dict[str, str], receive: Receive) -> Receive:
        """Read the whole body (bounded in size and time), check it is the length its
        Content-Length says, JSON by content type and UTF-8 without a byte-order mark, and
        replay it to the app. A body cut short never reaches the app."""
        limit = self.max_body_bytes
        declared = _content_length(headers)
        if declared is not None and declared > limit:
            raise TooLarge(_too_large(declared, limit))
        chunks: list[bytes] = []
        size = 0
        more = True
        loop = asyncio.get_running_loop()
        deadline = None if self.body_timeout is None else loop.time() + self.body_timeout
        while more:
            message = await self._next(receive, deadline)
            if message["type"] == "http.disconnect":
                # the client closed (or half-closed) its side before the body was complete
                expected = f"of the {declared} declared" if declared is not None else "sent"
                raise BadFraming(
                    f"the request body ended after {size} bytes {expected}: the connection "
                    "closed before it was complete; nothing was done"
                )
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise TooLarge(_too_large(size, limit, at_least=True))
            chunks.append(chunk)
            more = message.get("more_body", False)
        if declared is not None and size != declared:
            raise BadFraming(
                f"the request body is {size} bytes but its Content-Length says {declared}; "
                "send the body's exact length in bytes"
            )
        body = b"".join(chunks)
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if body and not (media_type == "application/json" or media_type.endswith("+json")):
            raise NotJson(
                f"the request body must be JSON sent as `Content-Type: application/json`, got "
                f"{media_type or 'no content type'!r}"
            )
        if body.startswith(UTF8_BOM):
            raise BadEncoding(
                "the request body starts with a UTF-8 byte-order mark (bytes EF BB BF), which "
                "JSON does not allow (RFC 8259); send the JSON without it"
            )
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as e:
            raise BadEncoding(
                f"the request body must be UTF-8 encoded JSON; byte {e.start} is not valid UTF-8",
            ) from None
        if not json_depth_ok(text, MAX_BODY_DEPTH):  # before the JSON parser recurses into it
            raise InvalidRequest(f"the request body nests deeper than {MAX_BODY_DEPTH} levels")
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _next(self, receive: Receive, deadline: float | None) -> Message:
        """The next body message, or a 408 once the body's deadline has passed."""
        if deadline is None:
            return await receive()
        left = deadline - asyncio.get_running_loop().time()
        try:
            return await asyncio.wait_for(receive(), timeout=max(left, 0))
        except asyncio.TimeoutError:  # not the builtin TimeoutError before Python 3.11
            raise BodyTimeout(
                f"the request body did not arrive within {self.body_timeout:g} s "
                "(RAG_SPLADE_TIMEOUT_REQUEST_BODY_SECONDS)"
            ) from None


def _content_length(headers: dict[str, str]) -> int | None:
    """The declared body length, None without one; a 400 naming a value that is not a
    decimal number of bytes (the HTTP server refuses most before this point)."""
    declared = headers.get("content-length")
    if declared is None:
        return None
    value = declared.strip()
    if not (value.isascii() and value.isdigit()):
        raise BadFraming(f"Content-Length must be a decimal number of bytes, got {declared[:40]!r}")
    return int(value)


def route_path(routers: Iterable[APIRouter], scope: Scope) -> str | None:
    """The path template of the route of `routers` that `scope` is for
    (`/v1/documents/{doc_id:path}`), for answers given before routing; None when none
    matches path and method."""
    for router in routers:
        for route in router.routes:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return getattr(route, "path", None)
    return None


def _printable(text: str) -> str:
    """`text` with control characters escaped (`\n` -> `\\n`), for one-line logs."""
    return "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode() for ch in text)


def _too_large(size: int, limit: int, at_least: bool = False) -> str:
    amount = f"more than {limit} bytes" if at_least else f"{size} bytes"
    return (
        f"the request body is {amount}; the limit is {limit} bytes (RAG_SPLADE_MAX_REQUEST_BYTES)"
        "; send fewer documents per request"
    )


async def _send_error(
    send: Send, status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> None:
    body = json.dumps(error_body(error, message, status=status), ensure_ascii=False).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *[(k.encode(), v.encode()) for k, v in (headers or {}).items()],
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})

"""The service's errors: one body shape (`error`, `message`, `request_id`, `details`), built
in one place for handlers and middleware alike. The TEI-compatible endpoints answer TEI's
shape instead (`error`: the message, `error_type`), so that TEI clients read them."""

from __future__ import annotations

from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_splade.errors import UnsupportedFilterError

from .observability import request_id_var

T = TypeVar("T")
HTTP_ERROR_CODES = {
    400: "bad_request",
    415: "unsupported_media_type",
    401: "unauthorized",
    404: "not_found",
    405: "method_not_allowed",
}

# The TEI-compatible endpoints (`routers/tei.py`): their errors take TEI's body shape. The
# middleware sets the flag per request, so that its own refusals (401, 413) take it too.
TEI_PATHS = ("/embed", "/embed_sparse", "/rerank", "/tokenize", "/info")
tei_errors_var: ContextVar[bool] = ContextVar("tei_errors", default=False)


def is_tei_path(path: str) -> bool:
    return path in TEI_PATHS


class ApiError(Exception):
    """An error answered as `status` with a stable `error` code and a message saying what
    was wrong and what is allowed."""

    status = 500
    error = "internal_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers


class InvalidRequest(ApiError):
    """A request the library rejected (its message says what is allowed)."""

    status, error = 422, "invalid_request"


class TooLarge(ApiError):
    """A request over a configured size limit."""

    status, error = 413, "request_too_large"


class BadEncoding(ApiError):
    """A request body that is not UTF-8."""

    status, error = 400, "invalid_encoding"


class NotJson(ApiError):
    """A request body sent with a content type other than JSON."""

    status, error = 415, "unsupported_media_type"


class EmptyInput(ApiError):
    """A TEI-compatible call with nothing to encode (TEI's `Empty`)."""

    status, error = 400, "empty"


class TokenizerFailure(ApiError):
    """Token ids the model cannot read (TEI's `Tokenizer`)."""

    status, error = 422, "tokenizer"


class Overloaded(ApiError):
    """More TEI-compatible calls in flight than allowed (TEI's `Overloaded`)."""

    status, error = 429, "overloaded"


class InsufficientStorage(ApiError):
    """The index's disk is (nearly) full: nothing of the write was done."""

    status, error = 507, "insufficient_storage"


class ServiceUnavailable(ApiError):
    """Not ready yet, or the store unreachable: answered 503 with `Retry-After`."""

    status = 503

    def __init__(self, message: str, retry_after: int, *, error: str = "unavailable") -> None:
        super().__init__(
            message, headers={"retry-after": str(retry_after)} if retry_after else None
        )
        self.error = error
        self.retry_after = retry_after


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI `responses` of a router: each status with the one error body."""
    from .schemas import ErrorOut

    return {code: {"model": ErrorOut} for code in codes}


def rejects(fn: Callable[[], T]) -> T:
    """Run a library call that validates its input; its TypeError/ValueError (whose message
    names the value and what is allowed) becomes a 422."""
    try:
        return fn()
    except (TypeError, ValueError) as e:
        raise InvalidRequest(str(e)) from e


def tei_error_type(status: int, error: str) -> str:
    """TEI's `error_type` of an error (TEI's status codes map the same way)."""
    named = {"empty": "Empty", "tokenizer": "Tokenizer", "backend": "Backend"}
    if error in named:
        return named[error]
    if status == 429:
        return "Overloaded"
    if status == 503:
        return "Unhealthy"
    return "Backend" if status >= 500 else "Validation"


def error_body(
    error: str, message: str, details: list[dict[str, Any]] | None = None, *, status: int = 500
) -> dict:
    """The JSON body of every error the service answers (TEI's on the TEI endpoints)."""
    if tei_errors_var.get():
        return {
            "error": message,
            "error_type": tei_error_type(status, error),
            "request_id": request_id_var.get(),
        }
    body: dict[str, Any] = {"error": error, "message": message, "request_id": request_id_var.get()}
    if details is not None:
        body["details"] = details
    return body


def error_response(
    status: int,
    error: str,
    message: str,
    *,
    headers: dict[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> JSONResponse:
    body = error_body(error, message, details, status=status)
    return JSONResponse(body, status_code=status, headers=headers)


def add_error_handlers(app: FastAPI) -> None:
    """Answer every error the routes raise with `error_body`."""

    @app.exception_handler(ApiError)
    async def api_error(_: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.error, exc.message, headers=exc.headers)

    @app.exception_handler(UnsupportedFilterError)
    async def unsupported_filter(_: Request, exc: UnsupportedFilterError) -> JSONResponse:
        # found by the store while it runs the query: the request is what is wrong
        return error_response(422, "invalid_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [
            {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
            for e in exc.errors()
        ]
        if details and details[0]["type"] == "json_invalid":
            reason = (exc.errors()[0].get("ctx") or {}).get("error", "")
            where = details[0]["loc"][-1]
            message = f"the request body is not valid JSON ({reason} at character {where})"
            # a body that cannot be parsed is malformed (400), like one that is not UTF-8;
            # 422 is for JSON that parses but breaks the schema
            return error_response(400, "invalid_json", message)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in d['loc'][1:]) or 'body'}: {d['msg']}" for d in details[:5]
        )
        return error_response(422, "invalid_request", summary, details=details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_ERROR_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

"""`create_app(settings)` and the module-level `app` served by `uvicorn api.app:app`.

Example:
    $ RAG_SPLADE_INDEX_PATH=./data/index uvicorn api.app:app --port 8000
    $ curl -s localhost:8000/v1/search -H 'content-type: application/json' \\
        -d '{"query": "富士山の高さは？", "top_k": 3}'
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_splade import HybridIndex

from .config import ServiceSettings
from .faults import ServiceUnavailable
from .middleware import RequestContextMiddleware
from .observability import Metrics, configure_logging, request_id_var
from .routes import InvalidRequest, TooLarge, build_router
from .runtime import Runtime

ERROR_CODES = {400: "bad_request", 401: "unauthorized", 404: "not_found", 405: "method_not_allowed"}


def create_app(
    settings: ServiceSettings | None = None, *, index: HybridIndex | None = None
) -> FastAPI:
    """The service. Models and store load in the background after start-up (`/readyz`).

    Args:
        settings: defaults to `ServiceSettings()` (the `RAG_SPLADE_*` environment).
        index: serve an index built elsewhere (e.g. in a notebook) instead of loading one;
            the app closes it when it shuts down.
    """
    s = settings or ServiceSettings()
    metrics = Metrics()
    logger = configure_logging(s.log_json)
    runtime = Runtime(s, metrics, logger, index=index)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FastAPI(
        title="rag_splade",
        summary="Japanese SPLADE + dense hybrid retrieval with per-term explanations for RAG.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.settings = s

    app.include_router(build_router(s), dependencies=[Depends(_api_key_check(s))])
    _add_operational_routes(app, runtime, metrics)
    _add_error_handlers(app)
    if s.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=s.cors_origin_list,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["content-type", "authorization", "x-api-key", "x-request-id"],
            expose_headers=["x-request-id", "retry-after"],
        )
    app.add_middleware(
        RequestContextMiddleware,
        metrics=metrics,
        logger=logger,
        max_body_bytes=s.max_request_bytes,
        retry_after=s.retry_after_seconds,
    )
    return app


def _api_key_check(s: ServiceSettings) -> Any:
    expected = s.api_key.get_secret_value().encode() if s.api_key else None

    async def check(request: Request) -> None:
        if expected is None:
            return
        given = request.headers.get("x-api-key")
        auth = request.headers.get("authorization", "")
        if given is None and auth[:7].lower() == "bearer ":
            given = auth[7:]
        # compare_digest: the time taken does not reveal how much of the key matched
        if given is None or not hmac.compare_digest(given.encode(), expected):
            raise StarletteHTTPException(
                401,
                "a valid API key is required: send it as `X-API-Key: <key>` or "
                "`Authorization: Bearer <key>`",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return check


def _add_operational_routes(app: FastAPI, runtime: Runtime, metrics: Metrics) -> None:
    @app.get("/healthz", tags=["operations"])
    async def healthz() -> dict[str, str]:
        """Liveness: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["operations"])
    async def readyz() -> JSONResponse:
        """Readiness: 200 once models and store are ready, else 503 and the reason."""
        if runtime.state == "ready":
            # the store kind only: readiness is unauthenticated, paths and URLs stay private
            return JSONResponse({"status": "ready", "store": type(runtime.index.store).__name__})
        headers = {}
        if runtime.state != "failed":
            headers["retry-after"] = str(runtime.settings.retry_after_seconds)
        return JSONResponse(
            {"status": runtime.state, "message": runtime.detail}, status_code=503, headers=headers
        )

    @app.get("/metrics", tags=["operations"], include_in_schema=False)
    async def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _error(status: int, error: str, message: str, **extra: Any) -> JSONResponse:
    headers = extra.pop("headers", None)
    body = {"error": error, "message": message, "request_id": request_id_var.get(), **extra}
    return JSONResponse(body, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
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
            return _error(422, "invalid_json", message)
        summary = "; ".join(
            f"{'.'.join(str(p) for p in d['loc'][1:]) or 'body'}: {d['msg']}" for d in details[:5]
        )
        return _error(422, "invalid_request", summary, details=details)

    @app.exception_handler(InvalidRequest)
    async def rejected(_: Request, exc: InvalidRequest) -> JSONResponse:
        return _error(422, "invalid_request", str(exc))

    @app.exception_handler(TooLarge)
    async def too_large(_: Request, exc: TooLarge) -> JSONResponse:
        return _error(413, "request_too_large", str(exc))

    @app.exception_handler(ServiceUnavailable)
    async def unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        headers = {"retry-after": str(exc.retry_after)} if exc.retry_after else None
        return _error(503, "unavailable", exc.message, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = ERROR_CODES.get(exc.status_code, "http_error")
        return _error(exc.status_code, code, str(exc.detail), headers=exc.headers)


app = create_app()

"""FastAPI dependencies: the settings, the runtime, a ready index, and the API key check."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from rag_splade import HybridIndex

from .batching import QueryEncoder
from .config import ServiceSettings
from .runtime import Runtime


def get_settings(request: Request) -> ServiceSettings:
    return request.app.state.settings


def get_runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def get_ready(
    runtime: Annotated[Runtime, Depends(get_runtime)],
) -> tuple[HybridIndex, QueryEncoder]:
    """The index and query encoder, or a 503 saying why they are not ready yet."""
    return runtime.ready()


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
ReadyDep = Annotated[tuple[HybridIndex, QueryEncoder], Depends(get_ready)]


async def require_api_key(request: Request, settings: SettingsDep) -> None:
    """With `RAG_SPLADE_API_KEY` set, every `/v1` route needs it, as `X-API-Key: <key>` or
    `Authorization: Bearer <key>`."""
    if settings.api_key is None:
        return
    expected = settings.api_key.get_secret_value().encode()
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

"""FastAPI dependencies: the settings, the runtime and a ready index (the API key: `auth`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

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

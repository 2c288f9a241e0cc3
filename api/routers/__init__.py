"""The service's resources, one module each; `app.py` includes `ROUTERS` in this order
(`ENCODER_ROUTERS` alone when it serves encoders only)."""

from fastapi import APIRouter

from . import admin, documents, health, search, tei, ui

ROUTERS: tuple[APIRouter, ...] = (
    search.router,
    documents.router,
    health.stats_router,
    admin.router,
    health.router,
    tei.router,
    ui.router,
)
# `rag-splade serve --encoders-only`: the models, no index
ENCODER_ROUTERS: tuple[APIRouter, ...] = (tei.router, health.router)

__all__ = ["ENCODER_ROUTERS", "ROUTERS"]

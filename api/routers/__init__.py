"""The service's resources, one module each; `app.py` includes `ROUTERS` in this order."""

from fastapi import APIRouter

from . import admin, documents, health, search, ui

ROUTERS: tuple[APIRouter, ...] = (
    search.router,
    documents.router,
    health.stats_router,
    admin.router,
    health.router,
    ui.router,
)

__all__ = ["ROUTERS"]

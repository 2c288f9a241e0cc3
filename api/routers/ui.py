"""The `/ui/` page: a search form and the explained hits, drawn in the browser from the
public REST API (`POST /v1/search`), with the key the person enters.

The page and its assets hold no data, so they are served without a key; every call the page
makes goes to `/v1`, behind the key like any client's. Its stylesheet for hits and terms is
the library's (`rag_splade.views`), the one a notebook inlines. The assets ship in the
package; nothing comes from a CDN, so the page works offline.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import RedirectResponse, Response

from rag_splade.views import stylesheet

STATIC = Path(__file__).resolve().parent.parent / "static"
# The page's scripts and styles are its own files: no inline script, no other origin.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-cache",
}

router = APIRouter(prefix="/ui", tags=["ui"], include_in_schema=False)


@lru_cache(maxsize=8)
def _asset(name: str) -> bytes:
    return (STATIC / name).read_bytes()


def _serve(body: bytes | str, media_type: str) -> Response:
    return Response(body, media_type=media_type, headers=SECURITY_HEADERS)


# HEAD too: link checkers and load-balancer probes ask for the page without its body
PAGE_METHODS = ["GET", "HEAD"]


@router.api_route("", methods=PAGE_METHODS)
async def ui_redirect() -> RedirectResponse:
    # relative, so that the page also works behind a proxy that adds a path prefix
    return RedirectResponse("ui/", status_code=307)


@router.api_route("/", methods=PAGE_METHODS)
async def ui_page() -> Response:
    """The search page."""
    return _serve(_asset("ui.html"), "text/html; charset=utf-8")


@router.api_route("/ui.js", methods=PAGE_METHODS)
async def ui_script() -> Response:
    return _serve(_asset("ui.js"), "text/javascript; charset=utf-8")


@router.api_route("/ui.css", methods=PAGE_METHODS)
async def ui_styles() -> Response:
    return _serve(_asset("ui.css"), "text/css; charset=utf-8")


@router.api_route("/views.css", methods=PAGE_METHODS)
async def views_styles() -> Response:
    """The hit and term styles, shared with `rag_splade.views` (notebooks)."""
    return _serve(stylesheet(), "text/css; charset=utf-8")

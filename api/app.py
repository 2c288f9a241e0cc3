"""`create_app(settings)` and the module-level `app` served by `uvicorn rag_splade.api.app:app`.

Example:
    $ RAG_SPLADE_INDEX_PATH=./data/index uvicorn rag_splade.api.app:app --port 8000
    (from a checkout, `uvicorn api.app:app` serves the same app)
    $ curl -s localhost:8000/v1/search -H 'content-type: application/json' \\
        -d '{"query": "富士山の高さは？", "top_k": 3}'
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi_offline import FastAPIOffline

from rag_splade import HybridIndex, __version__

from .auth import Authenticator
from .config import ServiceSettings
from .errors import add_error_handlers
from .mcp import McpGateway, build_mcp_server, http_access
from .middleware import DOCS, GUARDED, RequestContextMiddleware, route_path
from .observability import Metrics, configure_logging
from .routers import ENCODER_ROUTERS, ROUTERS
from .runtime import Runtime


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
    authenticator = Authenticator(s)  # a bad key file stops the start, naming the entry

    access_of = http_access(authenticator)
    gateway = McpGateway(
        build_mcp_server(runtime, s, access_of),
        build_mcp_server(runtime, s, access_of, writes=True) if s.mcp_write_tools else None,
        authenticator,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            async with AsyncExitStack() as stack:
                managers = () if s.encoders_only else gateway.session_managers()
                for manager in managers:  # the MCP sessions of /mcp
                    await stack.enter_async_context(manager.run())
                yield
        finally:
            await runtime.stop()

    # FastAPIOffline serves the /docs and /redoc assets from its package, not from a CDN:
    # the OpenAPI UI works on a machine without internet access.
    app = FastAPIOffline(
        title="rag_splade",
        summary="Japanese SPLADE + dense hybrid retrieval with per-term explanations for RAG.",
        description="[The search page](../ui/) (`/ui/`) shows each hit's term matches, "
        "weights and contributions, drawn from this API.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.metrics = metrics
    app.state.settings = s
    app.state.authenticator = authenticator

    routers = ENCODER_ROUTERS if s.encoders_only else ROUTERS
    for router in routers:
        app.include_router(router)
    if not s.encoders_only:
        app.mount("/mcp", gateway)
    add_error_handlers(app)
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
        authenticator=authenticator,
        route_of=lambda scope: route_path(routers, scope),
        guarded=GUARDED if s.public_docs else (*GUARDED, *DOCS),
        body_timeout=s.timeout_request_body_seconds,
    )
    return app


app = create_app()

"""`rag-splade serve`: the HTTP service (`rag_splade.api.app:app`) under uvicorn.

The app builds its settings from the `RAG_SPLADE_*` environment when uvicorn imports it, so
the index flags are handed over as those variables; every worker process inherits them.
The connection settings (timeouts, limits) go to uvicorn itself, with the service's own
HTTP/1.1 protocol (`rag_splade.api.protocol`): JSON refusals of malformed requests and a
deadline for each request head.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any

from .index_options import add_index_arguments, index_overrides, settings_problem

if TYPE_CHECKING:
    from rag_splade.api.config import ServiceSettings

APP = "rag_splade.api.app:app"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
PORTS = (1, 65_535)
EXIT_OK, EXIT_USAGE = 0, 2

DESCRIPTION = """\
Serve the index over HTTP: search and document routes, the TEI-compatible encoding
endpoints (/embed_sparse, /embed, /rerank, /tokenize, /info), /healthz, /readyz, /metrics,
and OpenAPI docs at /docs. Models, device, index, limits and the service's API key come from
RAG_SPLADE_* settings (RAG_SPLADE_SPARSE_MODEL, RAG_SPLADE_INDEX_PATH, RAG_SPLADE_QDRANT_URL,
RAG_SPLADE_API_KEY, ...); the index flags below override them. Connections: a request line
and headers must arrive within RAG_SPLADE_TIMEOUT_REQUEST_HEAD_SECONDS (10) and a body
within RAG_SPLADE_TIMEOUT_REQUEST_BODY_SECONDS (60), else 408; idle keep-alive connections
close after RAG_SPLADE_TIMEOUT_KEEP_ALIVE_SECONDS (5); RAG_SPLADE_LIMIT_CONCURRENCY,
RAG_SPLADE_MAX_HEADER_BYTES, RAG_SPLADE_TIMEOUT_GRACEFUL_SHUTDOWN_SECONDS (30). Needs the
api extra: pip install 'rag-splade[api]'."""


def _port(value: str) -> int:
    return _int_in(value, *PORTS)


def _workers(value: str) -> int:
    return _int_in(value, 1, None)


def _int_in(value: str, lowest: int, highest: int | None) -> int:
    """`value` as an int in [lowest, highest]; an argparse error naming the range if not."""
    allowed = f"an integer from {lowest} to {highest}" if highest else f"an integer >= {lowest}"
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {value!r}") from None
    if n < lowest or (highest is not None and n > highest):
        raise argparse.ArgumentTypeError(f"must be {allowed}, got {value!r}")
    return n


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `serve` arguments to `parser` (a sub-command parser)."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    http = parser.add_argument_group("HTTP")
    http.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1: this machine only; 0.0.0.0: every "
        "interface, then set RAG_SPLADE_API_KEY)",
    )
    http.add_argument(
        "--port", type=_port, default=8000, help=f"TCP port, {PORTS[0]}-{PORTS[1]} (default 8000)"
    )
    http.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes (default 1). Each worker loads its own models and micro-batching "
        "only sees its own requests, so more workers cost memory and give smaller batches. "
        "More than one needs a Qdrant server: an embedded Edge index opens in one process only",
    )
    http.add_argument(
        "--log-level", choices=LOG_LEVELS, default="info", help="uvicorn's log level (info)"
    )
    http.add_argument(
        "--encoders-only",
        action="store_true",
        help="serve the models alone, with no index: the TEI-compatible /embed_sparse, /embed, "
        "/rerank, /tokenize and /info (and health); an encoder server for remote encoders "
        "(RAG_SPLADE_SPARSE_URL, ...). Any number of workers",
    )
    add_index_arguments(parser)


def environment(args: argparse.Namespace) -> dict[str, str]:
    """The `RAG_SPLADE_*` variables that the given index flags stand for."""
    overrides = index_overrides(args)
    if getattr(args, "encoders_only", False):
        overrides["encoders_only"] = "true"
    return {f"RAG_SPLADE_{name.upper()}": str(value) for name, value in overrides.items()}


def run(args: argparse.Namespace) -> int:
    """Serve until interrupted; 2 when the api extra is missing or the settings are invalid."""
    try:
        import fastapi  # noqa: F401  (the app needs these; uvicorn would fail later, less clearly)
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as e:
        print(
            f"rag-splade serve: the HTTP service needs the api extra ({e.name} is not "
            "installed): pip install 'rag-splade[api]'",
            file=sys.stderr,
        )
        return EXIT_USAGE
    from pydantic import ValidationError

    from rag_splade.api.config import ServiceSettings

    os.environ.update(environment(args))
    try:
        # Checked here, so a bad value is one line on stderr, not a traceback from each worker.
        settings = ServiceSettings()
    except ValidationError as e:
        print(f"rag-splade serve: {settings_problem(e)}", file=sys.stderr)
        return EXIT_USAGE
    if args.workers > 1 and not settings.qdrant_url and not args.encoders_only:
        print(
            f"rag-splade serve: --workers {args.workers} needs a Qdrant server (--qdrant-url or "
            f"RAG_SPLADE_QDRANT_URL): the embedded Edge index at {settings.index_path} can be "
            "opened by one process only; use --workers 1",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # access_log=False: the service logs every request itself (one format, escaped); uvicorn's
    # own access log would print each request a second time
    uvicorn.run(
        APP,
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level=args.log_level,
        access_log=False,
        **uvicorn_options(settings),
    )
    return EXIT_OK


def uvicorn_options(settings: ServiceSettings) -> dict[str, Any]:
    """uvicorn's connection options from the service settings: the service's protocol
    (JSON refusals, the request-head deadline), keep-alive, shutdown and size limits."""
    from rag_splade.api.protocol import PROTOCOL

    return {
        "http": PROTOCOL,
        "timeout_keep_alive": settings.timeout_keep_alive_seconds,
        "timeout_graceful_shutdown": settings.timeout_graceful_shutdown_seconds,
        "limit_concurrency": settings.limit_concurrency,
        "h11_max_incomplete_event_size": settings.max_header_bytes,
    }

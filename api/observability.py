"""Prometheus metrics, request ids and structured (JSON) logs."""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LOGGER_NAME = "rag_splade.api"
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "rag_splade_request_id", default=None
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


class Metrics:
    """The service's metrics, in a registry of their own (one per app, so tests stay apart)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "rag_splade_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        # tenant: a tenant a key names (or "default"), else "other": bounded like routes
        self.tenant_requests = Counter(
            "rag_splade_tenant_requests",
            "HTTP requests by tenant",
            ["tenant", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "rag_splade_http_request_duration_seconds",
            "HTTP request latency",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.encode = Histogram(
            "rag_splade_encode_duration_seconds",
            "One encoder forward pass over a micro-batch",
            ["encoder"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.store = Histogram(
            "rag_splade_store_duration_seconds",
            "Store operations (search includes building explanations)",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.rerank = Histogram(
            "rag_splade_rerank_duration_seconds",
            "One cross-encoder pass over a micro-batch of (query, passage) pairs",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "rag_splade_query_batch_size",
            "Queries per encoding micro-batch",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.store_unavailable = Counter(
            "rag_splade_store_unavailable", "Requests answered 503: store unreachable", registry=r
        )
        self.ready = Gauge("rag_splade_ready", "1 when models and store are ready", registry=r)


class RequestIdFilter(logging.Filter):
    """Adds the current request id to every log record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request id and extras."""

    EXTRAS = ("method", "path", "route", "tenant", "status", "duration_ms", "client", "error")

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", None),
        }
        for key in self.EXTRAS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(json_lines: bool) -> logging.Logger:
    """The service logger, writing to stderr once (idempotent across apps)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(getattr(h, "_rag_splade", False) for h in logger.handlers):
        handler: logging.Handler = logging.StreamHandler(sys.stderr)
        handler._rag_splade = True  # type: ignore[attr-defined]  # our mark, to find it again
        handler.addFilter(RequestIdFilter())
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    for handler in logger.handlers:
        if getattr(handler, "_rag_splade", False):
            handler.setFormatter(
                JsonFormatter()
                if json_lines
                else logging.Formatter("%(levelname)s [%(request_id)s] %(message)s")
            )
    return logger

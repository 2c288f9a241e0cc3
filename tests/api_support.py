"""Shared pieces of the API tests: the corpus and an app that is ready to serve."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from rag_splade.api.config import ServiceSettings
from rag_splade.sample import sample_texts


def api_documents(n: int = 16) -> list[dict[str, Any]]:
    return [
        {
            "id": f"doc-{i:02d}",
            "text": text,
            "metadata": {"title": f"記事{i}", "part": "even" if i % 2 == 0 else "odd", "n": i},
        }
        for i, text in enumerate(sample_texts()[:n])
    ]


def service_settings(splade: Path, dense: Path, index: Path, **overrides: Any) -> ServiceSettings:
    values: dict[str, Any] = {
        "sparse_model": str(splade),
        "dense_model": str(dense),
        "device": "cpu",
        "index_path": index,
        "log_json": True,
    }
    values.update(overrides)
    return ServiceSettings(**values)


def wait_ready(client: TestClient, timeout: float = 600.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = client.get("/readyz")
        if r.status_code == 200:
            return
        assert r.json()["status"] in ("loading", "store_unavailable"), r.json()
        time.sleep(0.05)
    raise AssertionError(f"not ready after {timeout} s: {client.get('/readyz').json()}")

"""A second process on one Edge index: a clear message and exit 2 on the command line; the
service waits and retries, and serves once the index is free."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.api.app import create_app
from rag_splade.pipelines.cli import main
from rag_splade.sample import sample_texts
from tests.api_support import service_settings


def hold(index: Path) -> subprocess.Popen:
    """Another process with the index open until killed (through the library, as a service
    or an ingest holds it: the manifest says it is open, so its files may change)."""
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from rag_splade.store.snapshots import open_for_snapshot\n"
            f"s = open_for_snapshot({str(index)!r})\n"
            "print('open', flush=True)\n"
            "time.sleep(300)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    return holder


@pytest.fixture
def built(tmp_path, splade, dense) -> Path:
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "index")) as idx:
        idx.add([Document(id="a", text=sample_texts()[0])])
    return tmp_path / "index"


def test_cli_says_the_index_is_in_use(
    built, monkeypatch, capsys, lexical_splade_path, lexical_dense_path
) -> None:
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)
    holder = hold(built)
    try:
        assert main(["search", "梅雨", "--index-path", str(built), "--device", "cpu"]) == 2
        err = capsys.readouterr().err
        assert "open in another process" in err and "Traceback" not in err
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_service_waits_for_the_index(built, lexical_splade_path, lexical_dense_path) -> None:
    settings = service_settings(
        lexical_splade_path, lexical_dense_path, built, store_retry_interval_seconds=0.2
    )
    holder = hold(built)
    try:
        with TestClient(create_app(settings)) as c:
            deadline = time.monotonic() + 300
            while True:
                ready = c.get("/readyz").json()
                if ready["status"] == "store_unavailable":
                    break
                assert ready["status"] == "loading", ready
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert "open in another process" in ready["message"]
            assert str(built) not in ready["message"]  # no paths on an open route
            holder.kill()
            holder.wait(timeout=30)
            while c.get("/readyz").status_code != 200:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert c.post("/v1/search", json={"query": "梅雨"}).status_code == 200
    finally:
        holder.kill()
        holder.wait(timeout=30)

"""The embedded index on disk: a creation cut short starts over, damage is found on open
(with what to do), and a full disk refuses writes cleanly while the index stays readable."""

from __future__ import annotations

import json
import shutil
from collections import namedtuple
from pathlib import Path

import pytest
import qdrant_edge as qe
from fastapi.testclient import TestClient

from rag_splade import Document, EdgeStore, HybridIndex
from rag_splade.api.app import create_app
from rag_splade.pipelines.cli import main
from rag_splade.sample import sample_texts
from rag_splade.store import edge
from rag_splade.store.edge import MANIFEST, SHARD_DIR, DiskFullError, IndexDamagedError
from tests.api_support import service_settings, wait_ready


def docs(n: int, start: int = 0) -> list[Document]:
    return [Document(id=f"d{i}", text=sample_texts()[i]) for i in range(start, start + n)]


def test_a_creation_cut_short_starts_over(tmp_path, splade, dense) -> None:
    path = tmp_path / "index"
    path.mkdir()
    (path / edge.CREATING).touch()  # killed after the shard was made, before its manifest
    config = qe.EdgeConfig(vectors={"dense": qe.EdgeVectorParams(4, qe.Distance.Cosine)})
    qe.EdgeShard.create(str(path / SHARD_DIR), config).close()
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        idx.add(docs(3))
        assert idx.count() >= 3
    assert not (path / edge.CREATING).exists()
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        assert idx.count() >= 3


def test_a_shard_without_manifest_or_marker_is_still_refused(tmp_path, splade, dense) -> None:
    path = tmp_path / "index"
    config = qe.EdgeConfig(vectors={"dense": qe.EdgeVectorParams(4, qe.Distance.Cosine)})
    shard = qe.EdgeShard.create(str(path / SHARD_DIR), config)
    shard.update(qe.UpdateOperation.upsert_points([qe.Point(1, {"dense": [1.0, 0, 0, 0]}, {})]))
    shard.close()
    with pytest.raises(ValueError, match="holds data but no"):
        HybridIndex(splade, dense, EdgeStore(path))


def _closed_index(path: Path, splade, dense, batches: int = 3) -> int:
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        for b in range(batches):  # separate writes: several segments on disk
            idx.add(docs(8, start=8 * b))
            idx.optimize()
        return idx.count()


def test_a_clean_close_records_the_count_and_open_checks_it(tmp_path, splade, dense) -> None:
    path = tmp_path / "index"
    points = _closed_index(path, splade, dense)
    manifest = json.loads((path / MANIFEST).read_text())
    assert (manifest["points"], manifest["clean"]) == (points, True)
    manifest["points"] = points + 5  # what was closed is not what is there
    (path / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(IndexDamagedError, match=r"holds \d+ points but was closed with") as e:
        EdgeStore(path).open(_spec(splade, dense))
    assert "snapshot restore latest" in str(e.value)


def _spec(splade, dense):
    from rag_splade.store.base import VectorSpec

    return VectorSpec(dense_size=dense.dimension, sparse_vocab_size=splade.vocab_size)


def test_a_lost_segment_is_found_and_the_cli_says_what_to_do(
    tmp_path, splade, dense, monkeypatch, capsys, lexical_splade_path, lexical_dense_path
) -> None:
    path = tmp_path / "index"
    _closed_index(path, splade, dense)
    segments = sorted((path / SHARD_DIR / "segments").iterdir())
    shutil.rmtree(segments[0])  # a partial index would otherwise open silently
    with pytest.raises(IndexDamagedError, match="damaged"):
        HybridIndex(splade, dense, EdgeStore(path))
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)
    assert main(["search", "梅雨", "--index-path", str(path), "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert "damaged" in err and "snapshot restore" in err and "Traceback" not in err


def _full_disk(monkeypatch) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(edge.shutil, "disk_usage", lambda p: usage(10**12, 10**12 - 10**6, 10**6))


def test_a_full_disk_refuses_the_write_and_keeps_the_index(
    tmp_path, splade, dense, monkeypatch
) -> None:
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "index")) as idx:
        idx.add(docs(2))
        before = idx.count()
        _full_disk(monkeypatch)
        with pytest.raises(DiskFullError, match=r"nothing of these \d+ points was written"):
            idx.add(docs(4, start=10))
        assert idx.count() == before
        assert idx.search("梅雨", top_k=1)  # still readable


def test_a_full_disk_is_a_507(tmp_path, lexical_splade_path, lexical_dense_path, monkeypatch):
    settings = service_settings(lexical_splade_path, lexical_dense_path, tmp_path / "index")
    with TestClient(create_app(settings)) as c:
        wait_ready(c)
        _full_disk(monkeypatch)
        r = c.post("/v1/documents", json={"documents": [{"id": "a", "text": "本文です。"}]})
        assert r.status_code == 507 and r.json()["error"] == "insufficient_storage"
        assert str(tmp_path) not in r.text
        assert c.post("/v1/search", json={"query": "本文"}).status_code == 200

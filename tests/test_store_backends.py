"""The store backend registry: one place chooses, and each entry builds, finds, drops and
snapshots its own kind of index."""

from __future__ import annotations

from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from rag_splade import Document, HybridIndex, Settings
from rag_splade.errors import IndexNotFoundError
from rag_splade.sample import sample_texts
from rag_splade.store import backends
from rag_splade.store.backends import STORE_BACKENDS, backend_of, store_backend
from rag_splade.store.edge import EdgeStore
from rag_splade.store.server import QdrantServerStore
from rag_splade.store.snapshots import EdgeSnapshots, ServerSnapshots


@pytest.fixture
def built(tmp_path, splade, dense) -> Path:
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "index")) as idx:
        idx.add([Document(id=f"d{i}", text=t) for i, t in enumerate(sample_texts()[:3])])
    return tmp_path / "index"


def test_one_place_chooses_the_backend(tmp_path) -> None:
    edge = Settings(index_path=tmp_path / "index")
    server = Settings(qdrant_url="http://qdrant:6333", collection="docs")
    assert store_backend(edge).name == "edge"
    assert store_backend(server).name == "server"
    assert isinstance(store_backend(edge).build(edge), EdgeStore)
    built = store_backend(server).build(server)
    assert isinstance(built, QdrantServerStore)
    assert (built.url, built.collection) == ("http://qdrant:6333", "docs")
    assert set(STORE_BACKENDS) == {"edge", "server"}


def test_backend_of_a_store_built_by_hand(tmp_path) -> None:
    assert backend_of(EdgeStore(tmp_path / "i")).name == "edge"
    assert backend_of(QdrantServerStore(location=":memory:")).name == "server"
    with pytest.raises(TypeError, match=r"no known backend \(edge, server\)"):
        backend_of(object())  # type: ignore[arg-type]


def test_edge_entry_exists_require_drop(built, splade, dense, tmp_path) -> None:
    settings = Settings(index_path=built)
    edge = store_backend(settings)
    assert edge.exists(settings)
    edge.require(settings)
    missing = Settings(index_path=tmp_path / "missing")
    assert not edge.exists(missing)
    with pytest.raises(IndexNotFoundError, match=r"no index at .*rag-splade ingest"):
        edge.require(missing)
    assert not (tmp_path / "missing").exists()  # asking created nothing
    edge.drop(missing)  # nothing there: nothing done
    stranger = tmp_path / "mine"
    stranger.mkdir()
    (stranger / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not an index this library wrote"):
        edge.drop(Settings(index_path=stranger))
    assert (stranger / "notes.txt").exists()
    edge.drop(settings)
    assert not built.exists()


def test_edge_entry_snapshots(built, splade, dense, tmp_path) -> None:
    settings = Settings(index_path=built, snapshot_dir=tmp_path / "snaps")
    edge = store_backend(settings)
    snapshots = edge.snapshots(settings)
    assert isinstance(snapshots, EdgeSnapshots) and snapshots.replaces_files
    store = edge.open_for_snapshots(settings)  # no models needed
    try:
        made = snapshots.create(store)
    finally:
        store.close()
    assert snapshots.verify(made.name).points == made.points
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        assert edge.snapshots(settings, idx.store).index_path == built


def test_server_entry_exists_and_drop(monkeypatch) -> None:
    client = QdrantClient(location=":memory:")
    client.close = lambda: None  # type: ignore[method-assign]  # kept for the asserts
    monkeypatch.setattr(backends, "_client", lambda s: client)
    settings = Settings(qdrant_url="http://qdrant:6333", collection="docs")
    server = store_backend(settings)
    assert not server.exists(settings)
    server.require(settings)  # a server collection is created on first use: not refused
    from qdrant_client import models

    client.create_collection("docs", vectors_config=models.VectorParams(size=4, distance="Cosine"))
    assert server.exists(settings)
    server.drop(settings)
    assert not client.collection_exists("docs")
    server.drop(settings)  # nothing there: nothing done


def test_server_entry_snapshots_need_a_server(tmp_path) -> None:
    settings = Settings(qdrant_url="http://qdrant:6333", collection="docs")
    snapshots = store_backend(settings).snapshots(settings)
    assert isinstance(snapshots, ServerSnapshots) and not snapshots.replaces_files
    from rag_splade.errors import SnapshotError

    with pytest.raises(SnapshotError, match="verify applies to the embedded index"):
        snapshots.verify("latest")
    with pytest.raises(SnapshotError, match="local mode"):
        store_backend(settings).snapshots(settings, QdrantServerStore(location=":memory:"))


def test_true_false_filters_are_refused_on_edge_and_exact_on_a_server(tmp_path, splade, dense):
    """qdrant-edge-py reads a true/false match as 1/0, so on Edge such a filter would match
    the wrong documents or none without a word: it is refused, naming what to do instead. A
    server (qdrant-client) matches them exactly."""
    docs = [
        Document(id="yes", text="石油は燃える。", metadata={"flag": True}),
        Document(id="no", text="石油は黒い。", metadata={"flag": False}),
        Document(id="one", text="石油は重い。", metadata={"flag": 1}),
    ]
    with HybridIndex(splade, dense, EdgeStore(tmp_path / "index")) as edge:
        edge.add(docs)
        for call in (
            lambda: edge.search("石油", filters={"flag": True}),
            lambda: edge.documents(filters={"flag": False}),
        ):
            with pytest.raises(ValueError, match="equality on true/false is not supported"):
                call()
        assert sorted(edge.documents(filters={"flag": 1})) == ["one"]
    with HybridIndex(splade, dense, QdrantServerStore(location=":memory:")) as server:
        server.add(docs)
        assert sorted(server.documents(filters={"flag": True})) == ["yes"]
        assert sorted(server.documents(filters={"flag": False})) == ["no"]

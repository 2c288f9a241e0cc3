"""Snapshots of the embedded index: a round trip, damaged archives refused, server mode."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from rag_splade import Document, EdgeStore, HybridIndex, QdrantServerStore
from rag_splade.sample import sample_texts
from rag_splade.snapshots import EdgeSnapshots, ServerSnapshots, SnapshotError

QUERY = "石油の主成分は何か。"


def docs(n: int, offset: int = 0) -> list[Document]:
    texts = sample_texts()
    return [Document(id=f"d{i}", text=texts[i]) for i in range(offset, offset + n)]


@pytest.fixture
def built(tmp_path, splade, dense) -> Path:
    path = tmp_path / "index"
    with HybridIndex(splade, dense, EdgeStore(path)) as idx:
        idx.add(docs(10))
    return path


def test_round_trip(built, splade, dense) -> None:
    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        before = [h.id for h in idx.search(QUERY, top_k=5)]
        info = snapshots.create(idx.store)  # while the index is open, as a service holds it
        assert info.points == idx.count() and Path(info.path).is_file()
        idx.add(docs(5, offset=20))  # written after the snapshot
        idx.delete("d0")
    assert [s.name for s in snapshots.list()] == [info.name]
    assert snapshots.verify("latest").points == info.points
    restored, kept = snapshots.restore(info.name)
    assert restored.name == info.name and kept is not None and kept.is_dir()
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        assert idx.count() == info.points
        assert sorted(idx.documents()) == sorted(d.id for d in docs(10))
        assert [h.id for h in idx.search(QUERY, top_k=5)] == before
    with HybridIndex(splade, dense, EdgeStore(kept)) as replaced:  # the old one is kept whole
        assert "d20" in replaced.documents() and "d0" not in replaced.documents()


def _damage(archive: Path, member_suffix: str, out: Path) -> Path:
    """A copy of `archive` with one member's bytes flipped."""
    with tarfile.open(archive) as src, tarfile.open(out, "w") as dst:
        for member in src.getmembers():
            file = src.extractfile(member) if member.isfile() else None
            data = file.read() if file is not None else b""
            if member.name.endswith(member_suffix) and data:
                data = bytes([data[0] ^ 0xFF]) + data[1:]
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


def test_a_damaged_snapshot_is_refused_before_anything_changes(built, splade, dense) -> None:
    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        made = snapshots.create(idx.store)
    good, info_points = Path(made.path), made.points
    with tarfile.open(good) as tar:
        biggest = max((m for m in tar.getmembers() if m.isfile()), key=lambda m: m.size)
    bad = _damage(good, biggest.name, snapshots.snapshot_dir / "damaged.tar")
    with pytest.raises(SnapshotError, match=r"damaged.*does not match its checksum"):
        snapshots.verify("damaged")
    with pytest.raises(SnapshotError, match="damaged"):
        snapshots.restore("damaged")
    assert bad.exists() and not list(built.parent.glob("index.before-restore-*"))
    (snapshots.snapshot_dir / "junk.tar").write_bytes(b"not a tar file")
    with pytest.raises(SnapshotError, match=r"cannot be read|not a rag_splade snapshot"):
        snapshots.restore("junk")
    for name in ("../index", "", ".hidden"):
        with pytest.raises(SnapshotError, match="file name without folders"):
            snapshots.restore(name)
    with pytest.raises(SnapshotError, match="no snapshot 'nope'"):
        snapshots.restore("nope")
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:  # untouched
        assert idx.count() == info_points


def test_restore_into_a_missing_index(built, splade, dense, tmp_path) -> None:
    snapshots = EdgeSnapshots(built, tmp_path / "snaps")
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        snapshots.create(idx.store)
    moved = tmp_path / "gone"
    built.rename(moved)
    info, kept = snapshots.restore()
    assert kept is None
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        assert idx.count() == info.points


def test_no_snapshots_yet(tmp_path) -> None:
    snapshots = EdgeSnapshots(tmp_path / "index")
    assert snapshots.list() == []
    with pytest.raises(SnapshotError, match="no snapshots in"):
        snapshots.restore()


def test_local_mode_has_no_snapshots() -> None:
    with pytest.raises(SnapshotError, match="local mode"):
        ServerSnapshots(QdrantServerStore(location=":memory:"))


def test_server_snapshots_use_the_servers_api() -> None:
    class Description:
        def __init__(self, name: str, when: str) -> None:
            self.name, self.creation_time, self.size = name, when, 123

    class Client:
        def __init__(self) -> None:
            self.calls: list[tuple] = []

        def create_snapshot(self, collection, wait):
            self.calls.append(("create", collection, wait))
            return Description("s2", "2026-11-28T01:00:00")

        def list_snapshots(self, collection):
            return [Description("s2", "2026-11-28T01:00:00"), Description("s1", "2026-11-27")]

        def recover_snapshot(self, collection, location, wait):
            self.calls.append(("recover", collection, location, wait))

    store = QdrantServerStore(location=":memory:", collection="docs")
    store.url, store.client = "http://qdrant:6333", Client()  # type: ignore[assignment]
    snapshots = ServerSnapshots(store)
    assert snapshots.create().name == "s2"
    assert [s.name for s in snapshots.list()] == ["s1", "s2"]
    restored, kept = snapshots.restore()
    assert (restored.name, kept) == ("s2", None)
    assert store.client.calls[-1] == (
        "recover", "docs", "file:///qdrant/snapshots/docs/s2", True
    )  # fmt: skip
    with pytest.raises(SnapshotError, match="no snapshot 'x'"):
        snapshots.restore("x")

"""Snapshots of the embedded index: a round trip, damaged archives refused, server mode."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import shutil
import tarfile
from collections import namedtuple
from pathlib import Path

import pytest

from rag_splade import Document, EdgeStore, HybridIndex, QdrantServerStore
from rag_splade.errors import DiskFullError
from rag_splade.fingerprint import vector_spec
from rag_splade.sample import sample_texts
from rag_splade.snapshots import EdgeSnapshots, ServerSnapshots, SnapshotError, open_for_snapshot
from rag_splade.store import snapshots as store_snapshots
from rag_splade.store.files import ExtentReader, scan, write_sparse
from rag_splade.store.snapshot_archive import write_archive

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


def sparse_copy(source: str, target: str) -> None:
    """Copy a file leaving its holes holes (the engine's files are mostly holes)."""
    content = scan(Path(source))
    with ExtentReader(Path(source), content.extents) as data:
        write_sparse(data, Path(target), content.size, content.extents)  # type: ignore[arg-type]


def _du(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def test_a_snapshot_and_a_restored_index_take_the_index_real_disk_use(built) -> None:
    snapshots = EdgeSnapshots(built)
    apparent = sum(p.stat().st_size for p in built.rglob("*") if p.is_file())
    store = open_for_snapshot(built)
    try:
        info = snapshots.create(store)
    finally:
        store.close()
    original = _du(built)
    assert apparent > 20 * original  # the engine pre-sizes its files: mostly holes
    assert Path(info.path).stat().st_blocks * 512 <= original and info.size_bytes <= original
    snapshots.restore(info.name)
    assert _du(built) <= original
    assert sorted(p.stat().st_size for p in built.rglob("*") if p.is_file()) == sorted(
        p.stat().st_size for p in snapshots.replaced()[-1].rglob("*") if p.is_file()
    )


def test_restores_keep_only_the_newest_replaced_indexes(built, splade, dense) -> None:
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        EdgeSnapshots(built).create(idx.store)
    kept_paths = []
    for _ in range(3):
        _, kept = EdgeSnapshots(built, keep_replaced=2).restore()
        kept_paths.append(kept)
    assert EdgeSnapshots(built).replaced() == kept_paths[1:]  # the oldest was deleted
    _, kept = EdgeSnapshots(built, keep_replaced=0).restore()
    assert kept is None and EdgeSnapshots(built).replaced() == []
    with pytest.raises(ValueError, match="keep_replaced must be >= 0"):
        EdgeSnapshots(built, keep_replaced=-1)


def test_too_little_disk_space_refuses_a_snapshot_and_leaves_no_partial(
    built, splade, dense, monkeypatch
) -> None:
    usage = namedtuple("usage", "total used free")
    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        made = snapshots.create(idx.store)
        monkeypatch.setattr(store_snapshots.shutil, "disk_usage", lambda p: usage(1, 1, 200 << 20))
        with pytest.raises(DiskFullError, match=r"only 200 MiB free.*needs \d+ MiB"):
            snapshots.create(idx.store)
        with pytest.raises(DiskFullError, match="only 200 MiB free"):
            snapshots.verify(made.name)
        monkeypatch.undo()

        def disk_fills(index_path, target, created, points):
            target.write_bytes(b"x" * 1000)  # written in part, then the disk is full
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(store_snapshots, "write_archive", disk_fills)
        with pytest.raises(DiskFullError, match="filled up"):
            snapshots.create(idx.store)
    assert [p.name for p in snapshots.snapshot_dir.iterdir()] == [made.name + ".tar"]


@pytest.mark.parametrize(
    "record",
    [b"[1, 2]", b'"x"', b"{}", b'{"format": 2, "created": "", "points": 1, "files": []}',
     b"\xff\xfe", b'{"format": 2, "created": "", "points": -1, "files": {"a": "b"}}',
     b'{"format": 2, "created": "", "points": 1, "files": {"../x": {"digest": "", "size": 1,'
     b' "extents": []}}}',
     b"[" * 100_000 + b"]" * 100_000,  # deeper than the JSON parser goes
     b'{"format": 2, "created": "", "points": 1, "files": {"a": {"digest": "", "size": '
     + str(2**70).encode() + b', "extents": [[0, ' + str(2**70).encode() + b"]]}}}"],
)  # fmt: skip
def test_a_snapshot_with_a_bad_record_is_skipped_and_refused(built, splade, dense, record, caplog):
    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        good = snapshots.create(idx.store)
    bad = snapshots.snapshot_dir / "zz-bad.tar"  # sorts last: listed first if it were read
    with tarfile.open(bad, "w") as tar:
        member = tarfile.TarInfo("snapshot.json")
        member.size = len(record)
        tar.addfile(member, io.BytesIO(record))
    assert [s.name for s in snapshots.list()] == [good.name]
    assert "zz-bad.tar is skipped" in caplog.text
    with pytest.raises(SnapshotError, match=r"zz-bad.tar (is damaged|cannot be read|has format)"):
        snapshots.restore("zz-bad")
    with pytest.raises(SnapshotError, match="no snapshot 'nope'"):
        snapshots.restore("nope")
    assert snapshots.restore("latest")[0].name == good.name


def test_a_snapshot_of_other_models_is_refused_before_the_swap(
    built, splade, dense, random_splade, random_dense
) -> None:
    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        made = snapshots.create(idx.store)
        points = idx.count()
    for sparse, dense_encoder, what in [
        (random_splade, dense, "another SPLADE model"),
        (splade, random_dense, "another dense model"),
    ]:
        expected = vector_spec(sparse, dense_encoder)
        with pytest.raises(SnapshotError, match=f"does not fit the running encoders.*{what}"):
            snapshots.verify(made.name, expected)
        with pytest.raises(SnapshotError, match=what):
            snapshots.restore(made.name, expected)
    assert snapshots.replaced() == [] and not list(built.parent.glob(".restoring-*"))
    assert snapshots.restore(made.name, vector_spec(splade, dense))[0].points == points


def _archive_of_damaged_copy(built: Path, snapshots: EdgeSnapshots, suffix: str, name: str):
    """A snapshot whose checksums were taken of an index already damaged."""
    copy = built.parent / f"damaged-{name}"
    shutil.copytree(built, copy, copy_function=sparse_copy)
    [file] = [p for p in copy.rglob("*") if p.as_posix().endswith(suffix)]
    data = bytearray(file.read_bytes())
    data[:256] = bytes(range(256))
    file.write_bytes(bytes(data))
    points = json.loads((copy / "rag_splade.json").read_text())["points"]
    write_archive(copy, snapshots.snapshot_dir / f"{name}.tar", "2026-12-02T00:00:00Z", points)


@pytest.mark.parametrize(
    "suffix", ["payload_storage/page_0.dat", "mutable_id_tracker.mappings", "chunk_0.mmap"]
)
def test_a_snapshot_of_a_damaged_index_is_refused(built, splade, dense, suffix) -> None:
    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        snapshots.create(idx.store)  # also makes the folder
        points = idx.count()
    _archive_of_damaged_copy(built, snapshots, suffix, "damaged")
    with pytest.raises(SnapshotError, match="does not read back"):
        snapshots.verify("damaged")  # the engine aborting on it costs a child process
    with pytest.raises(SnapshotError, match="does not read back"):
        snapshots.restore("damaged")
    assert not list(built.parent.glob(".restoring-*"))
    assert not list(snapshots.snapshot_dir.glob(".verifying-*"))
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        assert idx.count() == points


@pytest.mark.parametrize("name", ["a" * 129, "x" * 300, "名前", "a b", "a\nb", "../x", ".tar"])
def test_snapshot_names_are_bounded(built, name) -> None:
    with pytest.raises(SnapshotError, match=r"1 to 128 letters, digits, '\.', '_' or '-'"):
        EdgeSnapshots(built).restore(name)


def test_two_snapshots_at_once_are_two_snapshots(built, splade, dense) -> None:
    """Taken from two threads of one process (two admin calls): each gets its own name and
    archive; neither removes the other's file in progress."""
    from concurrent.futures import ThreadPoolExecutor

    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx, ThreadPoolExecutor(4) as pool:
        made = list(pool.map(lambda _: snapshots.create(idx.store), range(4)))
    assert len({m.name for m in made}) == 4
    assert sorted(s.name for s in snapshots.list()) == sorted(m.name for m in made)
    assert not list(snapshots.snapshot_dir.glob("*.partial"))


def test_scratch_folders_of_killed_runs_are_removed_and_live_ones_kept(
    built, splade, dense
) -> None:
    """A verify or restore killed midway leaves its scratch folder (a whole unpacked index);
    the next one removes it, but not one of a live process or of another index."""
    import os
    import subprocess
    import sys

    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        made = snapshots.create(idx.store)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                          capture_output=True, text=True).stdout.strip()  # fmt: skip
    parent, folder = built.parent, snapshots.snapshot_dir
    dead = [folder / f".verifying-index-{gone}-abc", parent / f".restoring-index-{gone}-abc"]
    kept = [
        folder / f".verifying-index-{os.getpid()}-live",  # this process: still at it
        parent / f".restoring-other-{gone}-abc",  # another index's
    ]
    for path in dead + kept:
        (path / "index").mkdir(parents=True)
    snapshots.verify(made.name)
    snapshots.restore(made.name)
    assert [p.exists() for p in dead] == [False, False]
    assert [p.exists() for p in kept] == [True, True]
    leftovers = [p.name for p in (*folder.iterdir(), *parent.iterdir()) if "ing-index-" in p.name]
    assert sorted(leftovers) == [kept[0].name]


def test_a_format_1_snapshot_still_restores(built, splade, dense) -> None:
    snapshots = EdgeSnapshots(built)
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        points = idx.count()
    snapshots.snapshot_dir.mkdir()
    files = sorted(p for p in built.rglob("*") if p.is_file())
    record = {
        "format": 1,
        "created": "2026-11-01T00:00:00Z",
        "points": points,
        "files": {
            p.relative_to(built).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in files
        },
    }
    with tarfile.open(snapshots.snapshot_dir / "old.tar", "w") as tar:  # whole files
        for p in files:
            tar.add(p, "index/" + p.relative_to(built).as_posix())
        data = json.dumps(record).encode()
        member = tarfile.TarInfo("snapshot.json")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    # the room a restore needs counts the whole files (format 1 lists no extents)
    from rag_splade.store.snapshot_archive import read_record, unpacked_bytes

    archive = snapshots.snapshot_dir / "old.tar"
    assert unpacked_bytes(archive, read_record(archive)) >= sum(p.stat().st_size for p in files)
    assert snapshots.restore("old")[0].points == points
    with HybridIndex(splade, dense, EdgeStore(built)) as idx:
        assert idx.count() == points and idx.store.integrity == "verified"

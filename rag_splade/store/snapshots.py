"""Snapshots of an index: create, list, verify and restore.

The embedded Edge index is a folder (the shard and its manifest). A snapshot is one `.tar`
file of that folder, taken while the store holds its write lock after a flush, so it is
consistent while a service keeps serving; beside the files it records each file's SHA-256,
the point count and when it was taken. A restore checks all of that in a scratch folder
before it touches the index, then swaps the folders (the replaced index is kept beside it).
A Qdrant server collection uses the server's own snapshot API.

Example:
    >>> snapshots = EdgeSnapshots("./data/index")  # doctest: +SKIP
    >>> info = snapshots.create(index.store)  # doctest: +SKIP
    >>> snapshots.restore("latest")  # with the index closed  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from rag_splade.errors import IndexInUseError, SnapshotError
from rag_splade.store.tenants import ALL_TENANTS

__all__ = [
    "EdgeSnapshots",
    "IndexInUseError",
    "ServerSnapshots",
    "SnapshotError",
    "SnapshotInfo",
    "Snapshots",
    "open_for_snapshot",
]

if TYPE_CHECKING:
    from rag_splade.store.base import HybridStore
    from rag_splade.store.edge import EdgeStore
    from rag_splade.store.server import QdrantServerStore

SUFFIX = ".tar"
RECORD = "snapshot.json"  # the archive member that describes the snapshot
FILES = "index/"  # the archive folder that holds the index's files
FORMAT = 1


@dataclass(frozen=True)
class SnapshotInfo:
    """One snapshot: its name, when it was taken (UTC, ISO 8601), its points and size."""

    name: str
    created: str
    points: int | None
    size_bytes: int
    path: str | None = None  # the archive (Edge); None for a server snapshot

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Snapshots(Protocol):
    """What every store backend's snapshots do; a front end needs nothing else."""

    # a restore swaps the index's files: whoever holds the index closes it first and
    # reopens it after (the service does so in `swap_index`)
    replaces_files: bool

    def create(self, store: HybridStore) -> SnapshotInfo:
        """Snapshot the index that the open `store` holds."""
        ...

    def list(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first."""
        ...

    def verify(self, name: str = "latest") -> SnapshotInfo:
        """Check snapshot `name` whole without touching the index."""
        ...

    def restore(self, name: str = "latest") -> tuple[SnapshotInfo, Path | None]:
        """Replace the index with snapshot `name`; also where the replaced one was kept."""
        ...


def default_snapshot_dir(index_path: str | Path) -> Path:
    """Where an index's snapshots go unless told otherwise: `<index>.snapshots` beside it."""
    path = Path(index_path)
    return path.with_name(path.name + ".snapshots")


class EdgeSnapshots:
    """Snapshots of the embedded index at `index_path`, kept in `snapshot_dir`."""

    replaces_files = True

    def __init__(self, index_path: str | Path, snapshot_dir: str | Path | None = None) -> None:
        self.index_path = Path(index_path)
        self.snapshot_dir = Path(snapshot_dir or default_snapshot_dir(index_path))

    def create(self, store: HybridStore) -> SnapshotInfo:
        """Archive the index that the open `store` holds, writes paused meanwhile."""
        from rag_splade.store.edge import EdgeStore

        if not isinstance(store, EdgeStore):
            raise SnapshotError(f"Edge snapshots are of an EdgeStore, got {type(store).__name__}")
        if Path(store.path).resolve() != self.index_path.resolve():
            raise ValueError(
                f"the store is at {store.path}, these snapshots are of {self.index_path}"
            )
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        name = "rag-splade-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        name = _unique(self.snapshot_dir, name)
        target = self.snapshot_dir / (name + SUFFIX)
        partial = target.with_suffix(".partial")
        with store.paused():  # flushed, and no write until the files are copied
            points = store.count(tenant=ALL_TENANTS)  # the whole index
            with tarfile.open(partial, "w") as archive:
                digests = {}
                for file in sorted(p for p in self.index_path.rglob("*") if p.is_file()):
                    relative = file.relative_to(self.index_path).as_posix()
                    digests[relative] = _sha256(file)
                    archive.add(file, FILES + relative, recursive=False)
                record = {
                    "format": FORMAT,
                    "created": created,
                    "points": points,
                    "files": digests,
                }
                data = json.dumps(record, indent=2).encode()
                member = tarfile.TarInfo(RECORD)
                member.size = len(data)
                archive.addfile(member, io.BytesIO(data))
        partial.rename(target)  # a crash mid-copy leaves a .partial, never a bad .tar
        return SnapshotInfo(name, created, points, target.stat().st_size, str(target))

    def list(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first (unreadable ones are listed with `points=None`)."""
        if not self.snapshot_dir.is_dir():
            return []
        found = []
        for path in sorted(self.snapshot_dir.glob("*" + SUFFIX)):
            try:
                record = _record(path)
                created, points = str(record.get("created", "")), record.get("points")
            except SnapshotError:
                created, points = "", None
            found.append(SnapshotInfo(path.stem, created, points, path.stat().st_size, str(path)))
        return sorted(found, key=lambda s: (s.created, s.name))

    def path_of(self, name: str) -> Path:
        """The archive of snapshot `name` (`latest`: the newest), or a `SnapshotError`."""
        if name == "latest":
            snapshots = self.list()
            if not snapshots:
                raise SnapshotError(f"no snapshots in {self.snapshot_dir}")
            name = snapshots[-1].name
        if not name or "/" in name or "\\" in name or name.startswith("."):
            raise SnapshotError(f"a snapshot name is a file name without folders, got {name!r}")
        path = self.snapshot_dir / (name.removesuffix(SUFFIX) + SUFFIX)
        if not path.is_file():
            known = ", ".join(s.name for s in self.list()) or "none"
            raise SnapshotError(f"no snapshot {name!r} in {self.snapshot_dir} (there are: {known})")
        return path

    def verify(self, name: str = "latest") -> SnapshotInfo:
        """Check a snapshot whole (every file's checksum, the index opens, its point count)
        without touching the index; raise `SnapshotError` naming what is wrong."""
        path = self.path_of(name)
        with tempfile.TemporaryDirectory(dir=self.snapshot_dir) as scratch:
            return self._unpack_checked(path, Path(scratch) / "index")

    def restore(self, name: str = "latest") -> tuple[SnapshotInfo, Path | None]:
        """Replace the index with snapshot `name`, checked first in a scratch folder. The
        index must be closed (a service restores through its admin route). Returns the
        snapshot and where the replaced index was moved (None if there was none).

        Raises:
            IndexInUseError: another process holds the index open.
            SnapshotError: the snapshot is missing or damaged (the index is untouched).
        """
        path = self.path_of(name)
        self._check_not_open()
        self.index_path.parent.mkdir(parents=True, exist_ok=True)
        scratch = Path(tempfile.mkdtemp(prefix=".restoring-", dir=self.index_path.parent))
        try:
            info = self._unpack_checked(path, scratch / "index")
            kept = None
            if self.index_path.exists():
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                kept = _unique_path(
                    self.index_path.with_name(f"{self.index_path.name}.before-restore-{stamp}")
                )
                self.index_path.rename(kept)
            (scratch / "index").rename(self.index_path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return info, kept

    def _check_not_open(self) -> None:
        """Nobody may hold the index; a damaged one (the reason to restore) is replaced."""
        if not self.index_path.exists():
            return
        try:
            open_for_snapshot(self.index_path).close()
        except IndexInUseError:
            raise
        except Exception:  # damaged or unreadable: exactly what a restore is for
            return

    def _unpack_checked(self, archive: Path, target: Path) -> SnapshotInfo:
        record = _record(archive)
        expected: dict[str, str] = record.get("files") or {}
        if not expected:
            raise SnapshotError(f"snapshot {archive.name} lists no files")
        target.mkdir(parents=True)
        try:
            with tarfile.open(archive) as tar:
                for member in tar.getmembers():
                    if member.name == RECORD:
                        continue
                    relative = member.name.removeprefix(FILES)
                    if relative not in expected or not member.isfile():
                        raise SnapshotError(
                            f"snapshot {archive.name} holds {member.name!r}, which its record "
                            "does not list"
                        )
                    tar.extract(member, target.parent / "unpacked", filter="data")
        except (tarfile.TarError, OSError, EOFError) as e:
            raise SnapshotError(f"snapshot {archive.name} cannot be read: {e}") from e
        unpacked = target.parent / "unpacked" / FILES.rstrip("/")
        for relative, digest in expected.items():
            file = unpacked / relative
            if not file.is_file():
                raise SnapshotError(f"snapshot {archive.name} is damaged: {relative} is missing")
            if _sha256(file) != digest:
                raise SnapshotError(
                    f"snapshot {archive.name} is damaged: {relative} does not match its checksum"
                )
        target.rmdir()
        unpacked.rename(target)
        points = _count_points(target, archive.name)
        if points != record.get("points"):
            raise SnapshotError(
                f"snapshot {archive.name} is damaged: {points} points, its record says "
                f"{record.get('points')}"
            )
        return SnapshotInfo(
            archive.stem, str(record.get("created")), points, archive.stat().st_size, str(archive)
        )


def open_for_snapshot(index_path: str | Path) -> EdgeStore:
    """The Edge index at `index_path`, opened for snapshots without its models: the vector
    layout comes from its own manifest. Raises `SnapshotError` when it is no index, and
    `IndexInUseError` when another process has it open."""
    from rag_splade.store.base import VectorSpec
    from rag_splade.store.edge import MANIFEST, EdgeStore

    path = Path(index_path)
    if not EdgeStore.is_index_dir(path):
        raise SnapshotError(f"no index at {path} (no {MANIFEST})")
    manifest = json.loads((path / MANIFEST).read_text())
    [(dense_name, dense_size)] = manifest["dense"].items()
    [sparse_name] = manifest["sparse"]
    spec = VectorSpec(dense_size, manifest.get("sparse_vocab_size") or 0, dense_name, sparse_name)
    store = EdgeStore(path, sparse_datatype=manifest.get("sparse_datatype", "float32"))
    try:
        store.open(spec)
    except IndexInUseError as e:
        raise IndexInUseError(
            f"{e}; a running service takes snapshots at /v1/admin/snapshots"
        ) from e
    return store


class ServerSnapshots:
    """Snapshots of a Qdrant server collection, through the server's snapshot API.

    The server writes them into its own snapshot folder (`/qdrant/snapshots` in the official
    image); a restore asks the server to recover from `file://<server_dir>/<collection>/<name>`.
    qdrant-client's local mode has no snapshots: its store raises a `SnapshotError`.
    """

    replaces_files = False  # the server swaps the collection's files itself

    def __init__(self, store: QdrantServerStore, server_dir: str = "/qdrant/snapshots") -> None:
        if store.url is None:
            raise SnapshotError(
                "snapshots of a qdrant-client local collection are not supported by Qdrant's "
                "local mode; use a Qdrant server, or the embedded Edge index"
            )
        self.store = store
        self.server_dir = server_dir.rstrip("/")

    def create(self, store: HybridStore | None = None) -> SnapshotInfo:
        """Ask the server to snapshot the collection (`store`, when given, must hold it)."""
        if store is not None and getattr(store, "collection", None) != self.store.collection:
            raise SnapshotError(
                f"these snapshots are of collection {self.store.collection!r}, not of {store!r}"
            )
        made = self.store.client.create_snapshot(self.store.collection, wait=True)
        if made is None:
            raise SnapshotError(f"the server made no snapshot of {self.store.collection!r}")
        return _server_info(made)

    def list(self) -> list[SnapshotInfo]:
        found = self.store.client.list_snapshots(self.store.collection)
        return sorted((_server_info(s) for s in found), key=lambda s: (s.created, s.name))

    def verify(self, name: str = "latest") -> SnapshotInfo:
        raise SnapshotError("verify applies to the embedded index; the server checks its own")

    def restore(self, name: str = "latest") -> tuple[SnapshotInfo, Path | None]:
        snapshots = self.list()
        chosen = snapshots[-1:] if name == "latest" else [s for s in snapshots if s.name == name]
        if not chosen:
            known = ", ".join(s.name for s in snapshots) or "none"
            raise SnapshotError(f"no snapshot {name!r} of {self.store.collection!r} ({known})")
        location = f"file://{self.server_dir}/{self.store.collection}/{chosen[0].name}"
        self.store.client.recover_snapshot(self.store.collection, location, wait=True)
        return chosen[0], None


def _server_info(description: Any) -> SnapshotInfo:
    return SnapshotInfo(
        name=description.name,
        created=str(description.creation_time or ""),
        points=None,
        size_bytes=int(description.size or 0),
    )


def _record(archive: Path) -> dict[str, Any]:
    try:
        with tarfile.open(archive) as tar:
            member = tar.extractfile(RECORD)
            if member is None:
                raise KeyError(RECORD)
            record: dict[str, Any] = json.loads(member.read())
    except KeyError as e:
        raise SnapshotError(f"{archive.name} is not a rag_splade snapshot (no {RECORD})") from e
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise SnapshotError(f"snapshot {archive.name} cannot be read: {e}") from e
    if record.get("format") != FORMAT:
        raise SnapshotError(f"snapshot {archive.name} has format {record.get('format')!r}")
    return record


def _count_points(folder: Path, name: str) -> int:
    import qdrant_edge as qe

    from rag_splade.store.edge import SHARD_DIR

    try:
        shard = qe.EdgeShard.load(str(folder / SHARD_DIR))
    except BaseException as e:  # a damaged shard can raise pyo3's PanicException
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise SnapshotError(f"snapshot {name} is damaged: its index does not open ({e})") from e
    try:
        return int(shard.count(qe.CountRequest(exact=True)))
    finally:
        shard.close()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _unique(folder: Path, name: str) -> str:
    candidate, n = name, 1
    while (folder / (candidate + SUFFIX)).exists():
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def _unique_path(path: Path) -> Path:
    candidate, n = path, 1
    while candidate.exists():
        n += 1
        candidate = path.with_name(f"{path.name}-{n}")
    return candidate

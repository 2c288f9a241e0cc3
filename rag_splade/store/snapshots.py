"""Snapshots of an index: create, list, verify and restore.

The embedded Edge index is a folder (the shard and its manifest). A snapshot is one `.tar`
file of that folder (`snapshot_archive`: only the files' data, no pre-sized zeros), taken
while the store holds its write lock after a flush, so it is consistent while a service
keeps serving; it records each file's checksum, the point count and when it was taken.
A restore unpacks it into a scratch folder, checks every checksum, that it was built with
the running models, and that a child process can open it, count it, read every point and
search it; only then are the folders swapped (the replaced index is kept beside it, the
last `keep_replaced` of them). A Qdrant server collection uses the server's snapshot API.

Example:
    >>> snapshots = EdgeSnapshots("./data/index")  # doctest: +SKIP
    >>> info = snapshots.create(index.store)  # doctest: +SKIP
    >>> snapshots.restore("latest")  # with the index closed  # doctest: +SKIP
"""

from __future__ import annotations

import builtins
import errno
import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from rag_splade.errors import DiskFullError, IndexDamagedError, IndexInUseError, SnapshotError
from rag_splade.store.files import disk_bytes
from rag_splade.store.manifest import MANIFEST, SHARD_DIR, read_manifest, seal
from rag_splade.store.probe import ShardLayout, check_shard
from rag_splade.store.server_snapshots import ServerSnapshots
from rag_splade.store.snapshot_archive import (
    SUFFIX,
    check_name,
    read_record,
    unpack,
    unpacked_bytes,
    write_archive,
)
from rag_splade.store.snapshot_info import SnapshotInfo
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
    from rag_splade.store.base import HybridStore, VectorSpec
    from rag_splade.store.edge import EdgeStore

logger = logging.getLogger(__name__)
REPLACED = ".before-restore-"  # <index>.before-restore-<UTC stamp>[-n]: a replaced index
MIB = 1 << 20


class Snapshots(Protocol):
    """What every store backend's snapshots do; a front end needs nothing else.

    `expected`, where given, is the running encoders' `VectorSpec`: a snapshot of an index
    built for other models is refused before anything is replaced."""

    # a restore swaps the index's files: whoever holds the index closes it first and
    # reopens it after (the service does so in `swap_index`)
    replaces_files: bool

    def create(self, store: HybridStore) -> SnapshotInfo:
        """Snapshot the index that the open `store` holds."""
        ...

    def list(self) -> list[SnapshotInfo]:
        """Every snapshot, oldest first."""
        ...

    def verify(self, name: str = "latest", expected: VectorSpec | None = None) -> SnapshotInfo:
        """Check snapshot `name` whole without touching the index."""
        ...

    def restore(
        self, name: str = "latest", expected: VectorSpec | None = None
    ) -> tuple[SnapshotInfo, Path | None]:
        """Replace the index with snapshot `name`; also where the replaced one was kept."""
        ...


def default_snapshot_dir(index_path: str | Path) -> Path:
    """Where an index's snapshots go unless told otherwise: `<index>.snapshots` beside it."""
    path = Path(index_path)
    return path.with_name(path.name + ".snapshots")


class EdgeSnapshots:
    """Snapshots of the embedded index at `index_path`, kept in `snapshot_dir`.

    Args:
        index_path: the index folder.
        snapshot_dir: where the archives go (default `<index>.snapshots`).
        keep_replaced: how many replaced indexes (`<index>.before-restore-*`) a restore
            keeps, newest first; older ones are deleted. 0 keeps none.
    """

    replaces_files = True

    def __init__(
        self,
        index_path: str | Path,
        snapshot_dir: str | Path | None = None,
        *,
        keep_replaced: int = 1,
    ) -> None:
        if isinstance(keep_replaced, bool) or not isinstance(keep_replaced, int):
            raise TypeError(f"keep_replaced must be an int >= 0, got {keep_replaced!r}")
        if keep_replaced < 0:
            raise ValueError(f"keep_replaced must be >= 0, got {keep_replaced}")
        self.index_path = Path(index_path)
        self.snapshot_dir = Path(snapshot_dir or default_snapshot_dir(index_path))
        self.keep_replaced = keep_replaced

    def create(self, store: HybridStore) -> SnapshotInfo:
        """Archive the index that the open `store` holds, writes paused meanwhile.

        Raises:
            DiskFullError: the snapshot folder's disk lacks room for it (nothing written).
        """
        from rag_splade.store.edge import MIN_FREE_BYTES, EdgeStore

        if not isinstance(store, EdgeStore):
            raise SnapshotError(f"Edge snapshots are of an EdgeStore, got {type(store).__name__}")
        if Path(store.path).resolve() != self.index_path.resolve():
            raise ValueError(
                f"the store is at {store.path}, these snapshots are of {self.index_path}"
            )
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        # flushed, and no write until the files are copied; the store's lock also makes two
        # snapshots of it take turns, so neither removes the other's .partial or takes its name
        with store.paused():
            for stale in self.snapshot_dir.glob("*.partial"):  # left by a crash mid-copy
                stale.unlink(missing_ok=True)
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            name = "rag-splade-" + time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            name = _unique(self.snapshot_dir, name)
            target = self.snapshot_dir / (name + SUFFIX)
            partial = target.with_suffix(".partial")
            # the archive holds the index's data and no more: its disk use bounds it
            _check_room(
                self.snapshot_dir, disk_bytes(self.index_path) + MIN_FREE_BYTES, "a snapshot"
            )
            points = store.count(tenant=ALL_TENANTS)  # the whole index
            try:
                write_archive(self.index_path, partial, created, points)
            except BaseException as e:
                partial.unlink(missing_ok=True)  # a failed snapshot leaves nothing behind
                if isinstance(e, OSError) and e.errno == errno.ENOSPC:
                    raise DiskFullError(
                        f"the disk of {self.snapshot_dir} filled up while the snapshot was "
                        "written; nothing was kept: free some space"
                    ) from e
                raise
            partial.rename(target)  # a crash mid-copy leaves a .partial, never a bad .tar
        return SnapshotInfo(name, created, points, target.stat().st_size, str(target))

    def list(self) -> list[SnapshotInfo]:
        """Every readable snapshot, oldest first; an archive whose record cannot be read is
        left out with a warning in the log (verify or restore it by name to see why)."""
        if not self.snapshot_dir.is_dir():
            return []
        found = []
        for path in sorted(self.snapshot_dir.glob("*" + SUFFIX)):
            try:
                check_name(path.name)
                record = read_record(path)
            except SnapshotError as e:
                logger.warning("snapshot %s is skipped: %s", path.name, e)
                continue
            found.append(
                SnapshotInfo(
                    path.stem, record.created, record.points, path.stat().st_size, str(path)
                )
            )
        return sorted(found, key=lambda s: (s.created, s.name))

    def path_of(self, name: str) -> Path:
        """The archive of snapshot `name` (`latest`: the newest), or a `SnapshotError`."""
        if name == "latest":
            snapshots = self.list()
            if not snapshots:
                raise SnapshotError(f"no snapshots in {self.snapshot_dir}")
            name = snapshots[-1].name
        path = self.snapshot_dir / (check_name(name) + SUFFIX)
        if not path.is_file():
            known = ", ".join(s.name for s in self.list()) or "none"
            raise SnapshotError(f"no snapshot {name!r} in {self.snapshot_dir} (there are: {known})")
        return path

    def verify(self, name: str = "latest", expected: VectorSpec | None = None) -> SnapshotInfo:
        """Check a snapshot whole (every file's checksum; that it fits `expected`, the
        running encoders; that a child process opens it, reads every point and searches
        it; its point count) without touching the index; raise `SnapshotError` naming what
        is wrong."""
        path = self.path_of(name)
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        scratch = _scratch(self.snapshot_dir, f".verifying-{self.index_path.name}-")
        try:
            return self._unpack_checked(path, scratch / "index", expected)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def restore(
        self, name: str = "latest", expected: VectorSpec | None = None
    ) -> tuple[SnapshotInfo, Path | None]:
        """Replace the index with snapshot `name`, checked first in a scratch folder as
        `verify` checks it. The index must be closed (a service restores through its admin
        route). Returns the snapshot and where the replaced index was moved (None if there
        was none, or `keep_replaced` is 0).

        Raises:
            IndexInUseError: another process holds the index open.
            SnapshotError: the snapshot is missing, damaged or of other models (the index
                is untouched).
            DiskFullError: no room to unpack it (the index is untouched).
        """
        path = self.path_of(name)
        self._check_not_open()
        parent = self.index_path.parent
        parent.mkdir(parents=True, exist_ok=True)
        scratch = _scratch(parent, f".restoring-{self.index_path.name}-")
        try:
            info = self._unpack_checked(path, scratch / "index", expected)
            seal(scratch / "index", int(info.points or 0))  # checked whole: its checksums
            kept = None
            if self.index_path.exists():
                stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
                kept = _unique_path(
                    self.index_path.with_name(f"{self.index_path.name}{REPLACED}{stamp}")
                )
                self.index_path.rename(kept)
            (scratch / "index").rename(self.index_path)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return info, self._prune_replaced(kept)

    def replaced(self) -> builtins.list[Path]:
        """The replaced indexes restores kept beside the index, oldest first."""
        prefix = self.index_path.name + REPLACED
        found = [p for p in self.index_path.parent.glob(prefix + "*") if p.is_dir()]
        return sorted(found, key=lambda p: _replaced_order(p.name[len(prefix) :]))

    def _prune_replaced(self, kept: Path | None) -> Path | None:
        """Delete all but the newest `keep_replaced` replaced indexes; `kept` if it stays."""
        replaced = self.replaced()
        doomed = replaced[: max(0, len(replaced) - self.keep_replaced)]
        for old in doomed:
            shutil.rmtree(old, ignore_errors=True)
        return None if kept is None or kept in doomed else kept

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

    def _unpack_checked(
        self, archive: Path, target: Path, expected: VectorSpec | None
    ) -> SnapshotInfo:
        from rag_splade.store.base import describe_mismatch
        from rag_splade.store.edge import MIN_FREE_BYTES

        record = read_record(archive)
        needed = unpacked_bytes(archive, record) + MIN_FREE_BYTES
        _check_room(target.parent, needed, "unpacking the snapshot")
        try:
            unpack(archive, record, target)
        except OSError as e:
            if e.errno == errno.ENOSPC:
                raise DiskFullError(f"the disk filled up unpacking snapshot {archive.name}") from e
            raise SnapshotError(f"snapshot {archive.name} cannot be unpacked: {e}") from e
        try:
            manifest = read_manifest(target)
        except IndexDamagedError as e:
            raise SnapshotError(
                f"snapshot {archive.name} is damaged: its {MANIFEST} does not read"
            ) from e
        if expected is not None:
            problems = describe_mismatch(expected, manifest)
            if problems:
                raise SnapshotError(
                    f"snapshot {archive.name} is of an index that does not fit the running "
                    f"encoders: {'; '.join(problems)}. Restore it with the models it was built "
                    "with, or pick another snapshot"
                )
        [(dense_name, dense_size)] = manifest["dense"].items()
        layout = ShardLayout(
            dense_name, dense_size, manifest["sparse"][0], manifest.get("sparse_vocab_size") or 0
        )
        result = check_shard(target / SHARD_DIR, layout)  # an abort costs the child only
        if result.points is None:
            raise SnapshotError(
                f"snapshot {archive.name} is damaged: its index does not read back "
                f"({result.problem})"
            )
        if result.points != record.points:
            raise SnapshotError(
                f"snapshot {archive.name} is damaged: {result.points} points, its record says "
                f"{record.points}"
            )
        return SnapshotInfo(
            archive.stem, record.created, result.points, archive.stat().st_size, str(archive)
        )


def open_for_snapshot(index_path: str | Path) -> EdgeStore:
    """The Edge index at `index_path`, opened for snapshots without its models: the vector
    layout comes from its own manifest. Raises `SnapshotError` when it is no index,
    `IndexDamagedError` when it is damaged, and `IndexInUseError` when another process has
    it open."""
    from rag_splade.store.base import VectorSpec
    from rag_splade.store.edge import EdgeStore

    path = Path(index_path)
    if not EdgeStore.is_index_dir(path):
        raise SnapshotError(f"no index at {path} (no {MANIFEST})")
    manifest = read_manifest(path)
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


def _check_room(folder: Path, needed: int, what: str) -> None:
    """Refuse before writing when `folder`'s disk has less than `needed` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise DiskFullError(
            f"only {free / MIB:.0f} MiB free on the disk of {folder}; {what} needs "
            f"{needed / MIB:.0f} MiB (its data plus the write guard): free some space, "
            "nothing was written"
        )


def _replaced_order(suffix: str) -> tuple[str, int]:
    """`20261202T181139-2` -> ("20261202T181139", 2): oldest first, then by counter."""
    match = re.fullmatch(r"(.*?)(?:-(\d+))?", suffix)
    stamp, n = (match.group(1), match.group(2)) if match else (suffix, None)
    return stamp, int(n or 1)


def _scratch(parent: Path, prefix: str) -> Path:
    """A new scratch folder `<prefix><pid>-*` in `parent`, once the ones of processes that
    are gone (killed mid-way) are removed; another live process's, or another index's
    (its prefix names the index), are left alone."""
    for stale in parent.iterdir():
        rest = stale.name[len(prefix) :].split("-")  # <pid>-<mkdtemp's letters, no "-">
        mine = stale.name.startswith(prefix) and len(rest) == 2 and rest[0].isdigit()
        if mine and not _alive(int(rest[0])):
            shutil.rmtree(stale, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{prefix}{os.getpid()}-", dir=parent))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: whether the process exists, nothing sent
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's, or not a pid this system can have: leave it
    return True


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

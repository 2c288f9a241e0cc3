"""The Edge snapshot file: a `.tar` of the index's data, its record, and the one reader.

A file is stored as its non-zero extents only (`rag_splade.store.files`): the engine
pre-sizes its files and leaves them mostly holes, and a plain tar would store the zeros
(a 9-point index made a 179 MiB archive). The record (`snapshot.json`, format 2) lists
each file's size, extents and content checksum; a restore writes the extents back at
their offsets and leaves the rest a hole, so the restored index takes the disk space of
the original. Format 1 archives (whole files, plain SHA-256) are still read.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from rag_splade.errors import SnapshotError
from rag_splade.store.files import Extent, ExtentReader, content_digest, scan, write_sparse

SUFFIX = ".tar"
RECORD = "snapshot.json"  # the archive member that describes the snapshot
FILES = "index/"  # the archive folder that holds the index's files
FORMAT = 2
READABLE_FORMATS = (1, 2)
NAME_MAX = 128
RECORD_MAX = 64 << 20  # bytes of snapshot.json read at most (a record lists files, no data)
COUNT_MAX = 1 << 62  # sizes, offsets and counts past this are no real file's
_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*")
NAME_RULE = (
    f"a snapshot name is a file name without folders: 1 to {NAME_MAX} letters, digits, '.', "
    "'_' or '-', not starting with '.'"
)


def check_name(name: object) -> str:
    """`name` without its `.tar`, or a `SnapshotError` saying what a name may hold."""
    text = str(name).removesuffix(SUFFIX) if isinstance(name, str) else ""
    if not isinstance(name, str) or not 0 < len(text) <= NAME_MAX or not _NAME.fullmatch(text):
        shown = repr(name) if len(repr(name)) <= 60 else repr(name)[:57] + "...'"
        raise SnapshotError(f"{NAME_RULE}; got {shown} ({len(str(name))} characters)")
    return text


@dataclass(frozen=True)
class FileEntry:
    """One file of the index in the record: its checksum, size and extents (format 2)."""

    digest: str
    size: int | None = None
    extents: tuple[Extent, ...] | None = None

    @property
    def data_bytes(self) -> int:
        return sum(length for _, length in self.extents or ())


@dataclass(frozen=True)
class Record:
    """What `snapshot.json` says, checked whole."""

    format: int
    created: str
    points: int
    files: dict[str, FileEntry]

    @property
    def data_bytes(self) -> int:
        """What the unpacked index holds: the disk space a restore needs, at least."""
        return sum(entry.data_bytes + 4096 for entry in self.files.values())


def write_archive(index_path: Path, target: Path, created: str, points: int) -> None:
    """Archive the files under `index_path` into `target` (the index must not change)."""
    contents = {}
    for file in sorted(p for p in index_path.rglob("*") if p.is_file()):
        contents[file.relative_to(index_path).as_posix()] = (file, scan(file))
    record = {
        "format": FORMAT,
        "created": created,
        "points": points,
        "files": {
            name: {"digest": c.digest, "size": c.size, "extents": [list(e) for e in c.extents]}
            for name, (_, c) in contents.items()
        },
    }
    with tarfile.open(target, "w") as archive:
        for name, (file, content) in contents.items():
            member = tarfile.TarInfo(FILES + name)
            member.size = content.data_bytes
            member.mtime = int(file.stat().st_mtime)
            with ExtentReader(file, content.extents) as reader:
                archive.addfile(member, reader)  # tarfile only calls read()
        data = json.dumps(record, indent=2).encode()
        member = tarfile.TarInfo(RECORD)
        member.size = len(data)
        archive.addfile(member, io.BytesIO(data))


def read_record(archive: Path) -> Record:
    """The record of `archive`, checked whole; a `SnapshotError` naming what is wrong."""
    try:
        with tarfile.open(archive) as tar:
            info = tar.getmember(RECORD)
            member = tar.extractfile(info)
            if member is None:
                raise KeyError(RECORD)
            if info.size > RECORD_MAX:
                raise ValueError(f"its {RECORD} is {info.size} bytes, over {RECORD_MAX}")
            value = json.loads(member.read().decode("utf-8"))
    except KeyError as e:
        raise SnapshotError(f"{archive.name} is not a rag_splade snapshot (no {RECORD})") from e
    except RecursionError as e:  # JSON nested deeper than the parser goes
        raise SnapshotError(
            f"snapshot {archive.name} cannot be read: {RECORD} nests too deep"
        ) from e
    except (tarfile.TarError, OSError, EOFError, ValueError) as e:
        raise SnapshotError(f"snapshot {archive.name} cannot be read: {e}") from e
    return _parse(archive.name, value)


def unpacked_bytes(archive: Path, record: Record) -> int:
    """The disk space unpacking `archive` takes, at least: its record's extents, or for
    format 1 (whole files, no sizes in the record) the tar's file sizes, read here, when a
    restore or verify needs them, not for every listing."""
    if record.format >= 2:
        return record.data_bytes
    try:
        with tarfile.open(archive) as tar:
            sizes = {m.name.removeprefix(FILES): m.size for m in tar if m.isfile()}
    except (tarfile.TarError, OSError, EOFError) as e:
        raise SnapshotError(f"snapshot {archive.name} cannot be read: {e}") from e
    return sum(sizes.get(name, 0) + 4096 for name in record.files)


def _parse(name: str, value: Any) -> Record:
    def bad(what: str) -> SnapshotError:
        return SnapshotError(f"snapshot {name} is damaged: its {RECORD} {what}")

    if not isinstance(value, dict):
        raise bad(f"holds a JSON {type(value).__name__}, not an object")
    form = value.get("format")
    if form not in READABLE_FORMATS or isinstance(form, bool):
        raise SnapshotError(
            f"snapshot {name} has format {form!r}; this version reads {READABLE_FORMATS}"
        )
    created, points, files = value.get("created"), value.get("points"), value.get("files")
    if not isinstance(created, str):
        raise bad(f"has created={created!r:.40}, not a time")
    if not _count(points):
        raise bad(f"has points={points!r:.40}, not a count")
    if not isinstance(files, dict) or not files:
        raise bad("lists no files")
    entries = {}
    for relative, entry in files.items():
        _check_relative(name, relative)
        parsed = _entry(entry, form)
        if parsed is None:
            raise bad(f"has a malformed entry for {relative}")
        entries[relative] = parsed
    return Record(form, created, cast(int, points), entries)


def _entry(entry: Any, form: int) -> FileEntry | None:
    if form == 1:
        return FileEntry(entry) if isinstance(entry, str) else None
    if not isinstance(entry, dict) or not isinstance(entry.get("digest"), str):
        return None
    size, extents = entry.get("size"), entry.get("extents")
    if not _count(size) or not isinstance(extents, list):
        return None
    spans: list[Extent] = []
    for extent in extents:
        if not (isinstance(extent, list) and len(extent) == 2 and all(map(_count, extent))):
            return None
        offset, length = extent
        if offset + length > size or (spans and offset < spans[-1][0] + spans[-1][1]):
            return None
        spans.append((offset, length))
    return FileEntry(entry["digest"], size, tuple(spans))


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < COUNT_MAX


def _check_relative(name: str, relative: Any) -> None:
    parts = relative.split("/") if isinstance(relative, str) else []
    if not parts or any(p in ("", ".", "..") or "\\" in p for p in parts):
        raise SnapshotError(
            f"snapshot {name} is damaged: it lists a file outside the index: {relative!r:.80}"
        )


def unpack(archive: Path, record: Record, target: Path) -> None:
    """Write the index's files of `archive` under `target` (sparsely) and check each
    against its checksum; a `SnapshotError` naming the first file that fails."""
    target.mkdir(parents=True)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                if member.name == RECORD:
                    continue
                relative = member.name.removeprefix(FILES)
                entry = record.files.get(relative)
                if entry is None or not member.isfile() or not member.name.startswith(FILES):
                    raise SnapshotError(
                        f"snapshot {archive.name} holds {member.name!r}, which its record "
                        "does not list"
                    )
                size = member.size if entry.size is None else entry.size
                extents = ((0, member.size),) if entry.extents is None else entry.extents
                if sum(length for _, length in extents) != member.size:
                    raise SnapshotError(
                        f"snapshot {archive.name} is damaged: {relative} holds {member.size} "
                        "bytes, not what its record lists"
                    )
                path = target / relative
                path.parent.mkdir(parents=True, exist_ok=True)
                source = tar.extractfile(member)
                if source is None:
                    raise SnapshotError(f"snapshot {archive.name}: {relative} cannot be read")
                write_sparse(source, path, size, extents)  # type: ignore[arg-type]
    except SnapshotError:
        raise
    except (tarfile.TarError, EOFError, ValueError) as e:
        raise SnapshotError(f"snapshot {archive.name} cannot be read: {e}") from e
    for relative, entry in record.files.items():
        file = target / relative
        if not file.is_file():
            raise SnapshotError(f"snapshot {archive.name} is damaged: {relative} is missing")
        found = content_digest(file) if record.format >= 2 else _plain_sha256(file)
        if found != entry.digest:
            raise SnapshotError(
                f"snapshot {archive.name} is damaged: {relative} does not match its checksum"
            )


def _plain_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

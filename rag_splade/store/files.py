"""The Edge index's files as content: checksums, real disk use, and sparse copies.

The engine pre-sizes its files (32 MiB pages, WAL segments) and leaves most of each a hole.
Everything here reads a file as its size plus its non-zero blocks, so a hole and written
zeros are the same content: a checksum does not change when a copy is laid out
differently on disk, and a snapshot or a restored index stores no zeros.
"""

from __future__ import annotations

import errno
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

BLOCK = 4096  # the unit of zero detection: a file system's block
READ = 1 << 20
_ZEROS = bytes(READ)

Extent = tuple[int, int]  # (offset, length) of non-zero data


@dataclass(frozen=True)
class FileContent:
    """A file as the index's checks see it: its size, the non-zero extents, and a checksum
    of both (`sha256:` over the size and each non-zero block with its offset)."""

    size: int
    extents: tuple[Extent, ...]
    digest: str

    @property
    def data_bytes(self) -> int:
        return sum(length for _, length in self.extents)


def scan(path: Path) -> FileContent:
    """Read `path` once (holes skipped) into its `FileContent`."""
    digest = hashlib.sha256()
    extents: list[Extent] = []
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        digest.update(f"size:{size}\n".encode("ascii"))
        for offset, block in _data_blocks(f, size):
            digest.update(offset.to_bytes(8, "little"))
            digest.update(block)
            if extents and extents[-1][0] + extents[-1][1] == offset:
                extents[-1] = (extents[-1][0], extents[-1][1] + len(block))
            else:
                extents.append((offset, len(block)))
    return FileContent(size, tuple(extents), "sha256:" + digest.hexdigest())


def content_digest(path: Path) -> str:
    """The checksum of `scan(path)`: equal for equal content, however it lies on disk."""
    return scan(path).digest


def _data_blocks(f: BinaryIO, size: int) -> Iterator[tuple[int, bytes]]:
    """The non-zero `BLOCK`-aligned blocks of `f`, in order (the last may be shorter)."""
    fd = f.fileno()
    position = 0  # aligned: everything before it was read
    while position < size:
        try:  # jump over holes where the file system says where data is
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nothing but a hole is left
                return
            start, end = position, size  # no hole support: read it all
        else:
            end = os.lseek(fd, start, os.SEEK_HOLE)
        start = max(position, start - start % BLOCK)
        end = min(size, -(-end // BLOCK) * BLOCK)
        f.seek(start)
        while start < end:
            chunk = f.read(min(READ, end - start))
            if not chunk:
                return
            view = memoryview(chunk)
            for at in range(0, len(chunk), BLOCK):
                block = view[at : at + BLOCK]
                if block != _ZEROS[: len(block)]:
                    yield start + at, bytes(block)
            start += len(chunk)
        position = max(end, position + BLOCK)


def disk_bytes(folder: Path) -> int:
    """What the files under `folder` take on disk (allocated blocks, as `du` counts)."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def tree_files(folder: Path) -> list[Path]:
    """Every file under `folder`, sorted (links are not followed into other folders)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink())


class ExtentReader:
    """A read-only stream of a file's extents, one after another (a snapshot member)."""

    def __init__(self, path: Path, extents: tuple[Extent, ...]) -> None:
        self._file = path.open("rb")
        self._pending = list(extents)

    def read(self, size: int = -1) -> bytes:
        out = bytearray()
        while self._pending and (size < 0 or len(out) < size):
            offset, length = self._pending[0]
            want = length if size < 0 else min(length, size - len(out))
            self._file.seek(offset)
            data = self._file.read(want)
            if len(data) != want:
                raise OSError(f"{self._file.name} changed while it was read")
            out += data
            self._pending[0] = (offset + want, length - want)
            if self._pending[0][1] == 0:
                self._pending.pop(0)
        return bytes(out)

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ExtentReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_sparse(source: BinaryIO, target: Path, size: int, extents: tuple[Extent, ...]) -> None:
    """Write `target` of `size` bytes from `source` (the extents' data, in order), leaving
    holes between them; zero blocks inside an extent become holes too."""
    with target.open("wb") as out:
        for offset, length in extents:
            if offset < 0 or length < 0 or offset + length > size:
                raise ValueError(f"extent ({offset}, {length}) lies outside {size} bytes")
            done = 0
            while done < length:
                chunk = source.read(min(READ, length - done))
                if not chunk:
                    raise EOFError(f"the data of {target.name} ends early")
                if chunk != _ZEROS[: len(chunk)]:
                    out.seek(offset + done)
                    out.write(chunk)
                done += len(chunk)
        out.truncate(size)

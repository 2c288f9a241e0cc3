"""The Edge index's manifest (`rag_splade.json`): one reader, one writer, and the seal.

The manifest says what the index was built for (vector sizes, models' fingerprints,
storage type) and, after a clean close, how many points it held and a checksum of every
file of its shard (`rag_splade.store.files`). An open compares the files with those
checksums before the engine reads a byte of them: a damaged file is refused with
`IndexDamagedError`, never handed to an engine that may abort the process on it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from rag_splade.errors import IndexDamagedError
from rag_splade.store.files import content_digest, tree_files

MANIFEST = "rag_splade.json"  # beside the shard: what the index was built for
SHARD_DIR = "shard"
FORMAT_VERSION = 1
RECOVER = (
    "restore it from a snapshot (rag-splade snapshot restore latest, or "
    "POST /v1/admin/snapshots/latest/restore) or re-ingest into a new index path"
)

# field -> the types it may hold; a manifest is checked whole when read
_FIELDS: dict[str, tuple[type, ...]] = {
    "format": (int,),
    "dense": (dict,),
    "sparse": (list,),
    "sparse_vocab_size": (int, type(None)),
    "sparse_datatype": (str,),
    "sparse_fingerprint": (str, type(None)),
    "dense_fingerprint": (str, type(None)),
    "sparse_dtype": (str, type(None)),
    "points": (int, type(None)),
    "clean": (bool,),
    "checksums": (dict, type(None)),
}
_REQUIRED = ("format", "dense", "sparse")


def read_manifest(index: Path) -> dict[str, Any]:
    """The manifest of the index folder `index`, checked whole.

    Raises:
        IndexDamagedError: it cannot be read, is not JSON, not an object, or a field has
            the wrong type (a half-written or garbled file), naming what is wrong.
    """
    path = index / MANIFEST
    try:
        value = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _damaged(index, f"cannot be read ({type(e).__name__}: {e})") from e
    if not isinstance(value, dict):
        raise _damaged(index, f"holds a JSON {type(value).__name__}, not an object")
    for name in _REQUIRED:
        if name not in value:
            raise _damaged(index, f"has no {name!r}")
    for name, kinds in _FIELDS.items():
        if name in value and not _is_a(value[name], kinds):
            raise _damaged(index, f"has {name}={value[name]!r:.60}, of the wrong type")
    if value["format"] != FORMAT_VERSION:
        raise _damaged(
            index, f"has format {value['format']!r}; this version reads {FORMAT_VERSION}"
        )
    dense, sparse = value["dense"], value["sparse"]
    if len(dense) != 1 or not all(_is_a(v, (int,)) and v > 0 for v in dense.values()):
        raise _damaged(index, f"names {len(dense)} dense vectors or a bad size ({dense!r:.60})")
    if len(sparse) != 1 or not isinstance(sparse[0], str):
        raise _damaged(index, f"names {len(sparse)} sparse vectors ({sparse!r:.60})")
    checksums = value.get("checksums") or {}
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in checksums.items()):
        raise _damaged(index, "holds checksums that are not file names and digests")
    return value


def write_manifest(index: Path, value: dict[str, Any]) -> None:
    """Write the manifest whole or not at all (a temporary file, then a rename)."""
    path = index / MANIFEST
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2))
    os.replace(tmp, path)


def update_manifest(index: Path, **fields: Any) -> None:
    write_manifest(index, {**read_manifest(index), **fields})


def shard_checksums(index: Path) -> dict[str, str]:
    """A checksum of every file of the index's shard, by its path inside the shard."""
    shard = index / SHARD_DIR
    return {p.relative_to(shard).as_posix(): content_digest(p) for p in tree_files(shard)}


def seal(index: Path, points: int) -> None:
    """Record a clean close: the point count and every shard file's checksum."""
    update_manifest(index, points=points, clean=True, checksums=shard_checksums(index))


def unsealed(index: Path) -> None:
    """Mark the index open: its files change from here until a clean close seals them."""
    update_manifest(index, clean=False, checksums=None)


def changed_files(index: Path, recorded: dict[str, str]) -> list[str]:
    """The shard files that differ from the recorded checksums (changed, missing or new)."""
    found = shard_checksums(index)
    return sorted(
        name for name in set(found) | set(recorded) if found.get(name) != recorded.get(name)
    )


def _is_a(value: object, kinds: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in kinds:  # JSON true is no count
        return False
    return isinstance(value, kinds)


def _damaged(index: Path, what: str) -> IndexDamagedError:
    return IndexDamagedError(f"the index at {index}: its {MANIFEST} {what}; {RECOVER}")

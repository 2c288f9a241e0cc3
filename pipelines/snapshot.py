"""`rag-splade snapshot create|list|verify|restore`: back up the index and bring it back.

The embedded Edge index is archived into `RAG_SPLADE_SNAPSHOT_DIR` (default: a folder
`<index>.snapshots` beside it); a Qdrant server collection (`RAG_SPLADE_QDRANT_URL`) uses
the server's snapshots. `verify` and `restore` check the snapshot whole (checksums, the
configured models' fingerprints and sizes, a full read in a child process) before anything
is replaced; they load the models to know them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from .index_options import add_index_arguments, index_overrides

if TYPE_CHECKING:
    from rag_splade import Settings
    from rag_splade.store.base import VectorSpec

ACTIONS = ("create", "list", "verify", "restore")
MIB = 1 << 20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument(
        "name", nargs="?", default="latest", help="snapshot to verify or restore (latest)"
    )
    parser.add_argument(
        "--snapshot-dir", help="folder of the Edge index's snapshots (RAG_SPLADE_SNAPSHOT_DIR)"
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    add_index_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from rag_splade import Settings
    from rag_splade.snapshots import SnapshotError

    settings = Settings(**index_overrides(args, "snapshot_dir"))
    try:
        result = _act(settings, args)
    except SnapshotError as e:
        print(f"rag-splade snapshot {args.action}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    else:
        for line in _lines(args.action, result):
            print(line)
    return 0


def _act(settings: Settings, args: argparse.Namespace) -> dict[str, Any]:
    from rag_splade.store.backends import store_backend

    backend = store_backend(settings)
    snapshots = backend.snapshots(settings)
    if args.action == "list":
        return {"snapshots": [s.to_dict() for s in snapshots.list()]}
    if args.action == "create":
        store = backend.open_for_snapshots(settings)
        try:
            return {"created": snapshots.create(store).to_dict()}
        finally:
            store.close()
    expected = _expected_spec(settings)  # a snapshot of other models is refused
    if args.action == "verify":
        return {"verified": snapshots.verify(args.name, expected).to_dict()}
    info, kept = snapshots.restore(args.name, expected)  # refused while another process holds it
    return {"restored": info.to_dict(), "previous_index": str(kept) if kept else None}


def _expected_spec(settings: Settings) -> VectorSpec:
    """What the configured encoders' vectors look like, fingerprints included."""
    from rag_splade.factories import encoders_from_settings
    from rag_splade.fingerprint import vector_spec

    sparse, dense = encoders_from_settings(settings)
    try:
        return vector_spec(sparse, dense)
    finally:
        sparse.close()


def _lines(action: str, result: dict[str, Any]) -> list[str]:
    if action == "list":
        rows = result["snapshots"]
        if not rows:
            return ["no snapshots"]
        return [
            f"{s['name']}  {s['created']}  {s['points'] if s['points'] is not None else '?'} "
            f"points  {s['size_bytes'] / MIB:.1f} MiB" for s in rows
        ]  # fmt: skip
    key = {"create": "created", "verify": "verified", "restore": "restored"}[action]
    s = result[key]
    lines = [f"{key} {s['name']} ({s['points']} points, {s['size_bytes'] / MIB:.1f} MiB)"]
    if s.get("path"):
        lines.append(f"  {s['path']}")
    if result.get("previous_index"):
        lines.append(f"  the replaced index was kept at {result['previous_index']}")
    return lines

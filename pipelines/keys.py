"""`rag-splade keys add|list|revoke`: the service's scoped API keys (`RAG_SPLADE_KEYS_FILE`).

`add` prints the new key once and stores only its hash; `list` shows ids, roles and
tenants (never a key); `revoke ID` removes one. A running service picks the change up
within a second, without a restart.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

ACTIONS = ("add", "list", "revoke")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = __doc__
    parser.add_argument("action", choices=ACTIONS)
    parser.add_argument("key_id", nargs="?", help="the key to revoke (revoke), or its id (add)")
    parser.add_argument(
        "--file",
        default=os.environ.get("RAG_SPLADE_KEYS_FILE"),
        help="the key file (RAG_SPLADE_KEYS_FILE)",
    )
    parser.add_argument(
        "--tenant",
        action="append",
        default=[],
        help="a tenant the key may use (repeat for several; * for every tenant)",
    )
    parser.add_argument("--role", choices=("read", "write", "admin"), default="read")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def run(args: argparse.Namespace) -> int:
    from rag_splade.keys import KeyFileError

    if not args.file:
        print(
            "rag-splade keys: name the key file with --file or RAG_SPLADE_KEYS_FILE",
            file=sys.stderr,
        )
        return 2
    path = Path(args.file)
    try:
        result = _act(path, args)
    except (KeyFileError, ValueError, TypeError) as e:
        print(f"rag-splade keys {args.action}: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, ensure_ascii=False, indent=2))
    elif args.action == "add":
        print(f"key {result['id']} ({result['role']}, tenants {', '.join(result['tenants'])}):")
        print(result["key"])
        print(
            "Store it now: it is not shown again (the file keeps only its hash).", file=sys.stderr
        )
    elif args.action == "list":
        for row in result["keys"] or [{"id": "no keys"}]:
            extra = (
                f"  {row['role']}  {','.join(row['tenants'])}  {row['created']}"
                if "role" in row
                else ""
            )
            print(row["id"] + extra)
    else:
        print(f"revoked {result['revoked']}")
    return 0


def _act(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    from rag_splade.keys import (
        KeyEntry,
        KeyFileError,
        hash_key,
        new_key,
        read_entries,
        write_entries,
    )
    from rag_splade.store.tenants import check_tenant

    entries = read_entries(path) if path.exists() else []
    if args.action == "list":
        return {"keys": [{k: v for k, v in e.to_json().items() if k != "hash"} for e in entries]}
    if args.action == "revoke":
        kept = [e for e in entries if e.id != args.key_id]
        if len(kept) == len(entries):
            known = ", ".join(e.id for e in entries) or "none"
            raise KeyFileError(f"no key {args.key_id!r} in {path} (there are: {known})")
        write_entries(path, kept)
        return {"revoked": args.key_id}
    if not args.tenant:
        raise ValueError("a key needs at least one --tenant (or --tenant '*' for every tenant)")
    tenants = tuple(check_tenant(t, allow_all=True) for t in args.tenant)
    key = new_key()
    key_id = args.key_id or "k-" + hash_key(key)[7:15]
    if any(e.id == key_id for e in entries):
        raise KeyFileError(f"{path} already has a key {key_id!r}")
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    entry = KeyEntry(key_id, hash_key(key), tenants, args.role, created)
    write_entries(path, [*entries, entry])
    return {"id": key_id, "key": key, "role": args.role, "tenants": list(tenants)}

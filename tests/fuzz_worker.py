"""The child process of the damaged-index fuzz (tests/test_index_fuzz.py).

Reads one index folder per line on stdin; for each, runs `rag-splade snapshot create` on it
(the command line's open path, in this process) and, when that succeeds, opens it again and
prints a digest of everything it holds: every point's id, payload and vectors, and a dense
and a sparse search. One JSON line out per folder. A damaged file that aborts the engine
kills this process: the parent sees it die, counts a crash and starts another.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import sys
from pathlib import Path
from typing import Any

import qdrant_edge as qe

from rag_splade.pipelines.cli import main as cli
from rag_splade.snapshots import open_for_snapshot


def describe(path: Path) -> str:
    store = open_for_snapshot(path)
    try:
        shard = store._require()
        records, offset = [], None
        while True:
            page, offset = shard.scroll(
                qe.ScrollRequest(offset, 64, with_payload=True, with_vector=True)
            )
            records += page
            if offset is None or not page:
                break
        records.sort(key=lambda r: str(r.id))
        rows: list[Any] = [
            [
                str(r.id),
                json.dumps(r.payload, sort_keys=True, ensure_ascii=False),
                [round(x, 5) for x in r.vector["dense"]],
                list(r.vector["sparse"].indices) if "sparse" in r.vector else None,
                [round(x, 4) for x in r.vector["sparse"].values] if "sparse" in r.vector else None,
            ]
            for r in records
        ]
        if records:
            first = records[0].vector
            for name in ("dense", "sparse"):
                if name not in first:
                    continue
                query = qe.Query.Nearest(first[name], using=name)
                hits = shard.query(
                    qe.QueryRequest(
                        query=query, limit=5, filter=None, with_payload=False, with_vector=False
                    )
                )
                rows.append([[str(h.id), round(h.score, 4)] for h in hits])
        return hashlib.sha256(json.dumps(rows).encode()).hexdigest()
    finally:
        store.close()


def run_one(path: Path, snapshot_dir: Path) -> dict[str, Any]:
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = cli(
                [
                    "snapshot",
                    "create",
                    "--index-path",
                    str(path),
                    "--snapshot-dir",
                    str(snapshot_dir),
                ]
            )
    except BaseException as e:  # what main() let through: a traceback on the command line
        if isinstance(e, KeyboardInterrupt):
            raise
        return {"outcome": "traceback", "message": f"{type(e).__name__}: {e}"[:300]}
    if code != 0:
        return {"outcome": "refused", "code": code, "stderr": err.getvalue()}
    try:
        return {"outcome": "opened", "digest": describe(path)}
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        return {"outcome": "failed_in_use", "message": f"{type(e).__name__}: {e}"[:300]}


def loop() -> None:
    for line in sys.stdin:
        request = json.loads(line)
        answer = run_one(Path(request["path"]), Path(request["snapshots"]))
        print(json.dumps({**request, **answer}), flush=True)


if __name__ == "__main__":
    loop()

"""Open an Edge shard and read all of it; run as a script, in a child process.

`python shard_check.py SHARD DENSE_NAME DENSE_SIZE SPARSE_NAME VOCAB [HEAP_BYTES]` loads
the shard (with the process's heap, RLIMIT_DATA, capped at HEAP_BYTES where the system has
that limit: a damaged size must not take the machine's memory before the engine aborts),
counts its points, reads every point with its payload and vectors, and runs one search per
vector; it prints one JSON line, `{"points": N}` or `{"error": "..."}`. A damaged file can
make the engine abort the whole process (a Rust allocation failure is a SIGABRT): here
that kills only this child, and its parent reports the index as damaged.

Only the standard library and `qdrant_edge` are imported: the child starts in well under
a second, without the models.
"""

from __future__ import annotations

import json
import math
import sys
from typing import Any

PAGE = 256
PAYLOAD_FIELDS = {"doc_id": str, "chunk_index": int, "text": str}


class Damaged(Exception):
    """What was read is not what the library writes."""


def check(shard_dir: str, dense_name: str, dense_size: int, sparse_name: str, vocab: int) -> int:
    import qdrant_edge as qe

    shard = qe.EdgeShard.load(shard_dir)
    try:
        points = int(shard.count(qe.CountRequest(exact=True)))
        seen, first, offset = 0, None, None
        while True:
            request = qe.ScrollRequest(offset, PAGE, with_payload=True, with_vector=True)
            records, offset = shard.scroll(request)
            for record in records:
                _check_record(record, dense_name, dense_size, sparse_name, vocab)
                if first is None:
                    first = record
                seen += 1
            if offset is None or not records:
                break
        if seen != points:
            raise Damaged(f"{points} points counted but {seen} read")
        if first is not None:
            vectors: Any = first.vector
            for name in (dense_name, sparse_name):
                if name not in vectors:
                    continue
                query = qe.Query.Nearest(vectors[name], using=name)
                search = qe.QueryRequest(
                    query=query, limit=3, filter=None, with_payload=True, with_vector=False
                )
                hits = shard.query(search)
                if not hits or not all(isinstance(h.payload, dict) for h in hits):
                    raise Damaged(f"a search of the {name} vectors found nothing readable")
        return points
    finally:
        shard.close()


def _check_record(record: Any, dense_name: str, size: int, sparse_name: str, vocab: int) -> None:
    payload = record.payload
    if not isinstance(payload, dict):
        raise Damaged(f"point {record.id} has no payload")
    for field, kind in PAYLOAD_FIELDS.items():
        if not isinstance(payload.get(field), kind):
            raise Damaged(f"point {record.id} lacks its {field!r}")
    vectors = record.vector or {}
    dense = vectors.get(dense_name)
    if not isinstance(dense, list) or len(dense) != size:
        raise Damaged(f"point {record.id} has no {size}-d {dense_name!r} vector")
    norm = math.sqrt(sum(x * x for x in dense))
    if not math.isfinite(norm) or abs(norm - 1.0) > 1e-3:  # cosine vectors are stored unit
        raise Damaged(f"point {record.id}'s {dense_name!r} vector has length {norm:.4g}, not 1")
    sparse = vectors.get(sparse_name)
    if sparse is None:  # a text with no term left stores no sparse vector
        return
    indices, values = list(sparse.indices), list(sparse.values)
    if len(indices) != len(values) or len(set(indices)) != len(indices):
        raise Damaged(f"point {record.id}'s {sparse_name!r} vector is malformed")
    if vocab and any(not 0 <= i < vocab for i in indices):
        raise Damaged(f"point {record.id}'s {sparse_name!r} vector has a term outside {vocab}")
    if any(not math.isfinite(v) or v < 0 for v in values):  # SPLADE weights are >= 0
        raise Damaged(f"point {record.id}'s {sparse_name!r} vector has a weight below 0")


def limit_heap(heap_bytes: int) -> None:
    """Cap this process's data segment and anonymous memory (Linux: RLIMIT_DATA)."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not on Windows; the check still runs
        return
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    if hard != resource.RLIM_INFINITY:
        heap_bytes = min(heap_bytes, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (heap_bytes, hard))


def main(argv: list[str]) -> int:
    shard_dir, dense_name, dense_size, sparse_name, vocab, *heap = argv
    if heap:
        limit_heap(int(heap[0]))
    try:
        points = check(shard_dir, dense_name, int(dense_size), sparse_name, int(vocab))
    except BaseException as e:  # pyo3's PanicException is a BaseException
        if isinstance(e, KeyboardInterrupt):
            raise
        print(json.dumps({"error": f"{type(e).__name__}: {e}"[:500]}), flush=True)
        return 3
    print(json.dumps({"points": points}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

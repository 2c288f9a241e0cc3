"""Section 9: filtered and tenant-scoped hybrid queries, with and without payload indexes.

The store section's synthetic points, spread over tenants (one large, many small) and
given metadata (`source`: one of 50 values; `year`: 25 values). The same hybrid queries
(sparse + dense prefetch of 100, RRF, top 10) run unfiltered, with a `source` filter
(2% of a tenant's points), scoped to a tenant, and scoped with the filter; once on an
Edge index without payload indexes on these fields (the tenant field's index removed)
and once with them (`tenant` keyword `is_tenant=true`, `metadata.source` keyword), both
optimised. p50/p99 per kind, in one run.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from rag_splade.store.base import ChunkPoint, VectorSpec
from rag_splade.store.filters import parse_filters

from .common import BenchContext, Row, Section
from .store import DENSE, VOCAB, hybrid, make_points, make_queries, time_queries, upsert_timed

COLUMNS = [
    ("points", "points"),
    ("matching", "matching points"),
    ("p50_ms", "p50 ms"),
    ("p99_ms", "p99 ms"),
    ("queries", "queries"),
]
TENANTS = 20  # tenant-00 holds half the points, the other 19 share the rest
SOURCES = 50


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--filter-points", type=int, default=100_000, help="points of the filtered section"
    )
    parser.add_argument(
        "--filter-queries", type=int, default=200, help="queries per kind (filtered section)"
    )


def tenant_of(i: int) -> str:
    return "tenant-00" if i % 2 == 0 else f"tenant-{1 + (i // 2) % (TENANTS - 1):02d}"


def with_metadata(points: list[ChunkPoint]) -> list[ChunkPoint]:
    return [
        replace(
            p,
            metadata={"source": f"s{i % SOURCES:02d}", "year": 2000 + i % 25},
            tenant=tenant_of(i),
        )
        for i, p in enumerate(points)
    ]


def run(args: Any, ctx: BenchContext) -> Section:
    section = Section("filtered", "9. Filtered and tenant-scoped queries", COLUMNS)
    n = args.filter_points
    points = with_metadata(make_points(n, seed=3))
    queries = make_queries(args.filter_queries, seed=4)
    small = "tenant-07"
    kinds = {
        "unfiltered, every tenant": ("*", {}),
        "source filter (2%), every tenant": ("*", {"source": "s07"}),
        "tenant-00 (half the points)": ("tenant-00", {}),
        f"{small} (about 2.6%)": (small, {}),
        f"{small} + source filter": (small, {"source": "s07"}),
    }
    for indexed in (False, True):
        print(f"  filtered: {n:,} points, payload indexes {indexed} ...", file=sys.stderr)
        section.rows += _measure(points, queries, kinds, indexed)
    section.notes.append(
        f"Synthetic points as in section 4 ({DENSE}-d dense, SPLADE-like sparse over "
        f"{VOCAB:,} terms), {TENANTS} tenants (tenant-00 half the points), metadata source "
        f"(one of {SOURCES}) and year. Edge index, optimised; {len(queries)} queries per kind "
        "(hybrid, prefetch 100, RRF, top 10). 'without': no payload index on the tenant field "
        "or metadata.source; 'with': tenant keyword is_tenant=true and metadata.source keyword."
    )
    return section


def _measure(
    points: list[ChunkPoint], queries: list[Any], kinds: dict[str, Any], indexed: bool
) -> list[Row]:
    import qdrant_edge as qe

    from rag_splade.store.edge import EdgeStore

    folder = Path(tempfile.mkdtemp(prefix="rag-splade-bench-filtered-"))
    store = EdgeStore(folder / "index")
    rows = []
    try:
        store.open(VectorSpec(dense_size=DENSE, sparse_vocab_size=VOCAB))
        if indexed:
            store.ensure_payload_indexes({"source": "keyword"})
        else:  # open() made the tenant index: remove it, to measure without
            store._require().update(qe.UpdateOperation.delete_field_index("tenant"))
        upsert_timed(store, points)
        store.optimize()
        label = "with payload indexes" if indexed else "without payload indexes"
        for name, (tenant, filters) in kinds.items():
            conditions = parse_filters(filters)
            matching = store.count(conditions, tenant=tenant)

            def ask(q: Any, tenant: str = tenant, conditions: Any = conditions) -> Any:
                return store.query(replace(hybrid(q), conditions=conditions, tenant=tenant))

            stats = time_queries(ask, queries)
            values = {"points": float(len(points)), "matching": float(matching), **stats}
            rows.append(Row(f"{name}, {label}", values))
    finally:
        store.close()
        shutil.rmtree(folder, ignore_errors=True)
    return rows

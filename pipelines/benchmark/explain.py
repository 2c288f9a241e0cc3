"""Section 6: what explanations cost: a hybrid search of 10 hits with and without them.

Two SPLADE models, same run: the lexical test model (sparse vectors, like a real SPLADE
model's) and the random speed model (it activates most of the vocabulary, so every hit
shares thousands of ids with the query: the worst case for explaining). Each query is
searched with and without explanations in turn, so that load from elsewhere hits both, and
which goes first alternates, so that neither always finds the caches warm.
"""

from __future__ import annotations

import tempfile
import time
from typing import Any

from .common import BenchContext, Row, Section, percentiles

COLUMNS = [
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("x_unexplained", "p50 / unexplained"),
    ("shared_terms", "shared ids per hit"),
]
TOP_K = 10


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--explain-queries",
        type=int,
        default=50,
        help="queries per model for the explain section (default 50)",
    )


def run(args: Any, ctx: BenchContext) -> Section:
    from rag_splade import DenseEncoder, Document, EdgeStore, HybridIndex, SpladeEncoder

    section = Section("explain", "7. Explanation cost (hybrid search, top 10)", COLUMNS)
    questions = [q for q, _ in ctx.questions]
    queries = [questions[i % len(questions)] for i in range(max(args.explain_queries, 1))]
    docs = [Document(id=f"p{i}", text=t) for i, t in enumerate(ctx.paragraphs)]
    dense = DenseEncoder(str(ctx.models["dense"]), device=args.device)
    for label, path in (("lexical test model", "lexical"), ("random model", "splade")):
        sparse = SpladeEncoder(str(ctx.models[path]), device=args.device)
        with (
            tempfile.TemporaryDirectory() as folder,
            HybridIndex(sparse, dense, EdgeStore(folder)) as index,
        ):
            index.add(docs)
            index.optimize()
            timings: dict[bool, list[float]] = {False: [], True: []}
            shared: list[int] = []
            index.search(queries[0], TOP_K, explain=True)  # warm-up
            for n, query in enumerate(queries):
                # which goes first alternates: the second search of a query finds warm caches
                for explain in (False, True) if n % 2 else (True, False):
                    start = time.perf_counter()
                    hits = index.search(query, TOP_K, explain=explain)
                    timings[explain].append(time.perf_counter() - start)
                    if explain:
                        shared += [
                            sum(len(t.matched_pieces) for t in h.explanation.terms)
                            for h in hits
                            if h.explanation is not None
                        ]
        plain, explained = percentiles(timings[False]), percentiles(timings[True])
        section.rows += [
            Row(f"{label}: without explanations", plain),
            Row(
                f"{label}: with explanations",
                {
                    **explained,
                    "x_unexplained": explained["p50_ms"] / plain["p50_ms"],
                    "shared_terms": sum(shared) / max(len(shared), 1),
                },
            ),
        ]
    section.notes.append(
        f"{len(queries)} JSQuAD questions over the {len(docs)} bundled paragraphs in an "
        f"optimised Edge index, device {args.device}; each query searched with and without "
        "explanations, which goes first alternating (encoding, the Qdrant query and explaining "
        "all timed). Targets: <= 1.25x on the lexical model, <= 2x on the random one."
    )
    return section

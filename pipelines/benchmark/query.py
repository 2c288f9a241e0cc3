"""Section 2: query encoding latency, one query at a time: sparse, dense, and both overlapped."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from .common import Row, Section, percentiles

COLUMNS = [
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("x_slower_alone", "p50 / slower alone"),
]


def run(args: Any, ctx: dict[str, Any]) -> Section:
    from rag_splade import DenseEncoder, SpladeEncoder

    section = Section("query", "2. Query encoding latency (one query at a time)", COLUMNS)
    dtype = args.dtype.split(",")[0].strip()  # `auto`: fp32 on CPU, bf16/fp16 on CUDA
    sparse = SpladeEncoder(str(ctx["models"]["splade"]), device=args.device, dtype=dtype)
    dense = DenseEncoder(str(ctx["models"]["dense"]), device=args.device, dtype=dtype)
    questions = [q for q, _ in ctx["questions"]]
    queries = [questions[i % len(questions)] for i in range(args.queries)]

    def one_sparse(q: str) -> Any:
        return sparse.encode_queries([q])

    def one_dense(q: str) -> Any:
        return dense.encode_queries([q])

    for q in queries[:3]:  # warm-up
        one_sparse(q)
        one_dense(q)
    pool = ThreadPoolExecutor(max_workers=2)

    def both(q: str) -> Any:
        fs = pool.submit(one_sparse, q)
        fd = pool.submit(one_dense, q)
        return fs.result(), fd.result()

    both(queries[0])
    timings: dict[str, list[float]] = {"sparse": [], "dense": [], "both": []}
    # Interleaved, so that a burst of load from elsewhere hits every variant alike.
    for q in queries:
        for name, fn in (("sparse", one_sparse), ("dense", one_dense), ("both", both)):
            start = time.perf_counter()
            fn(q)
            timings[name].append(time.perf_counter() - start)
    pool.shutdown()
    stats = {name: percentiles(samples) for name, samples in timings.items()}
    slower = max(stats["sparse"]["p50_ms"], stats["dense"]["p50_ms"])
    section.rows = [
        Row("SPLADE query (SpladeEncoder.encode_queries)", stats["sparse"]),
        Row("dense query (DenseEncoder.encode_queries)", stats["dense"]),
        Row(
            "sparse + dense overlapped (2 threads)",
            {**stats["both"], "x_slower_alone": stats["both"]["p50_ms"] / slower},
        ),
    ]
    section.notes.append(
        f"{len(queries)} JSQuAD questions (query truncation {sparse.query_max_length} tokens), "
        f"device {args.device}, dtype {sparse.dtype}, models {ctx['model_label']} (sparse) and "
        f"the same shape mean-pooled (dense); variants interleaved query by query; torch "
        f"threads {ctx['machine']['torch_threads']}."
    )
    return section

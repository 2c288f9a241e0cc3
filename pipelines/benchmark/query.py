"""Section 2: query latency, one query at a time: sparse, dense, both overlapped, and a whole
hybrid search (both encoders, Qdrant Edge, explanations of 10 hits) against the SPLADE
query encode alone, with its breakdown."""

from __future__ import annotations

import shutil
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, cast

from .common import BenchContext, Row, Section, cpu_line, percentiles

if TYPE_CHECKING:
    from rag_splade.encoders.protocols import SparseEncoderProtocol

COLUMNS = [
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("p99_ms", "p99 ms"),
    ("x_slower_alone", "p50 / slower alone"),
    ("x_splade", "p50 / SPLADE query alone"),
]
SEARCH_TOP_K = 10
QUERY_TERMS, PASSAGE_TERMS = 64, 256  # a real Japanese SPLADE's sizes, about


class PrunedQueries:
    """A SPLADE encoder whose query vectors keep only their `terms` strongest weights."""

    def __init__(self, encoder: Any, terms: int) -> None:
        self._encoder, self._terms = encoder, terms

    def encode_queries(self, texts: list[str]) -> list[Any]:
        return [v.pruned(self._terms) for v in self._encoder.encode_queries(texts)]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._encoder, name)


def run(args: Any, ctx: BenchContext) -> Section:
    from rag_splade import DenseEncoder, EdgeStore, HybridIndex, SpladeEncoder
    from rag_splade.sample import sample_documents

    section = Section("query", "3. Query encoding latency (one query at a time)", COLUMNS)
    dtype = args.dtype.split(",")[0].strip()  # `auto`: SPLADE in bf16 on a native-bf16 CPU
    sparse = SpladeEncoder(str(ctx.models["splade"]), device=args.device, dtype=dtype)
    dense = DenseEncoder(str(ctx.models["dense"]), device=args.device, dtype=dtype)
    questions = [q for q, _ in ctx.questions]
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
    folder = tempfile.mkdtemp(prefix="rag-splade-bench-query-")
    index = HybridIndex(sparse=sparse, dense=dense, store=EdgeStore(folder))
    index_docs = sample_documents()
    index.add(index_docs)
    index.optimize()

    def search(q: str) -> Any:
        return index.search(q, top_k=SEARCH_TOP_K, explain=False)

    def search_explained(q: str) -> Any:
        return index.search(q, top_k=SEARCH_TOP_K, explain=True)

    # Real sparsity: the random speed model activates most of the vocabulary, so every hit
    # shares thousands of terms with the query; a real SPLADE query has tens of terms and a
    # passage a few hundred. The same searches with the vectors pruned to that size.
    real_sparse = PrunedQueries(
        SpladeEncoder(
            str(ctx.models["splade"]), device=args.device, dtype=dtype, document_top_k=PASSAGE_TERMS
        ),
        QUERY_TERMS,
    )
    real_folder = tempfile.mkdtemp(prefix="rag-splade-bench-query-real-")
    # PrunedQueries is the encoder itself with pruned queries (its other members delegate)
    pruned = cast("SparseEncoderProtocol", real_sparse)
    real_index = HybridIndex(sparse=pruned, dense=dense, store=EdgeStore(real_folder))
    real_index.add(index_docs)
    real_index.optimize()

    def real_search(q: str) -> Any:
        return real_index.search(q, top_k=SEARCH_TOP_K, explain=False)

    def real_explained(q: str) -> Any:
        return real_index.search(q, top_k=SEARCH_TOP_K, explain=True)

    variants = (
        ("sparse", one_sparse),
        ("dense", one_dense),
        ("both", both),
        ("search", search),
        ("explained", search_explained),
        ("real_search", real_search),
        ("real_explained", real_explained),
    )
    for q in queries[:3]:
        search_explained(q)
    timings: dict[str, list[float]] = {name: [] for name, _ in variants}
    # Interleaved, so that a burst of load from elsewhere hits every variant alike.
    for q in queries:
        for name, fn in variants:
            start = time.perf_counter()
            fn(q)
            timings[name].append(time.perf_counter() - start)
    pool.shutdown()
    index.close()
    real_index.close()
    shutil.rmtree(folder, ignore_errors=True)
    shutil.rmtree(real_folder, ignore_errors=True)
    stats = {name: percentiles(samples) for name, samples in timings.items()}
    slower = max(stats["sparse"]["p50_ms"], stats["dense"]["p50_ms"])
    splade_p50 = stats["sparse"]["p50_ms"]
    for name in ("dense", "both", "search", "explained", "real_search", "real_explained"):
        stats[name]["x_splade"] = stats[name]["p50_ms"] / splade_p50
    section.rows = [
        Row("SPLADE query (SpladeEncoder.encode_queries)", {**stats["sparse"], "x_splade": 1.0}),
        Row("dense query (DenseEncoder.encode_queries)", stats["dense"]),
        Row(
            "sparse + dense overlapped (2 threads)",
            {**stats["both"], "x_slower_alone": stats["both"]["p50_ms"] / slower},
        ),
        Row(f"hybrid search, top {SEARCH_TOP_K}, no explanations", stats["search"]),
        Row(f"hybrid search, top {SEARCH_TOP_K}, explained", stats["explained"]),
        Row(
            f"hybrid search, top {SEARCH_TOP_K}, no explanations, real sparsity",
            stats["real_search"],
        ),
        Row(
            f"hybrid search, top {SEARCH_TOP_K}, explained, real sparsity", stats["real_explained"]
        ),
    ]
    outside = 1 - stats["both"]["p50_ms"] / stats["real_explained"]["p50_ms"]
    breakdown = {
        "both encoders (overlapped)": stats["both"]["p50_ms"],
        "Qdrant query and hits": stats["search"]["p50_ms"] - stats["both"]["p50_ms"],
        "explanations": stats["explained"]["p50_ms"] - stats["search"]["p50_ms"],
    }
    section.notes.append(cpu_line(ctx.machine))
    section.notes.append(
        f"{len(queries)} JSQuAD questions (query truncation {sparse.query_max_length} tokens), "
        f"device {args.device}, dtype {sparse.dtype}, models {ctx.model_label} (sparse) and "
        f"the same shape mean-pooled (dense); variants interleaved query by query; torch "
        f"threads {ctx.machine['torch_threads']}. Hybrid search: HybridIndex.search over "
        f"the bundled sample ({len(index_docs)} paragraphs) in an optimized EdgeStore, RRF. "
        f"Breakdown of the explained search's p50 (differences of p50s): "
        + ", ".join(f"{k} {v:.1f} ms" for k, v in breakdown.items())
        + f"; goal: explained search p50 <= 1.3x the SPLADE query alone, "
        f"{'met' if stats['explained']['x_splade'] <= 1.3 else 'not met'} "
        f"({stats['explained']['x_splade']:.2f}x)."
    )
    section.notes.append(
        f"Real sparsity: queries cut to their {QUERY_TERMS} strongest terms, passages to "
        f"{PASSAGE_TERMS}. Everything but the two encoders (overlapped) is "
        f"{100 * outside:.1f}% of the explained search's p50 there (goal <= 15%: "
        f"{'met' if outside <= 0.15 else 'not met'})."
    )
    section.notes.append(f"outside_encoders_share_real_sparsity={outside:.4f}")
    return section

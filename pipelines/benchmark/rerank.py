"""Section 8: what reranking costs: a hybrid search of 10 hits, and the same search with the
cross-encoder reordering 20, 50 and 100 fused candidates, measured in turns in one run.

The reranker is a random 1-label `BertForSequenceClassification` built offline in the shape
of `hotchpotch/japanese-reranker-cross-encoder-small-v1` (12 layers, hidden 384; its
speed does not depend on its weights; the real model's tokenizer and vocabulary differ),
on the same Japanese tokenizer as the speed SPLADE model.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from .common import BenchContext, Row, Section, comma_list, percentiles

COLUMNS = [
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("x_search", "p50 / search"),
    ("ms_per_pair", "rerank ms per pair"),
]
TOP_K = 10
SMALL_SHAPE = {"hidden": 384, "layers": 12, "heads": 12}
TINY_SHAPE = {"hidden": 64, "layers": 2, "heads": 2}


def add_arguments(parser: Any) -> None:
    parser.add_argument(
        "--rerank-queries", type=int, default=8, help="queries for the rerank section (8)"
    )
    parser.add_argument(
        "--rerank-candidates",
        type=comma_list(int),
        default=[20, 50, 100],
        help="candidates reranked per query, e.g. 20,50,100",
    )


def reranker_model(splade_dir: Path, tiny: bool) -> Path:
    """Build (once) the speed reranker beside the speed SPLADE model, on its tokenizer."""
    from rag_splade.testing import build_cross_encoder

    shape = TINY_SHAPE if tiny else SMALL_SHAPE
    path = splade_dir.parent / f"reranker-{'tiny' if tiny else 'small'}"
    if not (path / "config.json").exists():
        build_cross_encoder(
            path,
            tokenizer_dir=splade_dir,
            hidden=shape["hidden"],
            layers=shape["layers"],
            heads=shape["heads"],
        )
    return path


def run(args: Any, ctx: BenchContext) -> Section:
    from rag_splade import DenseEncoder, Document, EdgeStore, HybridIndex, Reranker, SpladeEncoder

    section = Section("rerank", "8. Rerank cost (hybrid search, top 10)", COLUMNS)
    questions = [q for q, _ in ctx.questions]
    queries = [questions[i % len(questions)] for i in range(max(args.rerank_queries, 1))]
    docs = [Document(id=f"p{i}", text=t) for i, t in enumerate(ctx.paragraphs)]
    splade_dir = Path(ctx.models["splade"])
    reranker = Reranker(str(reranker_model(splade_dir, args.tiny)), device=args.device)
    sparse = SpladeEncoder(str(splade_dir), device=args.device)
    dense = DenseEncoder(str(ctx.models["dense"]), device=args.device)
    depths = sorted({n for n in args.rerank_candidates if n >= TOP_K})
    with (
        tempfile.TemporaryDirectory() as folder,
        HybridIndex(sparse, dense, EdgeStore(folder), reranker=reranker) as index,
    ):
        index.add(docs)
        index.optimize()
        # candidates beyond the corpus cannot be reranked: say how many each row really had
        pool = {n: min(n, index.count()) for n in depths}
        timings: dict[int, list[float]] = {0: [], **{n: [] for n in depths}}
        rerank_only: dict[int, list[float]] = {n: [] for n in depths}
        for n in [0, *depths]:  # warm-up of every path
            index.search(
                queries[0], TOP_K, explain=False, rerank=n > 0, rerank_candidates=n or None
            )
        for i, query in enumerate(queries):
            order = [0, *depths]
            order = order[i % len(order) :] + order[: i % len(order)]  # each goes first in turn
            for n in order:
                start = time.perf_counter()
                index.search(query, TOP_K, explain=False, rerank=n > 0, rerank_candidates=n or None)
                timings[n].append(time.perf_counter() - start)
                if n:
                    pairs = [(query, d.text) for d in docs[: pool[n]]]
                    start = time.perf_counter()
                    reranker.score(pairs)
                    rerank_only[n].append(time.perf_counter() - start)
    search = percentiles(timings[0])
    section.rows.append(Row("hybrid search, no rerank", search))
    for n in depths:
        total = percentiles(timings[n])
        per_pair = percentiles(rerank_only[n])["p50_ms"] / pool[n]
        section.rows.append(
            Row(
                f"hybrid search + rerank of {n} candidates",
                {**total, "x_search": total["p50_ms"] / search["p50_ms"], "ms_per_pair": per_pair},
                note="" if pool[n] == n else f"the corpus has {pool[n]} chunks",
            )
        )
    shape = TINY_SHAPE if args.tiny else SMALL_SHAPE
    section.notes.append(
        f"{len(queries)} JSQuAD questions over the {len(docs)} bundled paragraphs (optimised Edge "
        f"index), device {args.device}, no explanations; each query runs every row, which goes "
        "first rotating. Reranker: random BertForSequenceClassification, "
        f"{shape['layers']} layers, hidden {shape['hidden']}"
        + ("" if args.tiny else " (the shape of japanese-reranker-cross-encoder-small-v1)")
        + ", max length 512; encoders: "
        f"{ctx.model_label}. ms per pair: the reranker alone on that many paragraphs."
    )
    return section

"""Section 4: sparse index size per chunk (float32 or float16; unpruned, top-k, or weights
under a threshold dropped) and its nDCG@10 cost.

Bytes are those of the stored sparse vector (a u32 term id plus a float32 or float16 weight per
non-zero term), the part of a point that pruning and the datatype change. Retrieval quality is
measured in Qdrant Edge itself (a sparse-only shard per variant, Edge's `Float16` sparse
datatype for the half-precision rows) on JSQuAD (`--size-texts`, else the bundled sample):
paragraphs are the corpus, each question's relevant document its own paragraph, with the
lexical tiny SPLADE model.
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from rag_splade.types import SparseVector

from .common import BenchContext, Row, Section, comma_list, jsquad

COLUMNS = [
    ("terms", "terms/chunk"),
    ("bytes", "bytes/chunk"),
    ("x_smaller", "x smaller"),
    ("ndcg10", "nDCG@10"),
    ("ndcg_loss_pct", "nDCG loss %"),
]
VALUE_BYTES = {"float32": 4, "float16": 2}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--prune-k", type=comma_list(int), default=[32, 48, 64], help="size section: top-k values")
    add(
        "--prune-min-weight",
        type=comma_list(float),
        default=[1.0, 1.5, 2.0],
        help="size section: drop weights under these (the test model's weights run 0 to 3.4)",
    )
    add("--size-texts", help="size section: a JSQuAD JSON file (default: the bundled sample)")


def edge_rankings(
    docs: list[SparseVector], queries: list[SparseVector], datatype: str, top: int = 10
) -> list[list[tuple[int, float]]]:
    """Sparse search of every query over `docs` in a fresh Edge shard with that datatype."""
    import qdrant_edge as qe

    kind = {
        "float32": qe.VectorStorageDatatype.Float32,
        "float16": qe.VectorStorageDatatype.Float16,
    }
    folder = Path(tempfile.mkdtemp(prefix="rag-splade-bench-size-"))
    try:
        config = qe.EdgeConfig(
            vectors={}, sparse_vectors={"s": qe.EdgeSparseVectorParams(datatype=kind[datatype])}
        )
        shard = qe.EdgeShard.create(str(folder / "shard"), config)
        shard.update(
            qe.UpdateOperation.upsert_points(
                [
                    qe.Point(i, {"s": qe.SparseVector(v.indices.tolist(), v.values.tolist())}, {})
                    for i, v in enumerate(docs)
                ]
            )
        )
        requests = [
            qe.QueryRequest(
                limit=top,
                query=qe.Query.Nearest(
                    qe.SparseVector(q.indices.tolist(), q.values.tolist()), using="s"
                ),
                with_payload=False,
            )
            for q in queries
        ]
        results = shard.query_batch(qe.QueryBatchRequest(requests))
        shard.close()
        return [[(int(p.id), float(p.score)) for p in points] for points in results]
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def ndcg10(rankings: list[list[tuple[int, float]]], relevant: list[int]) -> float:
    from pipelines.evaluate.metrics import compute_metrics  # ranx, with numba kept quiet

    qrels = {f"q{i}": {f"d{rel}": 1} for i, rel in enumerate(relevant)}
    run = {f"q{i}": {f"d{d}": s for d, s in ranking} for i, ranking in enumerate(rankings)}
    return compute_metrics(qrels, run, ["ndcg@10"])["ndcg@10"]


def run(args: Any, ctx: BenchContext) -> Section:
    from rag_splade import SpladeEncoder

    section = Section("size", "5. Sparse index size per chunk and nDCG@10", COLUMNS)
    encoder = SpladeEncoder(str(ctx.models["lexical"]), device="cpu")
    paragraphs, questions = jsquad(args.size_texts)
    docs = encoder.encode_documents(paragraphs)
    queries = encoder.encode_queries([q for q, _ in questions])
    relevant = [p for _, p in questions]
    prunings: list[tuple[str, Any]] = [("unpruned", lambda v: v)]
    prunings += [(f"top-{k}", lambda v, k=k: v.top_k(k)) for k in args.prune_k]
    prunings += [
        (f"weights ≥ {w:g}", lambda v, w=w: v.drop_below(w)) for w in args.prune_min_weight
    ]
    base_bytes = base_ndcg = None
    for datatype, (label, prune) in itertools.product(("float32", "float16"), prunings):
        stored = [prune(d) for d in docs]
        terms = float(np.mean([len(v) for v in stored]))
        nbytes = terms * (4 + VALUE_BYTES[datatype])
        score = ndcg10(edge_rankings(stored, queries, datatype), relevant)
        if base_bytes is None:
            base_bytes, base_ndcg = nbytes, score
        assert base_ndcg is not None
        section.rows.append(
            Row(
                f"{label}, {datatype}",
                {
                    "terms": terms,
                    "bytes": nbytes,
                    "x_smaller": base_bytes / nbytes,
                    "ndcg10": score,
                    "ndcg_loss_pct": 100.0 * (base_ndcg - score) / base_ndcg if base_ndcg else 0.0,
                },
            )
        )
    section.notes += [
        f"{len(paragraphs)} paragraphs, {len(questions)} questions "
        f"({args.size_texts or 'bundled JSQuAD sample'}), "
        f"lexical tiny SPLADE model (vocabulary {encoder.vocab_size:,}); every row searched in "
        "a Qdrant Edge shard of that datatype (sparse only, top 10), scored with ranx.",
        "Bytes: 4 (u32 term id) + 4 (float32) or 2 (float16) per stored term, the sparse part "
        "of a point; the dense vector and payload are the same in every row.",
        "Float16 sparse storage: Qdrant Edge `EdgeSparseVectorParams(datatype="
        "VectorStorageDatatype.Float16)` and a Qdrant server "
        "`SparseVectorParams(index=SparseIndexParams(datatype=Datatype.FLOAT16))`; "
        "qdrant-client's local mode accepts the setting but keeps float32 values.",
    ]
    return section

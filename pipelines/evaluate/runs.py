"""Run definitions and their execution against a `HybridIndex` (or BM25).

Run names:

| name | what |
|---|---|
| `bm25` | BM25 on MeCab content words (`rag_splade.pipelines.evaluate.bm25`), no neural model |
| `sparse` | SPLADE only (`mode="sparse"`) |
| `dense` | dense only (`mode="dense"`) |
| `hybrid-rrf` | both, fused by RRF inside Qdrant, equal weights |
| `hybrid-rrf-w<r>` | RRF with Qdrant weights `(r, 1)` (sparse, dense) |
| `hybrid-dbsf` | both, fused by DBSF inside Qdrant |
| `<run>+rerank` | any run but bm25, its first `rerank_candidates` chunks reranked |

Qdrant's weighted RRF divides the rank by the weight, it does not multiply the score:
a point at 1-based rank `n` of a source with weight `w` scores `1 / (n / w + k - 1)`
(`1 / (k + n - 1)` unweighted). With `k = 61` a weight above 1 mostly lifts the deep
ranks of that source, which flattens its ranking; a weight below 1 steepens it. Read the
`hybrid-rrf-w<r>` sweep with that in mind: it is not `w / (k + n)` weighting.

Retrieval is at document level: the index returns chunks, and each document takes the
score of its best chunk. Queries are encoded once per model (batched, as
`HybridIndex.search_batch` does) and shared by every run that needs that model; each run
then executes its `SearchRequest` through the index's stages (`retrieve`, `finish`), so
fusion happens in Qdrant.
A `+rerank` run reorders the first `rerank_candidates` chunks of its fused list (the
index's setting, `RAG_SPLADE_RERANK_CANDIDATES`) with the cross-encoder, scoring the pairs
of many queries in shared batches; the chunks below keep their fused order, so Recall@100
still means something when fewer than 100 candidates are reranked. Its documents are
scored by position (the reranker's and the fusion's scales do not mix).
Latency is measured separately on the first `latency_queries` queries, one query at a
time through `HybridIndex.search` (encoding + Qdrant query), the runs taking turns.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import numpy as np

from rag_splade.search import MAX_TOP_K, Fusion, Mode, QueryVectors, SearchOptions, vectors_needed

if TYPE_CHECKING:
    from rag_splade import HybridIndex, SearchHit
    from rag_splade.index import Retrieved

    from .bm25 import BM25Retriever

DEFAULT_RUNS = ("bm25", "sparse", "dense", "hybrid-rrf", "hybrid-dbsf")
SWEEP_RATIOS = (0.25, 0.5, 2.0, 4.0)
_WEIGHTED = re.compile(r"^hybrid-rrf-w(\d+(?:\.\d+)?)$")
RERANK_SUFFIX = "+rerank"
RERANK_BATCH_QUERIES = 16  # queries whose rerank pairs go through the reranker together


@dataclass(frozen=True)
class RunSpec:
    """One retrieval configuration.

    Example:
        >>> RunSpec.parse("hybrid-rrf-w2")
        RunSpec(name='hybrid-rrf-w2', mode='hybrid', fusion='rrf', weights=(2.0, 1.0))
    """

    name: str
    mode: Mode | Literal["bm25"]
    fusion: Fusion | None = None
    weights: tuple[float, float] | None = None
    rerank: bool = False

    @classmethod
    def parse(cls, name: str) -> RunSpec:
        """A run from its name (see the module docstring)."""
        name = name.strip()
        if name.endswith(RERANK_SUFFIX):
            base = cls.parse(name.removesuffix(RERANK_SUFFIX))
            if base.mode == "bm25" or base.rerank:
                raise ValueError(f"run {name!r}: +rerank applies once, to an index run")
            return dataclasses.replace(base, name=name, rerank=True)
        fixed = {
            "bm25": cls("bm25", "bm25"),
            "sparse": cls("sparse", "sparse"),
            "dense": cls("dense", "dense"),
            "hybrid-rrf": cls("hybrid-rrf", "hybrid", "rrf"),
            "hybrid-dbsf": cls("hybrid-dbsf", "hybrid", "dbsf"),
        }
        if name in fixed:
            return fixed[name]
        match = _WEIGHTED.match(name)
        if match and float(match.group(1)) > 0:
            return cls(name, "hybrid", "rrf", (float(match.group(1)), 1.0))
        raise ValueError(
            f"unknown run {name!r}: use {', '.join(DEFAULT_RUNS)}, or hybrid-rrf-w<ratio> "
            "(sparse:dense RRF weight ratio > 0, e.g. hybrid-rrf-w2), each but bm25 with an "
            "optional +rerank (e.g. hybrid-rrf+rerank)"
        )

    @property
    def without_rerank(self) -> str | None:
        """The name of the same run without reranking (None for a run that does not rerank)."""
        return self.name.removesuffix(RERANK_SUFFIX) if self.rerank else None

    @property
    def needs_index(self) -> bool:
        return self.mode != "bm25"

    @property
    def needs_sparse(self) -> bool:
        return self.mode != "bm25" and vectors_needed(self.mode, explain=False)[0]

    @property
    def needs_dense(self) -> bool:
        return self.mode != "bm25" and vectors_needed(self.mode, explain=False)[1]

    def options(self, top_k: int) -> SearchOptions:
        """The search this run makes (no explanations: they do not change a ranking)."""
        if self.mode == "bm25":
            raise ValueError("the bm25 run does not search the index")
        return SearchOptions(
            top_k=top_k, mode=self.mode, fusion=self.fusion, weights=self.weights, explain=False
        )  # +rerank runs rerank the head of this list themselves (`rerank_heads`)


def parse_runs(
    names: Sequence[str] | str, sweep: Sequence[float] = (), *, rerank: bool = False
) -> list[RunSpec]:
    """Run specs from names (a list or a comma-separated string) plus RRF sweep ratios; with
    `rerank`, each index run is followed by its `+rerank` variant."""
    if isinstance(names, str):
        names = [n for n in names.split(",") if n.strip()]
    specs = [RunSpec.parse(n) for n in names]
    for ratio in sweep:
        if ratio <= 0:
            raise ValueError(f"RRF sweep ratios must be > 0, got {ratio!r}")
        specs.append(RunSpec.parse("hybrid-rrf" if ratio == 1 else f"hybrid-rrf-w{ratio:g}"))
    if rerank:
        specs = [
            variant
            for spec in specs
            for variant in (
                [spec, RunSpec.parse(spec.name + RERANK_SUFFIX)]
                if spec.needs_index and not spec.rerank
                else [spec]
            )
        ]
    unique = list(dict.fromkeys(specs))
    if not unique:
        raise ValueError("no runs selected")
    return unique


@dataclass(frozen=True)
class RunOutput:
    """A run's document ranking per query and its latency sample (milliseconds)."""

    spec: RunSpec
    results: dict[str, dict[str, float]]
    latencies_ms: list[float]

    def latency(self) -> dict[str, float | int | None]:
        """p50/p95/mean of the per-query latency sample."""
        if not self.latencies_ms:
            return {"p50_ms": None, "p95_ms": None, "mean_ms": None, "queries": 0}
        arr = np.asarray(self.latencies_ms)
        return {
            "p50_ms": float(np.percentile(arr, 50)),
            "p95_ms": float(np.percentile(arr, 95)),
            "mean_ms": float(arr.mean()),
            "queries": len(self.latencies_ms),
        }


def best_chunk_per_document(hits: Sequence[SearchHit], depth: int) -> dict[str, float]:
    """Chunk hits (best first) to documents: each takes its best chunk's score."""
    docs: dict[str, float] = {}
    for hit in hits:
        if hit.doc_id not in docs:
            docs[hit.doc_id] = float(hit.score)
            if len(docs) == depth:
                break
    return docs


def documents_by_position(hits: Sequence[SearchHit], depth: int) -> dict[str, float]:
    """Chunk hits (best first) to documents scored by position: the first document scores
    `depth`, the next `depth - 1`, and so on (for rankings whose scores do not share one
    scale, such as reranked heads above fused tails)."""
    docs: dict[str, float] = {}
    for hit in hits:
        if hit.doc_id not in docs:
            docs[hit.doc_id] = float(depth - len(docs))
            if len(docs) == depth:
                break
    return docs


def rerank_heads(
    index: HybridIndex, retrieved: Sequence[Retrieved], head: int
) -> list[list[SearchHit]]:
    """Each fused list with its first `head` chunks reordered by the reranker (the pairs of
    `RERANK_BATCH_QUERIES` queries scored together) and the rest in fused order below."""
    out: list[list[SearchHit]] = []
    for start in range(0, len(retrieved), RERANK_BATCH_QUERIES):
        group = retrieved[start : start + RERANK_BATCH_QUERIES]
        heads = []
        for r in group:
            top = r.ranked[:head]
            asked = dataclasses.replace(
                r.request, top_k=max(len(top), 1), rerank=True, rerank_candidates=max(len(top), 1)
            )
            heads.append(dataclasses.replace(r, request=asked, ranked=top))
        scores = index.rerank_scores(heads)
        for r, h, s in zip(group, heads, scores, strict=True):
            tail = dataclasses.replace(r, ranked=r.ranked[head:])
            out.append(index.finish(h, s) + index.finish(tail, None))
    return out


def chunk_depth(depth: int, documents: int, chunks: int) -> int:
    """How many chunks to ask for so that about `depth` distinct documents come back."""
    per_doc = chunks / documents if documents else 1.0
    return max(depth, min(MAX_TOP_K, math.ceil(depth * max(per_doc, 1.0) * 1.5)))


def execute_index_runs(
    index: HybridIndex,
    specs: Sequence[RunSpec],
    queries: Mapping[str, str],
    *,
    depth: int,
    chunk_top_k: int,
    latency_queries: int,
    batch_size: int = 256,
) -> list[RunOutput]:
    """Run every index spec: shared batched encoding, one store query per query and run."""
    qids, texts = list(queries), list(queries.values())
    need_sparse = any(s.needs_sparse for s in specs)
    need_dense = any(s.needs_dense for s in specs)
    sparse_vecs: list = []
    dense_vecs: list = []
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        sparse_vecs += (
            list(index.sparse.encode_queries(batch)) if need_sparse else [None] * len(batch)
        )
        dense_vecs += list(index.dense.encode_queries(batch)) if need_dense else [None] * len(batch)
    rankings: list[dict[str, dict[str, float]]] = []
    for spec in specs:
        options = spec.options(chunk_top_k)
        retrieved = [
            index.retrieve(options.with_query(query), QueryVectors(sv, dv))
            for query, sv, dv in zip(texts, sparse_vecs, dense_vecs, strict=True)
        ]
        if spec.rerank:
            hit_lists = rerank_heads(index, retrieved, index.rerank_candidates)
            results = {
                q: documents_by_position(h, depth) for q, h in zip(qids, hit_lists, strict=True)
            }
        else:
            hit_lists = [index.finish(r, None) for r in retrieved]
            results = {
                q: best_chunk_per_document(h, depth) for q, h in zip(qids, hit_lists, strict=True)
            }
        rankings.append(results)

    def one(query: str, spec: RunSpec) -> object:
        request = spec.options(chunk_top_k).with_query(query)
        if not spec.rerank:
            return index.search_requests([request])
        retrieved = index.retrieve(request, index.encode_queries([request])[0])
        return rerank_heads(index, [retrieved], index.rerank_candidates)

    # Latency: runs take turns on each query, so that a slow spell of the machine does not
    # land on one run only; the first query warms every path up and is not timed.
    sample = texts[:latency_queries]
    latencies: list[list[float]] = [[] for _ in specs]
    for n, query in enumerate(sample[:1] + sample):
        for i, spec in enumerate(specs):
            took = _time_one(functools.partial(one, spec=spec), query)
            if n:
                latencies[i].append(took)
    return [RunOutput(s, r, t) for s, r, t in zip(specs, rankings, latencies, strict=True)]


def _time_one(fn: Callable[[str], object], query: str) -> float:
    start = time.perf_counter()
    fn(query)
    return (time.perf_counter() - start) * 1000.0


def execute_bm25(
    bm25: BM25Retriever,
    queries: Mapping[str, str],
    *,
    depth: int,
    latency_queries: int,
) -> RunOutput:
    """The BM25 run (document level already: BM25 indexes whole documents)."""
    qids, texts = list(queries), list(queries.values())
    ranked = bm25.search_batch(texts, depth)
    sample = texts[:latency_queries]
    if sample:
        bm25.search(sample[0], depth)  # warm-up
    latencies = [_time_one(lambda q: bm25.search(q, depth), q) for q in sample]
    return RunOutput(RunSpec.parse("bm25"), dict(zip(qids, ranked, strict=True)), latencies)

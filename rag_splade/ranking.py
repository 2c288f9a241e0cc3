"""Ranking arithmetic, in one place: the choices of fusion, Qdrant's RRF score, the fixed
order of equal scores, where a list may be cut, and grouping by document.

The store joins Qdrant's lists with `tie_break_key`; the index rescores, cuts and groups
with the rest. Nothing here runs a model or a query.

Example:
    >>> rrf_score(1, 3, rrf_k=61, weights=None) == 1 / 61 + 1 / 63
    True
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # the store's own types; the store imports this module at run time
    from rag_splade.store.base import RankedChunk

Mode = Literal["hybrid", "sparse", "dense"]
Fusion = Literal["rrf", "dbsf"]
MODES: tuple[Mode, ...] = get_args(Mode)
FUSIONS: tuple[Fusion, ...] = get_args(Fusion)

# A hit missing from a retriever's list ranks after every rank of that list.
_MISSING = 1 << 62


def tie_break_key(hit: RankedChunk) -> tuple[float, int, int, str]:
    """The order of hits: fused score, then the better of the two retriever ranks, then the
    sparse rank, then the point id (a hit missing from a list ranks after every rank)."""
    sparse_rank = hit.sparse_rank or _MISSING
    return (-hit.score, min(sparse_rank, hit.dense_rank or _MISSING), sparse_rank, hit.chunk.id)


def list_ranks(scored: Sequence[tuple[str, float]]) -> dict[str, tuple[int, float]]:
    """1-based ranks of one retriever's `(point id, score)` list, equal scores ordered by
    point id: `{id: (rank, score)}`."""
    ordered = sorted(scored, key=lambda item: (-item[1], item[0]))
    return {pid: (rank, score) for rank, (pid, score) in enumerate(ordered, start=1)}


def rrf_score(
    sparse_rank: int | None, dense_rank: int | None, rrf_k: int, weights: Sequence[float] | None
) -> float:
    """Qdrant's RRF score of a hit from its 1-based ranks: a list with weight w adds
    1 / (rank / w + rrf_k - 1); a list the hit is missing from, or of weight 0, adds nothing."""
    w_sparse, w_dense = weights or (1.0, 1.0)
    return sum(
        1.0 / (rank / w + rrf_k - 1)
        for rank, w in ((sparse_rank, w_sparse), (dense_rank, w_dense))
        if rank and w > 0
    )


def rrf_by_fixed_ranks(
    ranked: Sequence[RankedChunk], rrf_k: int, weights: Sequence[float] | None
) -> list[RankedChunk] | None:
    """The hits rescored from their fixed per-retriever ranks, or None when Qdrant's own
    scores already agree. They differ only where one retriever gave equal scores (copies of a
    passage): Qdrant then ranks the copies in its own order, which can change between calls,
    and RRF turns those ranks into different fused scores."""
    scores = [rrf_score(r.sparse_rank, r.dense_rank, rrf_k, weights) for r in ranked]
    if all(math.isclose(r.score, s, rel_tol=1e-5) for r, s in zip(ranked, scores, strict=True)):
        return None
    rescored = [dataclasses.replace(r, score=s) for r, s in zip(ranked, scores, strict=True)]
    return sorted(rescored, key=tie_break_key)


def cut_inside_tie(ranked: Sequence[RankedChunk], keep: int, fetched_limit: int) -> bool:
    """Whether keeping the first `keep` of `ranked` (a list asked with `fetched_limit`) may
    cut a group of equal scores that goes on past what was fetched: then which of them
    belong in the first `keep` is not known, and the list must be asked for longer."""
    return (
        len(ranked) >= fetched_limit > keep
        and len(ranked) > keep
        and ranked[keep - 1].score == ranked[-1].score
    )


def cut_position(ranked: Sequence[RankedChunk], keep: int, per_document: int | None) -> int | None:
    """How many of `ranked` give `keep` candidates once at most `per_document` chunks of a
    document are kept (None: fewer than `keep`)."""
    if per_document is None:
        return keep if len(ranked) >= keep else None
    counts: dict[str, int] = {}
    kept = 0
    for position, r in enumerate(ranked, start=1):
        counts[r.chunk.doc_id] = counts.get(r.chunk.doc_id, 0) + 1
        if counts[r.chunk.doc_id] <= per_document:
            kept += 1
            if kept == keep:
                return position
    return None


def per_document(ranked: Sequence[RankedChunk], limit: int | None) -> list[RankedChunk]:
    """`ranked` with at most `limit` chunks of each document, the best ones."""
    if limit is None:
        return list(ranked)
    counts: dict[str, int] = {}
    kept = []
    for r in ranked:
        counts[r.chunk.doc_id] = counts.get(r.chunk.doc_id, 0) + 1
        if counts[r.chunk.doc_id] <= limit:
            kept.append(r)
    return kept

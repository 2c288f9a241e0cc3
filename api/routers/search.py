"""The `/v1/search` resource: one question, or many with the same options.

The library validates the search (`SearchOptions`, once) and runs its stages
(`HybridIndex.resolve`, `retrieve`, `finish`), with the service's micro-batches for the two
model steps; the route only applies the service's own limits and shapes the answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
from fastapi import APIRouter, Depends

from rag_splade import HybridIndex, SearchHit, SearchRequest
from rag_splade.context import ContextStyle, format_context
from rag_splade.index import Retrieved
from rag_splade.search import QueryVectors, SearchOptions, requests_for
from rag_splade.types import QueryTerm

from ..auth import Read, require_api_key
from ..config import ServiceSettings
from ..deps import RuntimeDep, SettingsDep
from ..errors import InvalidRequest, TooLarge, error_responses, rejects
from ..runtime import Runtime

# The wire names (and so the OpenAPI schema names) are the API's own; the library's
# SearchOptions / SearchRequest keep theirs.
from ..schemas import BatchSearchRequest as BatchSearchBody
from ..schemas import (
    BatchSearchResponse,
    ExplanationOut,
    HitOut,
    QueryTermOut,
    SearchResponse,
    TermMatchOut,
)
from ..schemas import SearchOptions as SearchOptionsBody
from ..schemas import SearchRequest as SearchBody

QUERY_TERMS = 20
SEARCH_LIMITS = (
    "Limits (service settings): query length RAG_SPLADE_MAX_QUERY_CHARS, top_k "
    "RAG_SPLADE_MAX_TOP_K, candidates RAG_SPLADE_MAX_CANDIDATES, rerank_candidates "
    "RAG_SPLADE_MAX_RERANK_CANDIDATES, offset RAG_SPLADE_MAX_OFFSET, queries x (offset + "
    "top_k) RAG_SPLADE_MAX_HITS_PER_REQUEST, terms per hit RAG_SPLADE_MAX_TERMS_PER_HIT, "
    "queries per batch RAG_SPLADE_MAX_QUERIES_PER_REQUEST; each refusal names the limit and "
    "its value."
)

router = APIRouter(
    prefix="/v1/search",
    tags=["search"],
    responses=error_responses(400, 401, 413, 422, 503),
    dependencies=[Depends(require_api_key)],
)


@router.post("", response_model=SearchResponse, description=SEARCH_LIMITS)
async def search(
    body: SearchBody, settings: SettingsDep, runtime: RuntimeDep, access: Read
) -> SearchResponse:
    """Hybrid search for one question in the key's tenant: explained hits and an LLM-ready
    `context` block."""
    [answer] = await _answer(runtime, settings, [body.query], body, access.tenant)
    return answer


@router.post("/batch", response_model=BatchSearchResponse, description=SEARCH_LIMITS)
async def search_batch(
    body: BatchSearchBody, settings: SettingsDep, runtime: RuntimeDep, access: Read
) -> BatchSearchResponse:
    """Many questions with the same options, answered in order."""
    if len(body.queries) > settings.max_queries_per_request:
        raise TooLarge(
            f"{len(body.queries)} queries in one request; the limit is "
            f"{settings.max_queries_per_request} (RAG_SPLADE_MAX_QUERIES_PER_REQUEST)"
        )
    answers = await _answer(runtime, settings, body.queries, body, access.tenant)
    return BatchSearchResponse(results=answers)


@dataclass(frozen=True)
class Found:
    """One query's answer before it is shaped for a front end (REST or MCP)."""

    request: SearchRequest
    hits: list[SearchHit]  # explained when the request asked or a context needs it
    query_terms: list[QueryTerm]


async def _answer(
    runtime: RuntimeDep,
    settings: SettingsDep,
    queries: list[str],
    body: SearchOptionsBody,
    tenant: str,
) -> list[SearchResponse]:
    """`search_hits`, shaped for the wire."""
    found = await search_hits(runtime, settings, queries, body, tenant)
    style = body.context_style if body.context else None
    return [_response(f, body.explain, style, settings.max_terms_per_hit) for f in found]


async def search_hits(
    runtime: Runtime,
    settings: ServiceSettings,
    queries: list[str],
    body: SearchOptionsBody,
    tenant: str,
) -> list[Found]:
    """Validate whole (the service's limits, then the library's), encode in the shared
    micro-batch, run each request in the store (scoped to `tenant`), rerank in the shared
    micro-batch, finish. The one search path of the REST routes and the MCP tool."""
    for i, query in enumerate(queries):
        if len(query) > settings.max_query_chars:
            name = f"queries[{i}]" if isinstance(body, BatchSearchBody) else "query"
            raise InvalidRequest(
                f"{name} has {len(query)} characters; the limit is {settings.max_query_chars} "
                "(RAG_SPLADE_MAX_QUERY_CHARS)"
            )
    if body.top_k > settings.max_top_k:
        raise InvalidRequest(
            f"top_k must be from 1 to {settings.max_top_k} (RAG_SPLADE_MAX_TOP_K), got {body.top_k}"
        )
    if body.candidates is not None and body.candidates > settings.max_candidates:
        raise InvalidRequest(
            f"candidates must be from 1 to {settings.max_candidates} "
            f"(RAG_SPLADE_MAX_CANDIDATES), got {body.candidates}"
        )
    if (
        body.rerank_candidates is not None
        and body.rerank_candidates > settings.max_rerank_candidates
    ):
        raise InvalidRequest(
            f"rerank_candidates must be from 1 to {settings.max_rerank_candidates} "
            f"(RAG_SPLADE_MAX_RERANK_CANDIDATES), got {body.rerank_candidates}"
        )
    if body.offset > settings.max_offset:
        raise InvalidRequest(
            f"offset must be from 0 to {settings.max_offset} (RAG_SPLADE_MAX_OFFSET), "
            f"got {body.offset}"
        )
    hits = len(queries) * (body.offset + body.top_k)
    if hits > settings.max_hits_per_request:
        raise TooLarge(
            f"{len(queries)} queries x {body.offset + body.top_k} hits (offset + top_k) ask "
            f"for {hits} hits; the limit is {settings.max_hits_per_request} "
            "(RAG_SPLADE_MAX_HITS_PER_REQUEST): send fewer queries or a smaller top_k"
        )
    fields = body.model_dump(exclude={"query", "queries", "context", "context_style"})
    fields["explain"] = body.explain or body.context  # the context's key terms need them
    options = rejects(lambda: SearchOptions(**fields))
    whole, encoder = runtime.ready()
    index = whole.tenant(tenant)  # every store request below is scoped to it
    # with the index's defaults in place, so that the search cannot refuse them later (and
    # rerank without a reranker is refused here)
    requests = rejects(lambda: [index.resolve(r) for r in requests_for(queries, options)])
    vectors = await encoder.encode(requests)
    retrieved = await runtime.store_call(
        "search", lambda: [index.retrieve(r, v) for r, v in zip(requests, vectors, strict=True)]
    )
    scores = await _rerank(runtime, retrieved)
    return await asyncio.to_thread(_finish, index, retrieved, scores, vectors)


async def _rerank(runtime: RuntimeDep, retrieved: list[Retrieved]) -> list[np.ndarray | None]:
    """The reranker's scores of each reranking request's candidates, scored in the shared
    micro-batch; None for the requests that do not rerank."""
    reranking = [r for r in retrieved if r.request.rerank]
    if not reranking:
        return [None] * len(retrieved)
    if runtime.scorer is None:  # resolve() refuses rerank without a reranker: not reached
        raise InvalidRequest("rerank is not available: no RAG_SPLADE_RERANK_MODEL is configured")
    scored = iter(await runtime.scorer.score([r.rerank_pairs() for r in reranking]))
    return [next(scored) if r.request.rerank else None for r in retrieved]


def _finish(
    index: HybridIndex,
    retrieved: Sequence[Retrieved],
    scores: Sequence[np.ndarray | None],
    vectors: Sequence[QueryVectors],
) -> list[Found]:
    """Finish each request: its hits, and the query's strongest terms."""
    found = []
    for got, score, vector in zip(retrieved, scores, vectors, strict=True):
        request = got.request
        terms = []
        if vector.sparse is not None:
            terms = index.explain_query(request.query, QUERY_TERMS, vector=vector.sparse)
        found.append(Found(request, index.finish(got, score), terms))
    return found


def _response(
    found: Found, explain: bool, context: ContextStyle | None, max_terms: int
) -> SearchResponse:
    """One answer on the wire: hits (without explanations unless `explain`), the query's
    terms, and the context block when `context` names a style."""
    hits = found.hits
    shown = hits if explain else [replace(h, explanation=None) for h in hits]
    return SearchResponse(
        query=found.request.query,
        query_terms=[QueryTermOut.model_validate(t) for t in found.query_terms],
        hits=[_hit_out(h, max_terms) for h in shown],
        context=format_context(hits, style=context) if context else None,
    )


def _hit_out(hit: SearchHit, max_terms: int) -> HitOut:
    """A hit on the wire: its strongest `max_terms` terms, the rest counted and summed (a
    random or dense model can share thousands of ids with the query)."""
    out = HitOut.model_validate(hit)
    if hit.explanation is not None and out.explanation is not None:
        terms = hit.explanation.terms
        if len(terms) > max_terms:
            ranked = sorted(terms, key=lambda t: -t.contribution)
            out.explanation = ExplanationOut(
                terms=[TermMatchOut.model_validate(t) for t in ranked[:max_terms]],
                omitted_terms=len(terms) - max_terms,
                omitted_contribution=float(sum(t.contribution for t in ranked[max_terms:])),
            )
    return out

"""The `/v1` routes: search, batch search, documents.

Each route takes what it needs as FastAPI dependencies (`deps`); the library validates
the search (`SearchRequest`) and runs its stages (`HybridIndex.resolve`, `retrieve`,
`finish`, with the service's micro-batches for the two model steps); the route only applies
the service's own limits and shapes the answer.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import HTTPException

from rag_splade import Document, HybridIndex, SearchHit
from rag_splade.checks import check_doc_id
from rag_splade.context import format_context
from rag_splade.index import Retrieved
from rag_splade.search import QueryVectors, SearchOptions, requests_for

from .deps import ReadyDep, RuntimeDep, SettingsDep, require_api_key
from .errors import InvalidRequest, TooLarge, rejects
from .schemas import (
    AddDocumentsRequest,
    AddDocumentsResponse,
    BatchSearchResponse,
    ChunkOut,
    DeleteResponse,
    DocumentInfoOut,
    DocumentListResponse,
    DocumentOut,
    ErrorOut,
    ExplanationOut,
    HitOut,
    QueryTermOut,
    SearchResponse,
    StatsResponse,
    TermMatchOut,
)

# The wire names (and so the OpenAPI schema names) are the API's own; the library's
# SearchOptions / SearchRequest keep theirs.
from .schemas import BatchSearchRequest as BatchSearchBody
from .schemas import SearchOptions as SearchOptionsBody
from .schemas import SearchRequest as SearchBody

QUERY_TERMS = 20
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 413, 422, 503)
}
SEARCH_LIMITS = (
    "Limits (service settings): query length RAG_SPLADE_MAX_QUERY_CHARS, top_k "
    "RAG_SPLADE_MAX_TOP_K, candidates RAG_SPLADE_MAX_CANDIDATES, rerank_candidates "
    "RAG_SPLADE_MAX_RERANK_CANDIDATES, offset RAG_SPLADE_MAX_OFFSET, queries x (offset + "
    "top_k) RAG_SPLADE_MAX_HITS_PER_REQUEST, terms per hit RAG_SPLADE_MAX_TERMS_PER_HIT, "
    "queries per batch RAG_SPLADE_MAX_QUERIES_PER_REQUEST; each refusal names the limit and "
    "its value."
)

router = APIRouter(prefix="/v1", responses=ERRORS, dependencies=[Depends(require_api_key)])


@router.post("/search", response_model=SearchResponse, tags=["search"], description=SEARCH_LIMITS)
async def search(body: SearchBody, settings: SettingsDep, runtime: RuntimeDep) -> SearchResponse:
    """Hybrid search for one question: explained hits and an LLM-ready `context` block."""
    [answer] = await _answer(runtime, settings, [body.query], body)
    return answer


@router.post(
    "/search/batch",
    response_model=BatchSearchResponse,
    tags=["search"],
    description=SEARCH_LIMITS,
)
async def search_batch(
    body: BatchSearchBody, settings: SettingsDep, runtime: RuntimeDep
) -> BatchSearchResponse:
    """Many questions with the same options, answered in order."""
    if len(body.queries) > settings.max_queries_per_request:
        raise TooLarge(
            f"{len(body.queries)} queries in one request; the limit is "
            f"{settings.max_queries_per_request} (RAG_SPLADE_MAX_QUERIES_PER_REQUEST)"
        )
    return BatchSearchResponse(results=await _answer(runtime, settings, body.queries, body))


@router.post(
    "/documents",
    response_model=AddDocumentsResponse,
    tags=["documents"],
    description=(
        "Add or replace documents by id (chunked and encoded by the service). Limits: "
        "RAG_SPLADE_MAX_DOCUMENTS_PER_REQUEST documents per request, "
        "RAG_SPLADE_MAX_DOCUMENT_CHARS characters per document. The answer comes after the "
        "write: a 503 means the add did not complete and nothing is acknowledged; re-send it "
        "(ids are stable, so a retry replaces whatever was written)."
    ),
)
async def add_documents(
    body: AddDocumentsRequest, settings: SettingsDep, runtime: RuntimeDep, ready: ReadyDep
) -> AddDocumentsResponse:
    docs = body.documents
    if len(docs) > settings.max_documents_per_request:
        raise TooLarge(
            f"{len(docs)} documents in one request; the limit is "
            f"{settings.max_documents_per_request} (RAG_SPLADE_MAX_DOCUMENTS_PER_REQUEST)"
        )
    for i, d in enumerate(docs):
        if len(d.text) > settings.max_document_chars:
            raise TooLarge(
                f"documents[{i}] (id {d.id!r}) has {len(d.text)} characters; the limit is "
                f"{settings.max_document_chars} (RAG_SPLADE_MAX_DOCUMENT_CHARS): split it"
            )
    index, _ = ready
    documents = rejects(lambda: [Document(id=d.id, text=d.text, metadata=d.metadata) for d in docs])
    result = await runtime.store_call(
        "add",
        # add() validates everything before its first write: its TypeError/ValueError is a 422
        lambda: rejects(lambda: index.add(documents)),
        failure="; the add did not complete and is not acknowledged: re-send it",
    )
    return AddDocumentsResponse(documents=result.documents, chunks=result.chunks)


@router.get("/documents", response_model=DocumentListResponse, tags=["documents"])
async def list_documents(
    runtime: RuntimeDep,
    ready: ReadyDep,
    limit: int = Query(100, ge=1, le=1000, description="Documents per page."),
    after: str | None = Query(None, description="The `next_after` of the previous page."),
    filters: str | None = Query(
        None,
        description='Metadata filters as a JSON object, as in search: {"source": "faq"}.',
        examples=['{"source": "faq"}'],
    ),
) -> DocumentListResponse:
    """Stored documents with their chunk count, metadata and completeness, a page at a
    time in document-id order. Each page reads the index's document table (ids and
    metadata, no texts or vectors)."""
    parsed = _filters_param(filters)
    index, _ = ready
    infos = await runtime.store_call("documents", lambda: rejects(lambda: index.documents(parsed)))
    ids = sorted(i for i in infos if after is None or i > after)
    page = ids[:limit]
    return DocumentListResponse(
        documents=[DocumentInfoOut.model_validate(infos[i]) for i in page],
        total=len(infos),
        next_after=page[-1] if len(ids) > limit else None,
    )


@router.get("/stats", response_model=StatsResponse, tags=["operations"])
async def stats(runtime: RuntimeDep, ready: ReadyDep) -> StatsResponse:
    """Counts, the models and the index's search settings."""
    index, _ = ready
    infos = await runtime.store_call("documents", lambda: index.documents())
    chunks = await runtime.store_call("count", index.count)
    return StatsResponse(
        documents=len(infos),
        chunks=chunks,
        incomplete_documents=sum(not i.complete for i in infos.values()),
        store=type(index.store).__name__,
        sparse_model=index.sparse.model_name,
        dense_model=index.dense.model_name,
        rerank_model=index.reranker.model_name if index.reranker is not None else None,
        dense_dimension=index.dense.dimension,
        sparse_vocab_size=index.sparse.vocab_size,
        fusion=index.fusion,
        rrf_k=index.rrf_k,
        candidates=index.candidates,
        rerank_candidates=index.rerank_candidates,
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


def _exact_doc_id(request: Request, matched: str) -> str:
    """The document id exactly as sent: the routing pattern would stop at a trailing newline
    (`/v1/documents/a%0A` matching `a`), so the id is read from the decoded path itself."""
    prefix = "/v1/documents/"
    path = request.scope["path"]
    doc_id = path[len(prefix) :] if path.startswith(prefix) else matched
    return rejects(lambda: check_doc_id(doc_id))


def _filters_param(text: str | None) -> dict[str, Any] | None:
    """The `filters` query parameter: a JSON object, or a 422 that says so."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidRequest(f"filters must be a JSON object, got {text[:80]!r}: {e}") from e
    if not isinstance(value, dict):
        raise InvalidRequest(f"filters must be a JSON object, got {type(value).__name__}")
    return value


@router.get("/documents/{doc_id:path}", response_model=DocumentOut, tags=["documents"])
async def get_document(
    doc_id: str, request: Request, runtime: RuntimeDep, ready: ReadyDep
) -> DocumentOut:
    """A document's stored chunks, in order."""
    doc_id = _exact_doc_id(request, doc_id)
    index, _ = ready
    chunks = await runtime.store_call("get", lambda: index.get(doc_id))
    if not chunks:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return DocumentOut(doc_id=doc_id, chunks=[ChunkOut.model_validate(c) for c in chunks])


@router.delete("/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"])
async def delete_document(
    doc_id: str, request: Request, runtime: RuntimeDep, ready: ReadyDep
) -> DeleteResponse:
    """Delete a document's chunks."""
    doc_id = _exact_doc_id(request, doc_id)
    index, _ = ready
    deleted = await runtime.store_call("delete", lambda: index.delete(doc_id))
    if deleted == 0:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return DeleteResponse(doc_id=doc_id, deleted_chunks=deleted)


async def _answer(
    runtime: RuntimeDep, settings: SettingsDep, queries: list[str], body: SearchOptionsBody
) -> list[SearchResponse]:
    """Validate whole (the service's limits, then the library's), encode in the shared
    micro-batch, run each request in the store, shape the answers."""
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
    fields = body.model_dump(exclude={"query", "queries", "context"})
    fields["explain"] = body.explain or body.context  # the context's key terms need them
    options = rejects(lambda: SearchOptions(**fields))
    index, encoder = runtime.ready()
    # with the index's defaults in place, so that the search cannot refuse them later (and
    # rerank without a reranker is refused here)
    requests = rejects(lambda: [index.resolve(r) for r in requests_for(queries, options)])
    vectors = await encoder.encode(requests)
    retrieved = await runtime.store_call(
        "search", lambda: [index.retrieve(r, v) for r, v in zip(requests, vectors, strict=True)]
    )
    scores = await _rerank(runtime, retrieved)
    return await asyncio.to_thread(
        _shape,
        index,
        retrieved,
        scores,
        vectors,
        body.explain,
        body.context,
        settings.max_terms_per_hit,
    )


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


def _shape(
    index: HybridIndex,
    retrieved: Sequence[Retrieved],
    scores: Sequence[np.ndarray | None],
    vectors: Sequence[QueryVectors],
    explain: bool,
    context: bool,
    max_terms: int,
) -> list[SearchResponse]:
    """Finish each request and shape its answer: hits (without explanations unless
    `explain`), the query's terms, and the context block when `context` is asked for."""
    answers = []
    for found, score, vector in zip(retrieved, scores, vectors, strict=True):
        request = found.request
        hits = index.finish(found, score)
        shown = hits if explain else [replace(h, explanation=None) for h in hits]
        terms = []
        if vector.sparse is not None:
            terms = index.explain_query(request.query, QUERY_TERMS, vector=vector.sparse)
        answers.append(
            SearchResponse(
                query=request.query,
                query_terms=[QueryTermOut.model_validate(t) for t in terms],
                hits=[_hit_out(h, max_terms) for h in shown],
                context=format_context(hits) if context else None,
            )
        )
    return answers

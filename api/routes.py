"""The `/v1` routes: search, batch search, documents. Thin over `HybridIndex`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import HTTPException

from rag_splade import Document, HybridIndex
from rag_splade.checks import check_doc_id, check_query
from rag_splade.context import format_context
from rag_splade.explain import explain_query
from rag_splade.index import query_vectors_needed

from .config import ServiceSettings
from .runtime import Runtime
from .schemas import (
    AddDocumentsRequest,
    AddDocumentsResponse,
    BatchSearchRequest,
    BatchSearchResponse,
    ChunkOut,
    DeleteResponse,
    DocumentOut,
    ErrorOut,
    HitOut,
    QueryTermOut,
    SearchOptions,
    SearchRequest,
    SearchResponse,
)

QUERY_TERMS = 20
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 404, 413, 422, 503)
}


class InvalidRequest(Exception):
    """A request the library rejected (its message says what is allowed): answered 422."""


class TooLarge(Exception):
    """A request over a configured size limit: answered 413."""


def build_router(settings: ServiceSettings) -> APIRouter:
    router = APIRouter(prefix="/v1", responses=ERRORS)
    limits = (
        f"Limits: query {settings.max_query_chars} characters, top_k 1-{settings.max_top_k}, "
        f"{settings.max_queries_per_request} queries per batch."
    )

    @router.post("/search", response_model=SearchResponse, tags=["search"], description=limits)
    async def search(body: SearchRequest, request: Request) -> SearchResponse:
        """Hybrid search for one question: explained hits and an LLM-ready `context` block."""
        [result] = await _search(_runtime(request), [body.query], body)
        return result

    @router.post(
        "/search/batch", response_model=BatchSearchResponse, tags=["search"], description=limits
    )
    async def search_batch(body: BatchSearchRequest, request: Request) -> BatchSearchResponse:
        """Many questions with the same options, answered in order."""
        if len(body.queries) > settings.max_queries_per_request:
            raise TooLarge(
                f"{len(body.queries)} queries in one request; the limit is "
                f"{settings.max_queries_per_request} (RAG_SPLADE_MAX_QUERIES_PER_REQUEST)"
            )
        return BatchSearchResponse(results=await _search(_runtime(request), body.queries, body))

    @router.post(
        "/documents",
        response_model=AddDocumentsResponse,
        tags=["documents"],
        description=(
            "Add or replace documents by id (chunked and encoded by the service). "
            f"Limits: {settings.max_documents_per_request} documents per request, "
            f"{settings.max_document_chars} characters per document. The answer comes after "
            "the write: a 503 means the add did not complete and nothing is acknowledged; "
            "re-send it (ids are stable, so a retry replaces whatever was written)."
        ),
    )
    async def add_documents(body: AddDocumentsRequest, request: Request) -> AddDocumentsResponse:
        runtime = _runtime(request)
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
        index, _ = runtime.ready()
        try:
            documents = [Document(id=d.id, text=d.text, metadata=d.metadata) for d in docs]
        except (TypeError, ValueError) as e:
            raise InvalidRequest(str(e)) from e
        result = await runtime.store_call(
            "add",
            lambda: _add(index, documents),
            failure="; the add did not complete and is not acknowledged: re-send it",
        )
        return AddDocumentsResponse(documents=result.documents, chunks=result.chunks)

    @router.get("/documents/{doc_id:path}", response_model=DocumentOut, tags=["documents"])
    async def get_document(doc_id: str, request: Request) -> DocumentOut:
        """A document's stored chunks, in order."""
        _rejects(check_doc_id, doc_id)
        runtime = _runtime(request)
        index, _ = runtime.ready()
        chunks = await runtime.store_call("get", lambda: index.get(doc_id))
        if not chunks:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return DocumentOut(
            doc_id=doc_id,
            chunks=[
                ChunkOut(
                    id=c.id,
                    chunk_index=c.chunk_index,
                    text=c.text,
                    start=c.start,
                    end=c.end,
                    metadata=c.metadata,
                )
                for c in chunks
            ],
        )

    @router.delete("/documents/{doc_id:path}", response_model=DeleteResponse, tags=["documents"])
    async def delete_document(doc_id: str, request: Request) -> DeleteResponse:
        """Delete a document's chunks."""
        _rejects(check_doc_id, doc_id)
        runtime = _runtime(request)
        index, _ = runtime.ready()
        deleted = await runtime.store_call("delete", lambda: index.delete(doc_id))
        if deleted == 0:
            raise HTTPException(404, f"no document with id {doc_id!r}")
        return DeleteResponse(doc_id=doc_id, deleted_chunks=deleted)

    async def _search(
        runtime: Runtime, queries: list[str], options: SearchOptions
    ) -> list[SearchResponse]:
        for i, q in enumerate(queries):
            name = f"queries[{i}]" if isinstance(options, BatchSearchRequest) else "query"
            _rejects(check_query, q, name)
            if len(q) > settings.max_query_chars:
                raise InvalidRequest(
                    f"{name} has {len(q)} characters; the limit is {settings.max_query_chars} "
                    "(RAG_SPLADE_MAX_QUERY_CHARS)"
                )
        if options.top_k > settings.max_top_k:
            raise InvalidRequest(
                f"top_k must be from 1 to {settings.max_top_k} (RAG_SPLADE_MAX_TOP_K), "
                f"got {options.top_k}"
            )
        index, encoder = runtime.ready()
        try:
            request = index.search_options(
                options.top_k,
                options.mode,
                options.fusion,
                options.weights,
                options.filters,
                options.explain,
                None,
            )
        except (TypeError, ValueError) as e:
            raise InvalidRequest(str(e)) from e
        need_sparse, need_dense = query_vectors_needed(request["mode"], request["explain"])
        encoded = await encoder.encode(queries, sparse=need_sparse, dense=need_dense)

        def run() -> list[SearchResponse]:
            answers = []
            for query, vectors in zip(queries, encoded, strict=True):
                hits = index.search_vectors(vectors.sparse, vectors.dense, **request)
                terms = []
                if vectors.sparse is not None:
                    terms = explain_query(index.sparse, query, vectors.sparse, QUERY_TERMS)
                answers.append(
                    SearchResponse(
                        query=query,
                        query_terms=[QueryTermOut.model_validate(t) for t in terms],
                        hits=[HitOut.model_validate(h) for h in hits],
                        context=format_context(hits),
                    )
                )
            return answers

        return await runtime.store_call("search", run)

    return router


def _rejects(check: Callable[..., object], *args: object) -> None:
    """Run one of the library's argument checks; its error becomes a 422."""
    try:
        check(*args)
    except (TypeError, ValueError) as e:
        raise InvalidRequest(str(e)) from e


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def _add(index: HybridIndex, documents: list[Document]) -> Any:
    try:
        return index.add(documents)
    except (TypeError, ValueError) as e:  # raised before anything is written
        raise InvalidRequest(str(e)) from e

"""The `/v1/documents` resource: add or replace, list, read and delete documents by id."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.exceptions import HTTPException

from rag_splade import Document
from rag_splade.checks import check_doc_id
from rag_splade.metadata import MAX_DEPTH, json_depth_ok

from ..auth import Read, Write, require_api_key
from ..config import ServiceSettings
from ..deps import ReadyDep, RuntimeDep, SettingsDep
from ..errors import InvalidRequest, TooLarge, error_responses, rejects
from ..schemas import (
    AddDocumentsRequest,
    AddDocumentsResponse,
    ChunkOut,
    DeleteResponse,
    DocumentInfoOut,
    DocumentListResponse,
    DocumentOut,
)

PREFIX = "/v1/documents"

router = APIRouter(
    prefix=PREFIX,
    tags=["documents"],
    responses=error_responses(400, 401, 404, 413, 422, 503),
    dependencies=[Depends(require_api_key)],
)


@router.post(
    "",
    response_model=AddDocumentsResponse,
    description=(
        "Add or replace documents by id (chunked and encoded by the service). Limits: "
        "RAG_SPLADE_MAX_DOCUMENTS_PER_REQUEST documents per request, "
        "RAG_SPLADE_MAX_DOCUMENT_CHARS characters per document. The answer comes after the "
        "write: a 503 means the add did not complete and nothing is acknowledged; re-send it "
        "(ids are stable, so a retry replaces whatever was written)."
    ),
)
async def add_documents(
    body: AddDocumentsRequest,
    settings: SettingsDep,
    runtime: RuntimeDep,
    ready: ReadyDep,
    access: Write,
) -> AddDocumentsResponse:
    docs = body.documents
    check_add_limits(docs, settings)
    index = ready[0].tenant(access.tenant)
    documents = rejects(lambda: [Document(id=d.id, text=d.text, metadata=d.metadata) for d in docs])
    result = await runtime.store_call(
        "add",
        # add() validates everything before its first write: its TypeError/ValueError is a 422
        lambda: rejects(lambda: index.add(documents)),
        failure="; the add did not complete and is not acknowledged: re-send it",
    )
    return AddDocumentsResponse(documents=result.documents, chunks=result.chunks)


@router.get("", response_model=DocumentListResponse)
async def list_documents(
    runtime: RuntimeDep,
    ready: ReadyDep,
    access: Read,
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
    index = ready[0].tenant(access.tenant)
    infos = await runtime.store_call("documents", lambda: rejects(lambda: index.documents(parsed)))
    return document_page(infos, after, limit)


def document_page(infos: Mapping[str, Any], after: str | None, limit: int) -> DocumentListResponse:
    """One page of `infos` in document-id order, after `after` (REST and MCP)."""
    ids = sorted(i for i in infos if after is None or i > after)
    page = ids[:limit]
    return DocumentListResponse(
        documents=[DocumentInfoOut.model_validate(infos[i]) for i in page],
        total=len(infos),
        next_after=page[-1] if len(ids) > limit else None,
    )


@router.get("/{doc_id:path}", response_model=DocumentOut)
async def get_document(
    doc_id: str, request: Request, runtime: RuntimeDep, ready: ReadyDep, access: Read
) -> DocumentOut:
    """A document's stored chunks, in order."""
    doc_id = _exact_doc_id(request, doc_id)
    index = ready[0].tenant(access.tenant)
    chunks = await runtime.store_call("get", lambda: index.get(doc_id))
    if not chunks:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return DocumentOut(doc_id=doc_id, chunks=[ChunkOut.model_validate(c) for c in chunks])


@router.delete("/{doc_id:path}", response_model=DeleteResponse)
async def delete_document(
    doc_id: str, request: Request, runtime: RuntimeDep, ready: ReadyDep, access: Write
) -> DeleteResponse:
    """Delete a document's chunks."""
    doc_id = _exact_doc_id(request, doc_id)
    index = ready[0].tenant(access.tenant)
    deleted = await runtime.store_call("delete", lambda: index.delete(doc_id))
    if deleted == 0:
        raise HTTPException(404, f"no document with id {doc_id!r}")
    return DeleteResponse(doc_id=doc_id, deleted_chunks=deleted)


def _exact_doc_id(request: Request, matched: str) -> str:
    """The document id exactly as sent: the routing pattern would stop at a trailing newline
    (`/v1/documents/a%0A` matching `a`), so the id is read from the decoded path itself."""
    prefix = PREFIX + "/"
    path = request.scope["path"]
    doc_id = path[len(prefix) :] if path.startswith(prefix) else matched
    return rejects(lambda: check_doc_id(doc_id))


def _filters_param(text: str | None) -> dict[str, Any] | None:
    """The `filters` query parameter: a JSON object, or a 422 that says so."""
    if text is None:
        return None
    if not json_depth_ok(text):
        raise InvalidRequest(f"filters nest deeper than {MAX_DEPTH} levels")
    try:
        value = json.loads(text)
    except ValueError as e:
        raise InvalidRequest(f"filters must be a JSON object, got {text[:80]!r}: {e}") from e
    if not isinstance(value, dict):
        raise InvalidRequest(f"filters must be a JSON object, got {type(value).__name__}")
    return value


def check_add_limits(docs: Sequence[Any], settings: ServiceSettings) -> None:
    """The service's limits on one add (REST or MCP): documents per call, characters per
    document; a `TooLarge` naming the limit and its setting."""
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

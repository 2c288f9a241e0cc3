"""The MCP tools: explained Japanese retrieval for LLM agents, on the official SDK (`mcp`).

`build_mcp_server(runtime, settings, access_of, writes=...)` makes one `MCPServer` whose
tools run on the service's own paths: `search` is `search_hits` (the REST route's path,
limits included), `fetch`, `list_documents` and `stats` read what the REST routes read,
and `add_documents` / `delete_document` exist only in a server built with `writes`.
`access_of(ctx, role)` says who is calling and for which tenant: the HTTP transport
works it out from the request's key (as the REST routes do); `rag-splade mcp` (stdio)
from its flags. Every failure is a tool error carrying the REST API's message.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi.exceptions import HTTPException
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp_types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, ValidationError

from rag_splade import Document, __version__
from rag_splade.checks import check_doc_id
from rag_splade.context import format_context, source_of
from rag_splade.keys import Role

from .auth import Access
from .config import ServiceSettings
from .errors import ApiError, rejects
from .routers.documents import check_add_limits, document_page
from .routers.search import search_hits
from .runtime import Runtime
from .schemas import DocumentListResponse
from .schemas import SearchRequest as SearchBody

AccessOf = Callable[[Context, Role], Access]

INSTRUCTIONS = (
    "Search a corpus of Japanese passages. Call `search` with the user's question in "
    "Japanese; each hit has a citation number `n`: cite it as [n] in the answer, and answer "
    "only from the returned passages. `key_terms` are words both the question and the "
    "passage say; `related_terms` are words the model related to both, which the passage "
    "does not contain. Use `fetch` to read the whole document around a hit."
)


class ToolHit(BaseModel):
    n: int = Field(description="Citation number: cite the passage as [n].")
    id: str
    doc_id: str
    source: str = Field(description="The passage's title or source, else its document id.")
    score: float
    sparse_rank: int | None
    dense_rank: int | None
    rerank_score: float | None
    rerank_rank: int | None
    key_terms: list[str] = Field(description="Words both the query and the passage say.")
    related_terms: list[str] = Field(description="Expansion terms the passage does not say.")
    text: str
    start: int = Field(description="Where the passage starts in its document's text.")
    end: int


class SearchOut(BaseModel):
    query: str
    hits: list[ToolHit]
    context: str | None = Field(description="The passages as one block, ready for a prompt.")


class ChunkOut(BaseModel):
    chunk_index: int
    text: str
    start: int
    end: int


class FetchOut(BaseModel):
    doc_id: str
    metadata: dict[str, Any]
    chunks: list[ChunkOut]
    text: str | None = Field(description="The document's text, when `full_text` was asked.")


class StatsOut(BaseModel):
    tenant: str
    documents: int
    chunks: int
    sparse_model: str
    dense_model: str
    rerank_model: str | None


class DocumentIn(BaseModel):
    id: str
    text: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class AddOut(BaseModel):
    documents: int
    chunks: int


class DeleteOut(BaseModel):
    doc_id: str
    deleted_chunks: int


READ_ONLY = ToolAnnotations(read_only_hint=True, open_world_hint=False)


def build_mcp_server(
    runtime: Runtime, settings: ServiceSettings, access_of: AccessOf, *, writes: bool = False
) -> MCPServer:
    """The MCP server over `runtime`'s index; write tools only with `writes`."""
    server = MCPServer(
        "rag-splade", version=__version__, instructions=INSTRUCTIONS, log_level="WARNING"
    )

    async def search(ctx: Context, **arguments: Any) -> Annotated[CallToolResult, SearchOut]:
        access = access_of(ctx, "read")
        body = _checked(lambda: SearchBody(**arguments))
        [found] = await _tool(search_hits(runtime, settings, [body.query], body, access.tenant))
        hits = [_tool_hit(n, h) for n, h in enumerate(found.hits, start=1)]
        context = format_context(found.hits, style=body.context_style) if body.context else None
        out = SearchOut(query=body.query, hits=hits, context=context)
        return CallToolResult(
            content=[TextContent(type="text", text=context or _plain(out))],
            structured_content=out.model_dump(),
        )

    # the SDK reads the parameters from the signature and their types from the annotations
    signature = _signature(SearchBody)
    search.__signature__ = signature  # type: ignore[attr-defined]
    search.__annotations__ = {
        **{name: p.annotation for name, p in signature.parameters.items()},
        "return": signature.return_annotation,
    }
    server.add_tool(
        search,
        name="search",
        title="Search the Japanese passages",
        description=(
            "Hybrid (SPLADE + dense) search over Japanese passages. Returns numbered hits "
            "(cite [n]), each with its key terms (words shared with the query) and related "
            "terms (expansions), and a `context` block to answer from. `filters` narrows by "
            'metadata ({"source": "faq"}); `rerank` re-scores with a cross-encoder.'
        ),
        annotations=READ_ONLY,
    )

    async def fetch(
        ctx: Context,
        doc_id: Annotated[str, Field(description="A hit's doc_id.")],
        full_text: Annotated[
            bool, Field(description="Also join the chunks into the text.")
        ] = False,
    ) -> FetchOut:
        """Read one document by id: its chunks in order (and its whole text), to cite or
        read around a hit."""
        index = _index(runtime, access_of(ctx, "read"))
        checked = _checked(lambda: check_doc_id(doc_id))
        chunks = await _tool(runtime.store_call("get", lambda: index.get(checked)))
        if not chunks:
            raise ToolError(f"no document with id {checked!r}")
        return FetchOut(
            doc_id=checked,
            metadata=chunks[0].metadata,
            chunks=[
                ChunkOut(chunk_index=c.chunk_index, text=c.text, start=c.start, end=c.end)
                for c in chunks
            ],
            text=_joined(chunks) if full_text else None,
        )

    async def list_documents(
        ctx: Context,
        limit: Annotated[int, Field(ge=1, le=1000, description="Documents per page.")] = 100,
        after: Annotated[str | None, Field(description="The previous page's next_after.")] = None,
        filters: Annotated[
            dict[str, Any] | None, Field(description="Metadata filters, as in search.")
        ] = None,
    ) -> DocumentListResponse:
        """The stored documents (id, chunk count, metadata), a page at a time in id order."""
        index = _index(runtime, access_of(ctx, "read"))
        infos = await _tool(
            runtime.store_call("documents", lambda: rejects(lambda: index.documents(filters)))
        )
        return document_page(infos, after, limit)

    async def stats(ctx: Context) -> StatsOut:
        """How many documents and chunks the corpus holds, and which models serve it."""
        access = access_of(ctx, "read")
        index = _index(runtime, access)
        infos = await _tool(runtime.store_call("documents", lambda: index.documents()))
        chunks = await _tool(runtime.store_call("count", index.count))
        return StatsOut(
            tenant=access.tenant,
            documents=len(infos),
            chunks=chunks,
            sparse_model=index.sparse.model_name,
            dense_model=index.dense.model_name,
            rerank_model=index.reranker.model_name if index.reranker is not None else None,
        )

    for fn in (fetch, list_documents, stats):
        server.add_tool(fn, annotations=READ_ONLY)
    if not writes:
        return server

    async def add_documents(
        ctx: Context,
        documents: Annotated[
            list[DocumentIn], Field(description="Documents to add or replace by id.")
        ],
    ) -> AddOut:
        """Add or replace documents (chunked and encoded here); re-sending an id replaces it."""
        index = _index(runtime, access_of(ctx, "write"))
        _checked(lambda: check_add_limits(documents, settings))
        docs = _checked(lambda: [Document(d.id, d.text, d.metadata) for d in documents])
        result = await _tool(runtime.store_call("add", lambda: rejects(lambda: index.add(docs))))
        return AddOut(documents=result.documents, chunks=result.chunks)

    async def delete_document(
        ctx: Context, doc_id: Annotated[str, Field(description="The document to delete.")]
    ) -> DeleteOut:
        """Delete a document and all its chunks."""
        index = _index(runtime, access_of(ctx, "write"))
        checked = _checked(lambda: check_doc_id(doc_id))
        deleted = await _tool(runtime.store_call("delete", lambda: index.delete(checked)))
        if deleted == 0:
            raise ToolError(f"no document with id {checked!r}")
        return DeleteOut(doc_id=checked, deleted_chunks=deleted)

    server.add_tool(add_documents, annotations=ToolAnnotations(destructive_hint=False))
    server.add_tool(delete_document, annotations=ToolAnnotations(destructive_hint=True))
    return server


def _signature(model: type[BaseModel]) -> inspect.Signature:
    """The search tool's parameters: the HTTP body's fields (so the tool takes exactly
    what `POST /v1/search` takes), then the MCP context."""
    params = [
        inspect.Parameter(
            name,
            inspect.Parameter.KEYWORD_ONLY,
            default=inspect.Parameter.empty
            if f.is_required()
            else f.get_default(call_default_factory=True),
            annotation=Annotated[f.annotation, f],
        )
        for name, f in model.model_fields.items()
    ]
    ctx = inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=Context)
    return inspect.Signature([*params, ctx], return_annotation=Annotated[CallToolResult, SearchOut])


def _index(runtime: Runtime, access: Access) -> Any:
    try:
        index, _ = runtime.ready()
    except ApiError as e:
        raise ToolError(e.message) from e
    return index.tenant(access.tenant)


async def _tool(awaitable: Awaitable[Any]) -> Any:
    """The REST path's failures, as tool errors with the same message."""
    try:
        return await awaitable
    except ApiError as e:
        raise ToolError(e.message) from e
    except HTTPException as e:
        raise ToolError(str(e.detail)) from e


def _checked(fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except ValidationError as e:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'arguments'}: {err['msg']}"
            for err in e.errors()
        )
        raise ToolError(f"invalid arguments: {problems}") from e
    except ApiError as e:
        raise ToolError(e.message) from e
    except (TypeError, ValueError) as e:
        raise ToolError(str(e)) from e


def _tool_hit(n: int, hit: Any) -> ToolHit:
    explanation = hit.explanation
    return ToolHit(
        n=n,
        id=hit.id,
        doc_id=hit.doc_id,
        source=source_of(hit),
        score=hit.score,
        sparse_rank=hit.sparse_rank,
        dense_rank=hit.dense_rank,
        rerank_score=hit.rerank_score,
        rerank_rank=hit.rerank_rank,
        key_terms=[t.term for t in explanation.key_terms()] if explanation else [],
        related_terms=[t.term for t in explanation.related_terms()] if explanation else [],
        text=hit.text,
        start=hit.start,
        end=hit.end,
    )


def _joined(chunks: list[Any]) -> str:
    """The document's text from its chunks: each chunk's part past what came before."""
    text, end = "", 0
    for c in chunks:
        if c.end > end:
            text += c.text[max(0, end - c.start) :] if c.start < end else c.text
            end = c.end
    return text


def _plain(out: SearchOut) -> str:
    return "\n".join(f"[{h.n}] {h.source} ({h.doc_id})\n{h.text}" for h in out.hits) or "no hits"


class McpGateway:
    """The `/mcp` endpoint of the HTTP service: each request goes to the read-only server,
    or to the server with the write tools when writes are on and the key's role allows,
    so a `read` key is never even shown a write tool. Keys are checked by the request
    middleware before this runs (a 401 without one), as for `/v1`."""

    def __init__(self, read: MCPServer, write: MCPServer | None, authenticator: Any) -> None:
        self.read, self.write, self.authenticator = read, write, authenticator
        # host 0.0.0.0: no DNS-rebinding host check (it only fits a server on localhost);
        # the service's keys guard /mcp instead
        self._apps = {
            "read": read.streamable_http_app(streamable_http_path="/", host="0.0.0.0"),
            "write": write.streamable_http_app(streamable_http_path="/", host="0.0.0.0")
            if write is not None
            else None,
        }

    def session_managers(self) -> list[Any]:
        return [s.session_manager for s in (self.read, self.write) if s is not None]

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        principal = scope.get("state", {}).get("principal")
        writer = principal is not None and principal.may("write")
        app = (
            self._apps["write"]
            if writer and self._apps["write"] is not None
            else self._apps["read"]
        )
        assert app is not None
        await app(scope, receive, send)


def http_access(authenticator: Any) -> AccessOf:
    """Who an HTTP tool call is: its key and `X-Tenant` header, as for the REST routes."""
    from .auth import Forbidden, tenant_for

    def access_of(ctx: Context, role: Role) -> Access:
        headers = {k.lower(): v for k, v in (ctx.headers or {}).items()}
        principal = authenticator.principal(headers)
        if principal is None:
            raise ToolError("a valid API key is required")
        try:
            if not principal.may(role):
                raise Forbidden(f"this key's role is {principal.role}; this tool needs {role}")
            return Access(principal, tenant_for(principal, headers.get("x-tenant"), None, False))
        except ApiError as e:
            raise ToolError(e.message) from e

    return access_of

"""Request and response bodies of the HTTP API (OpenAPI at `/docs`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from rag_splade.context import ContextStyle
from rag_splade.search import DEFAULT_EXPLAIN, Fusion, Mode
from rag_splade.types import MatchKind

JSONValue = str | int | float | bool | None | list[Any] | dict[str, Any]

FILTERS_HELP = (
    "Payload filters, all must hold: `{field: value}` (equals), `{field: [a, b]}` (any of), "
    '`{field: {"gte": 1, "lt": 5}}` (numeric range).'
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SearchOptions(Strict):
    """The options of `rag_splade.SearchOptions`; the library validates them. Counts and
    switches are strict JSON: `true` is no count and `1` no switch (as in the library)."""

    top_k: int = Field(
        5, ge=1, strict=True, description="Hits to return (upper bound: RAG_SPLADE_MAX_TOP_K)."
    )
    mode: Mode = "hybrid"
    fusion: Fusion | None = Field(None, description="Hybrid fusion; default from the settings.")
    rrf_k: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="RRF constant (top item scores 1/k); default from the settings.",
    )
    candidates: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Each retriever's list length before fusion (upper bound: "
        "RAG_SPLADE_MAX_CANDIDATES); default from the settings.",
    )
    weights: tuple[float, float] | None = Field(
        None,
        description=(
            "Qdrant RRF weights (sparse, dense), hybrid + rrf only. A point at rank n of a list "
            "with weight w scores 1 / (n / w + k - 1): a smaller weight gives that list more "
            "say in the order; 0 drops it."
        ),
        examples=[[1.0, 2.0]],
    )
    filters: dict[str, Any] | None = Field(None, description=FILTERS_HELP)
    explain: bool = Field(
        DEFAULT_EXPLAIN, strict=True, description="Attach each hit's term contributions."
    )
    rerank: bool = Field(
        False,
        strict=True,
        description="Reorder the best `rerank_candidates` fused hits with the service's "
        "cross-encoder (RAG_SPLADE_RERANK_MODEL; a 422 when none is configured).",
    )
    rerank_candidates: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="Fused hits the reranker scores, at least `top_k` (upper bound: "
        "RAG_SPLADE_MAX_RERANK_CANDIDATES); default RAG_SPLADE_RERANK_CANDIDATES.",
    )
    offset: int = Field(
        0,
        ge=0,
        strict=True,
        description="Hits to skip before the `top_k` returned (paging; upper bound "
        "RAG_SPLADE_MAX_OFFSET). The order is fixed, so pages do not overlap.",
    )
    min_score: float | None = Field(
        None,
        allow_inf_nan=False,
        description="Drop hits scoring below it: the rerank score when reranking, else the "
        "fused score (a retriever's own in sparse or dense mode).",
    )
    group_by_document: int | None = Field(
        None,
        ge=1,
        strict=True,
        description="At most this many chunks of one document (1: its best chunk).",
    )
    context: bool = Field(
        True,
        strict=True,
        description="Return the LLM-ready `context` block. Its key terms come from the "
        "explanations, which are computed for it even with `explain: false` (the hits then "
        "carry none), so the block is the same either way.",
    )
    context_style: ContextStyle = Field(
        "numbered",
        description="`numbered`: `[n]` headers and `> `-quoted passage lines; `xml`: "
        "`<passage>` elements with escaped text and the source as attributes.",
    )


class SearchRequest(SearchOptions):
    query: str = Field(min_length=1, description="The question, in Japanese or any language.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"query": "富士山の高さは？", "top_k": 3},
                {
                    "query": "車の燃費を向上させる方法は？",
                    "top_k": 5,
                    "mode": "hybrid",
                    "fusion": "rrf",
                    "weights": [1.0, 2.0],
                    "filters": {"source": "faq"},
                    "explain": True,
                },
            ]
        },
    )


class BatchSearchRequest(SearchOptions):
    queries: list[str] = Field(min_length=1, description="Questions, answered in order.")

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{"queries": ["富士山の高さは？", "日本で一番長い川は？"]}]},
    )


class FromLibrary(BaseModel):
    """Built from the library's dataclasses by attribute (`model_validate(obj)`)."""

    model_config = ConfigDict(from_attributes=True)


class TermMatchOut(FromLibrary):
    term: str
    query_weight: float
    document_weight: float
    contribution: float
    spans: list[tuple[int, int]] = Field(description="Character offsets into the hit's text.")
    literal: bool = Field(description="False for an expansion term the passage never says.")
    function_word: bool
    kind: MatchKind = Field(
        description="`whole`: the query and the passage both say the word; `partial`: only "
        "some of the passage word's pieces are shared (not a matched word); `expansion`: a "
        "term the passage never says."
    )
    pieces: list[str] = Field(description="The vocabulary pieces of the passage word.")
    matched_pieces: list[str] = Field(
        description="The pieces shared with the query; their contributions make this one."
    )


class ExplanationOut(FromLibrary):
    terms: list[TermMatchOut] = Field(
        description="The strongest terms first, at most RAG_SPLADE_MAX_TERMS_PER_HIT; with "
        "`omitted_contribution` their contributions sum to sparse_score."
    )
    omitted_terms: int = Field(0, description="Weaker terms left out of `terms`.")
    omitted_contribution: float = Field(
        0.0, description="What the omitted terms contribute to sparse_score."
    )


class HitOut(FromLibrary):
    id: str
    doc_id: str
    chunk_index: int
    text: str
    metadata: dict[str, Any]
    score: float
    sparse_score: float | None
    dense_score: float | None
    sparse_rank: int | None
    dense_rank: int | None
    rerank_score: float | None = Field(
        description="The cross-encoder's score; null unless the search reranked."
    )
    rerank_rank: int | None = Field(
        description="1-based rank the cross-encoder gave; the hits come in this order."
    )
    start: int = Field(description="Offset of the chunk in its document's text.")
    end: int
    explanation: ExplanationOut | None


class QueryTermOut(FromLibrary):
    term: str
    weight: float
    expansion: bool = Field(description="True when the query text does not contain the term.")
    function_word: bool
    pieces: list[str] = Field(description="The word's vocabulary pieces (merged in `term`).")
    spans: list[tuple[int, int]] = Field(
        description="Character offsets into the query (none for an expansion)."
    )


class SearchResponse(BaseModel):
    query: str
    query_terms: list[QueryTermOut] = Field(
        description="The query's strongest SPLADE terms (empty in dense mode without explain)."
    )
    hits: list[HitOut]
    context: str | None = Field(
        description="Numbered passages with sources and key terms, for a prompt (null when "
        "`context: false` was asked)."
    )


class BatchSearchResponse(BaseModel):
    results: list[SearchResponse]


class DocumentIn(Strict):
    id: str = Field(min_length=1, max_length=512)
    text: str
    metadata: dict[str, JSONValue] = Field(default_factory=dict)


class AddDocumentsRequest(Strict):
    documents: list[DocumentIn] = Field(min_length=1)

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "documents": [
                        {
                            "id": "faq-12",
                            "text": "燃費を良くするには、急発進を避け、タイヤの空気圧を保ちます。",
                            "metadata": {"source": "faq"},
                        }
                    ]
                }
            ]
        },
    )


class AddDocumentsResponse(BaseModel):
    documents: int = Field(description="Documents added or replaced.")
    chunks: int = Field(description="Chunks written.")


class ChunkOut(FromLibrary):
    id: str
    chunk_index: int
    text: str
    start: int
    end: int
    metadata: dict[str, Any]


class DocumentOut(BaseModel):
    doc_id: str
    chunks: list[ChunkOut]


class DocumentInfoOut(FromLibrary):
    doc_id: str
    chunks: int = Field(description="Chunks stored for the document.")
    metadata: dict[str, Any]
    complete: bool = Field(
        description="False when a write was cut short: re-add the document to repair it."
    )


class DocumentListResponse(BaseModel):
    documents: list[DocumentInfoOut] = Field(description="In document-id order.")
    total: int = Field(description="Documents matching the filters, on every page.")
    next_after: str | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )


class StatsResponse(BaseModel):
    tenant: str = Field(description="The tenant counted; `*`: every tenant (admin keys).")
    documents: int = Field(description="Documents (every tenant's: tenant and id pairs).")
    chunks: int
    incomplete_documents: int | None = Field(
        description="Documents a cut-short write left partial (null for every tenant)."
    )
    payload_indexes: dict[str, str] = Field(
        description="Payload indexes the store holds, payload path -> type (`tenant`: the "
        "tenant field). qdrant-client's local mode holds none; filters on other fields scan."
    )
    store: str = Field(description="`EdgeStore` (embedded) or `QdrantServerStore`.")
    index_integrity: str | None = Field(
        None,
        description="How the embedded index's files were found when it was opened: "
        "`verified` (new, or every file matched the checksums of its last clean close) or "
        "`not_closed_cleanly` (after a crash: no checksums to compare, the index was read "
        "whole in a child process first; a clean close records them again). Null for a "
        "Qdrant server.",
    )
    sparse_model: str
    sparse_dtype: str | None = Field(
        None, description="What the SPLADE model computes in here (`dtype`; null: remote)."
    )
    dense_model: str
    rerank_model: str | None
    dense_dimension: int
    sparse_vocab_size: int
    fusion: str
    rrf_k: int
    candidates: int
    rerank_candidates: int


class DeleteResponse(BaseModel):
    doc_id: str
    deleted_chunks: int


class ErrorOut(BaseModel):
    error: str = Field(description="A stable code, e.g. invalid_request, unauthorized.")
    message: str = Field(description="What was wrong and what is allowed.")
    request_id: str | None = None
    details: list[dict[str, Any]] | None = None

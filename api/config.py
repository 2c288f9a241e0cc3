"""Service settings: the library's `Settings` plus the limits and knobs of the HTTP service.

Every field reads `RAG_SPLADE_<FIELD>` from the environment, like the library settings.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from rag_splade.search import MAX_TOP_K
from rag_splade.settings import Settings, check_header_key

__all__ = ["ServiceSettings", "check_header_key"]


class ServiceSettings(Settings):
    """The HTTP service's settings: `Settings` plus request limits, micro-batching, faults.

    Example:
        >>> ServiceSettings(max_top_k=50).max_top_k
        50
    """

    # a refused value is not echoed: some of them are secrets (keys)
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    # scoped keys: a file of key hashes with tenants and roles (`rag-splade keys`)
    keys_file: Path | None = Field(
        None,
        description="JSON file of scoped API keys (hashes, tenants, roles), re-read when it "
        "changes; see Tenants and keys. RAG_SPLADE_API_KEY stays one admin key.",
    )

    # the OpenAPI document and its UIs: open by default, behind the key when this is off
    public_docs: bool = Field(
        True,
        description="Serve /docs, /redoc and /openapi.json without a key; false: they need "
        "one, like /v1 (where a key is set).",
    )

    # MCP tools (/mcp and `rag-splade mcp`): read-only unless this is on
    mcp_write_tools: bool = Field(
        False,
        description="Offer the MCP write tools (add_documents, delete_document) to keys "
        "whose role allows writes (stdio: to the local user).",
    )

    # request limits: a request over one gets 413 (size) or 422 (value) naming the limit
    max_request_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest request body (413 above it)."
    )
    max_query_chars: int = Field(1000, ge=1, description="Longest query, in characters.")
    max_top_k: int = Field(
        100, ge=1, le=MAX_TOP_K, description=f"Largest `top_k` a request may ask (<= {MAX_TOP_K})."
    )
    max_candidates: int = Field(
        1000, ge=1, description="Largest `candidates` (each retriever's list) a request may ask."
    )
    max_rerank_candidates: int = Field(
        200,
        ge=1,
        description="Largest `rerank_candidates` (pairs scored per query) a request may ask.",
    )
    max_offset: int = Field(900, ge=0, description="Deepest `offset` (paging) a request may ask.")
    max_hits_per_request: int = Field(
        2000, ge=1, description="Hits one request may ask: queries x (offset + top_k) (413 above)."
    )
    max_terms_per_hit: int = Field(
        100,
        ge=1,
        description="Explanation terms returned per hit, strongest first (the rest summed).",
    )
    max_queries_per_request: int = Field(64, ge=1, description="Queries in one batch search.")
    max_documents_per_request: int = Field(256, ge=1, description="Documents in one add.")
    max_document_chars: int = Field(
        200_000, ge=1, description="Longest document in an add, in characters."
    )

    # micro-batching of query encoding: gather up to `batch_max_size` queries, waiting at
    # most `batch_max_wait_ms` after the first, then one forward pass per encoder
    microbatch: bool = Field(
        True, description="Encode concurrent requests' queries together (one pass per model)."
    )
    batch_max_size: int = Field(32, ge=1, description="Most queries in one micro-batch.")
    batch_max_wait_ms: float = Field(
        2.0, ge=0, description="Longest wait for more queries after the first, in ms."
    )

    # faults: how long clients should wait before retrying when the store is down
    retry_after_seconds: int = Field(
        5, ge=1, description="`Retry-After` sent with a 503 (store down, models loading)."
    )
    store_retry_interval_seconds: float = Field(
        5.0, gt=0, description="Seconds between tries to reach the store at start-up."
    )

    # the TEI-compatible encoding endpoints (/embed, /embed_sparse, /rerank, /tokenize, /info)
    encoders_only: bool = Field(
        False,
        description="Serve the models alone: the TEI-compatible endpoints and health, no "
        "index (`rag-splade serve --encoders-only`); /v1 is not served.",
    )
    tei_max_client_batch_size: int = Field(
        32, ge=1, description="Inputs (or rerank texts) in one TEI-compatible call (413 above)."
    )
    tei_max_concurrent_requests: int = Field(
        512, ge=1, description="TEI-compatible calls in flight at once (429 above)."
    )

    # connections under `rag-splade serve` (handed to uvicorn): a slow or stalled client
    # cannot hold a connection, or the service's shutdown, for ever
    timeout_request_head_seconds: float = Field(
        10.0,
        gt=0,
        description="Seconds a request line and its headers may take to arrive (408 and the "
        "connection closed after).",
    )
    timeout_request_body_seconds: float = Field(
        60.0, gt=0, description="Seconds a request body may take to arrive (408 after)."
    )
    timeout_keep_alive_seconds: int = Field(
        5, ge=1, description="Seconds an idle keep-alive connection stays open (uvicorn's)."
    )
    timeout_graceful_shutdown_seconds: int = Field(
        30, ge=1, description="Seconds requests in flight get to finish at shutdown."
    )
    limit_concurrency: int | None = Field(
        None,
        ge=1,
        description="Connections and requests at once before uvicorn answers 503; unset: no limit.",
    )
    max_header_bytes: int = Field(
        16 * 1024,
        ge=1024,
        description="Largest request line plus headers, in bytes (431 above; h11's limit).",
    )

    cors_origins: str = Field(
        "", description="Comma-separated origins allowed by CORS; empty: CORS off."
    )
    log_json: bool = Field(True, description="Log one JSON line per request.")

    @field_validator("keys_file", mode="before")
    @classmethod
    def _empty_keys_file_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("limit_concurrency", mode="before")
    @classmethod
    def _empty_limit_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("api_key")
    @classmethod
    def _key_fits_a_header(cls, value: SecretStr | None) -> SecretStr | None:
        """An HTTP header carries bytes that clients encode differently once past ASCII
        (Latin-1, UTF-8, refused): such a key would lock out some clients or all."""
        if value is not None:
            check_header_key(value.get_secret_value(), "RAG_SPLADE_API_KEY")
        return value

    @field_validator("cors_origins")
    @classmethod
    def _no_blank_origins(cls, value: str) -> str:
        return ",".join(o.strip() for o in value.split(",") if o.strip())

    @property
    def cors_origin_list(self) -> list[str]:
        return [o for o in self.cors_origins.split(",") if o]

"""Encoders and stores built from `Settings` (the `RAG_SPLADE_*` environment)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rag_splade.encoders.dense import DenseEncoder
from rag_splade.encoders.splade import SpladeEncoder

if TYPE_CHECKING:
    from rag_splade.settings import Settings
    from rag_splade.store.base import HybridStore


def encoders_from_settings(s: Settings) -> tuple[SpladeEncoder, DenseEncoder]:
    """The sparse and dense encoders that `s` names (hub ids or local directories)."""
    sparse = SpladeEncoder(
        s.sparse_model,
        device=s.device,
        dtype=s.dtype,
        query_max_length=s.query_max_length,
        document_max_length=s.document_max_length,
        batch_size=s.batch_size,
        document_top_k=s.document_top_k,
        document_min_weight=s.document_min_weight,
        tokenizer_workers=s.tokenizer_workers,
        backend=s.sparse_backend,
    )
    dense = DenseEncoder(
        s.dense_model,
        device=s.device,
        dtype=s.dtype,
        batch_size=s.batch_size,
        query_prefix=s.query_prefix,
        document_prefix=s.document_prefix,
    )
    return sparse, dense


def store_from_settings(s: Settings) -> HybridStore:
    """A Qdrant server store when `qdrant_url` is set, else the embedded Edge index."""
    from rag_splade.store.edge import EdgeStore
    from rag_splade.store.server import QdrantServerStore

    if s.qdrant_url:
        return QdrantServerStore(
            url=s.qdrant_url,
            api_key=s.qdrant_api_key.get_secret_value() if s.qdrant_api_key else None,
            collection=s.collection,
            shard_number=s.shard_number,
            replication_factor=s.replication_factor,
            timeout=s.qdrant_timeout,
            sparse_datatype=s.sparse_datatype,
        )
    return EdgeStore(s.index_path, sparse_datatype=s.sparse_datatype)

"""Storage: one protocol, two Qdrant backends (embedded Edge, server/cluster)."""

from rag_splade.store.base import (
    ChunkPoint,
    HybridQuery,
    HybridStore,
    Optimizable,
    RankedChunk,
    StoredChunk,
    VectorSpec,
    point_id,
)
from rag_splade.store.edge import EdgeStore
from rag_splade.store.filters import Condition, parse_filters
from rag_splade.store.server import QdrantServerStore

__all__ = [
    "ChunkPoint",
    "Condition",
    "EdgeStore",
    "HybridQuery",
    "HybridStore",
    "Optimizable",
    "QdrantServerStore",
    "RankedChunk",
    "StoredChunk",
    "VectorSpec",
    "parse_filters",
    "point_id",
]

"""The value types every layer shares: sparse vectors, documents, hits, explanations."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

JsonScalar = str | int | float | bool


@dataclass(frozen=True)
class SparseVector:
    """A sparse vector over a model vocabulary: sorted int32 ids and their float32 weights.

    Example:
        >>> v = SparseVector.from_pairs({12: 0.5, 3: 1.25})
        >>> v.indices.tolist(), v.values.tolist()
        ([3, 12], [1.25, 0.5])
    """

    indices: np.ndarray
    values: np.ndarray

    def __post_init__(self) -> None:
        indices = np.asarray(self.indices, dtype=np.int32).reshape(-1)
        values = np.asarray(self.values, dtype=np.float32).reshape(-1)
        if indices.shape != values.shape:
            raise ValueError(
                f"SparseVector needs as many indices as values, got {indices.size} indices "
                f"and {values.size} values"
            )
        if indices.size and indices.min() < 0:
            raise ValueError(f"SparseVector indices must be >= 0, got {int(indices.min())}")
        order = np.argsort(indices, kind="stable")
        indices, values = indices[order], values[order]
        if indices.size > 1 and np.any(indices[1:] == indices[:-1]):
            raise ValueError("SparseVector indices must be unique")
        indices.setflags(write=False)
        values.setflags(write=False)
        object.__setattr__(self, "indices", indices)
        object.__setattr__(self, "values", values)

    @classmethod
    def from_pairs(cls, pairs: Mapping[int, float]) -> SparseVector:
        """Build a vector from an `{id: weight}` mapping."""
        return cls(np.fromiter(pairs.keys(), np.int32), np.fromiter(pairs.values(), np.float32))

    def __len__(self) -> int:
        return int(self.indices.size)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SparseVector):
            return NotImplemented
        return np.array_equal(self.indices, other.indices) and np.array_equal(
            self.values, other.values
        )

    __hash__ = None  # type: ignore[assignment]  # arrays are not hashable

    def as_dict(self) -> dict[int, float]:
        """The vector as `{id: weight}` (ids of the vocabulary, never token strings)."""
        return dict(zip(self.indices.tolist(), self.values.tolist(), strict=True))

    def dot(self, other: SparseVector) -> float:
        """Dot product, the score Qdrant computes for a sparse vector without a modifier."""
        _, mine, theirs = np.intersect1d(
            self.indices, other.indices, assume_unique=True, return_indices=True
        )
        return float(np.dot(self.values[mine].astype(np.float64), other.values[theirs]))

    def top_k(self, k: int) -> SparseVector:
        """Keep the `k` largest weights (document pruning)."""
        if k < 1:
            raise ValueError(f"top_k must be >= 1, got {k}")
        if len(self) <= k:
            return self
        keep = np.argpartition(-self.values, k - 1)[:k]
        return SparseVector(self.indices[keep], self.values[keep])

    def drop_below(self, min_weight: float) -> SparseVector:
        """Keep the weights of at least `min_weight` (document pruning by weight)."""
        if not min_weight > 0:
            raise ValueError(f"min_weight must be > 0, got {min_weight}")
        keep = self.values >= min_weight
        return self if keep.all() else SparseVector(self.indices[keep], self.values[keep])

    def to_qdrant(self) -> Any:
        """The vector as qdrant-client's `models.SparseVector`."""
        from qdrant_client import models

        return models.SparseVector(indices=self.indices.tolist(), values=self.values.tolist())


@dataclass(frozen=True)
class Document:
    """A source document; `HybridIndex.add` chunks it.

    Example:
        >>> Document(id="faq-12", text="燃費を良くするには。", metadata={"source": "faq"}).id
        'faq-12'
    """

    id: str
    text: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id.strip():
            raise ValueError(f"Document.id must be a non-empty string, got {self.id!r}")
        if not isinstance(self.text, str):
            raise TypeError(f"Document.text must be a str, got {type(self.text).__name__}")
        if not isinstance(self.metadata, dict):
            raise TypeError(f"Document.metadata must be a dict, got {type(self.metadata).__name__}")


@dataclass(frozen=True)
class TermMatch:
    """One reason a passage matched: a word of the passage, or an expansion term.

    `contribution` is `query_weight * document_weight` summed over the vocabulary ids
    of the word (`pieces`); `query_weight`/`document_weight` are those of the id that
    contributes most. `spans` are character offsets into the hit's `text`; empty when
    `literal` is False (an expansion term that the text never says).
    """

    term: str
    query_weight: float
    document_weight: float
    contribution: float
    spans: list[tuple[int, int]]
    literal: bool
    function_word: bool = False
    pieces: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class QueryTerm:
    """A weighted term of the query's SPLADE vector; `expansion` when the query never says it."""

    term: str
    weight: float
    expansion: bool
    function_word: bool = False


@dataclass(frozen=True)
class Explanation:
    """Why a hit matched: its term matches, strongest first, summing to `sparse_score`."""

    terms: list[TermMatch]
    sparse_score: float

    def key_terms(self, limit: int = 8) -> list[TermMatch]:
        """The strongest matches that are not function words (particles, auxiliaries, symbols)."""
        return [t for t in self.terms if not t.function_word][:limit]


@dataclass(frozen=True)
class SearchHit:
    """One chunk returned by `HybridIndex.search`.

    `score` is the fused score in hybrid mode (else the single retriever's score);
    `sparse_*`/`dense_*` are each retriever's own score and 1-based rank, None where
    the chunk was not among that retriever's candidates.
    """

    id: str
    doc_id: str
    chunk_index: int
    text: str
    metadata: dict[str, Any]
    score: float
    sparse_score: float | None = None
    dense_score: float | None = None
    sparse_rank: int | None = None
    dense_rank: int | None = None
    start: int = 0
    end: int = 0
    explanation: Explanation | None = None

"""What `HybridIndex` needs of its encoders and reranker, as protocols.

`SpladeEncoder`, `DenseEncoder` and `Reranker` implement them with local models; any other
backend (a remote encoder service, say) is one class that implements the same members.
The index is typed against these, never against a concrete class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from rag_splade.types import SparseVector

__all__ = [
    "DenseEncoderProtocol",
    "RawScorer",
    "RerankerProtocol",
    "Side",
    "SparseEncoderProtocol",
    "TextEmbedder",
    "TokenIdsEncoder",
    "Truncation",
]

Side = Literal["query", "document"]  # which text a SPLADE vector is of: lengths, pruning
# which end of a too-long text is cut: "right" keeps its start; None: cut nothing
Truncation = Literal["right", "left"] | None


@runtime_checkable
class SparseEncoderProtocol(Protocol):
    """A SPLADE encoder: texts to vocabulary-sized sparse vectors, and the vocabulary
    (explanations read terms back from it; chunking counts its tokens)."""

    model_name: str
    document_max_length: int

    @property
    def vocab_size(self) -> int: ...

    @property
    def fingerprint(self) -> str | None:
        """`sha256:<hex>` of the model's config and weights, checked against the index's
        manifest (a fine-tuned model under the same name is told apart); None: unknown,
        not checked."""
        ...

    @property
    def special_tokens(self) -> int:
        """Tokens the model adds to every text ([CLS], [SEP]): a chunk leaves room for them."""
        ...

    @property
    def normalizes_text(self) -> bool: ...

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]: ...

    def count_tokens(self, text: str) -> int: ...

    def terms(self, ids: Sequence[int] | np.ndarray) -> list[str]: ...

    def word_piece_ids(self, word: str) -> list[int]: ...

    def close(self) -> None: ...


@runtime_checkable
class TokenIdsEncoder(Protocol):
    """A sparse encoder that also takes token ids: what the TEI-compatible `/embed_sparse`
    and `/tokenize` endpoints need (`SpladeEncoder`, the remote one)."""

    def max_length(self, side: Side) -> int: ...

    def tokenize(
        self, texts: Sequence[str], side: Side, truncation: Truncation = "right"
    ) -> list[np.ndarray]: ...

    def encode_ids(
        self, ids: Sequence[Sequence[int] | np.ndarray], side: Side
    ) -> list[SparseVector]: ...


@runtime_checkable
class DenseEncoderProtocol(Protocol):
    """A dense encoder: texts to unit-length rows of `dimension` floats.

    It may also have a `fingerprint` property (`sha256:<hex>` of its weights, or None:
    unknown): an index records it and refuses another dense model of the same size. It is
    read with `rag_splade.fingerprint.dense_fingerprint`, so an encoder without it is
    accepted, unchecked."""

    model_name: str

    @property
    def dimension(self) -> int: ...

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray: ...

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray: ...


@runtime_checkable
class RerankerProtocol(Protocol):
    """A cross-encoder: one relevance score per (query, passage) pair, higher is better."""

    model_name: str

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray: ...


@runtime_checkable
class TextEmbedder(Protocol):
    """A dense encoder that also embeds with any prefix and without normalising: what the
    TEI-compatible `/embed` endpoint needs (`DenseEncoder`, the remote one)."""

    query_prefix: str
    document_prefix: str

    @property
    def max_length(self) -> int: ...

    def token_counts(self, texts: Sequence[str], prefix: str = "") -> list[int]: ...

    def embed(
        self, texts: Sequence[str], prefix: str = "", normalize: bool = True
    ) -> np.ndarray: ...


@runtime_checkable
class RawScorer(Protocol):
    """A reranker that also gives its raw logits and pair lengths: what the TEI-compatible
    `/rerank` endpoint needs (`Reranker`, the remote one)."""

    max_length: int

    def pair_lengths(self, pairs: Sequence[tuple[str, str]]) -> list[int]: ...

    def score(self, pairs: Sequence[tuple[str, str]], *, raw: bool = False) -> np.ndarray: ...

"""What `HybridIndex` needs of its encoders and reranker, as protocols.

`SpladeEncoder`, `DenseEncoder` and `Reranker` implement them with local models; any other
backend (a remote encoder service, say) is one class that implements the same members.
The index is typed against these, never against a concrete class.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

from rag_splade.types import SparseVector

__all__ = ["DenseEncoderProtocol", "RerankerProtocol", "SparseEncoderProtocol"]


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
class DenseEncoderProtocol(Protocol):
    """A dense encoder: texts to unit-length rows of `dimension` floats."""

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

"""LlamaIndex embedding classes over the project's encoders.

Async methods run the encoder in a worker thread, so an event loop keeps serving while
a GPU or CPU encodes (LlamaIndex's defaults call the sync method on the loop).
"""

from __future__ import annotations

import asyncio
from typing import Any

from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.base.embeddings.base_sparse import BaseSparseEmbedding, SparseEmbedding
from pydantic import PrivateAttr

from rag_splade.encoders.dense import DenseEncoder
from rag_splade.encoders.splade import SpladeEncoder


class SpladeSparseEmbedding(BaseSparseEmbedding):
    """SPLADE as a LlamaIndex sparse embedding: `{vocabulary id: weight}`.

    Example:
        >>> embed = SpladeSparseEmbedding(SpladeEncoder())  # doctest: +SKIP
        >>> embed.get_query_embedding("燃費を良くするには")  # doctest: +SKIP
        {10523: 2.14, ...}
    """

    _encoder: SpladeEncoder = PrivateAttr()

    def __init__(self, encoder: SpladeEncoder, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", encoder.model_name)
        kwargs.setdefault("embed_batch_size", encoder.batch_size)
        super().__init__(**kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "SpladeSparseEmbedding"

    @property
    def encoder(self) -> SpladeEncoder:
        return self._encoder

    def _get_query_embedding(self, query: str) -> SparseEmbedding:
        return self._encoder.encode_queries([query])[0].as_dict()

    async def _aget_query_embedding(self, query: str) -> SparseEmbedding:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> SparseEmbedding:
        return self._encoder.encode_documents([text])[0].as_dict()

    async def _aget_text_embedding(self, text: str) -> SparseEmbedding:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return [v.as_dict() for v in self._encoder.encode_documents(texts)]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[SparseEmbedding]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)


class DenseEmbedding(BaseEmbedding):
    """A `DenseEncoder` as a LlamaIndex embedding: query calls get the query prefix
    (ruri-v3 `検索クエリ: `), text calls the document prefix (`検索文書: `).

    Example:
        >>> Settings.embed_model = DenseEmbedding(DenseEncoder())  # doctest: +SKIP
    """

    _encoder: DenseEncoder = PrivateAttr()

    def __init__(self, encoder: DenseEncoder, **kwargs: Any) -> None:
        kwargs.setdefault("model_name", encoder.model_name)
        kwargs.setdefault("embed_batch_size", encoder.batch_size)
        super().__init__(**kwargs)
        self._encoder = encoder

    @classmethod
    def class_name(cls) -> str:
        return "RagSpladeDenseEmbedding"

    @property
    def encoder(self) -> DenseEncoder:
        return self._encoder

    def _get_query_embedding(self, query: str) -> list[float]:
        return [float(x) for x in self._encoder.encode_queries([query])[0]]

    async def _aget_query_embedding(self, query: str) -> list[float]:
        return await asyncio.to_thread(self._get_query_embedding, query)

    def _get_text_embedding(self, text: str) -> list[float]:
        return [float(x) for x in self._encoder.encode_documents([text])[0]]

    async def _aget_text_embedding(self, text: str) -> list[float]:
        return await asyncio.to_thread(self._get_text_embedding, text)

    def _get_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return [[float(x) for x in row] for row in self._encoder.encode_documents(texts)]

    async def _aget_text_embeddings(self, texts: list[str]) -> list[list[float]]:
        return await asyncio.to_thread(self._get_text_embeddings, texts)

"""`Reranker`: a cross-encoder that scores (query, passage) pairs, over sentence-transformers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from rag_splade.checks import check_positive_int
from rag_splade.encoders.device import resolve_device, resolve_dtype
from rag_splade.encoders.splade_forward import default_budgets, token_budget_batches
from rag_splade.settings import DEFAULT_RERANK_MODEL

if TYPE_CHECKING:
    from rag_splade.encoders.protocols import RerankerProtocol
    from rag_splade.settings import Settings

__all__ = ["DEFAULT_RERANK_MODEL", "Reranker", "reranker_from_settings"]


class Reranker:
    """Scores (query, passage) pairs with a cross-encoder; a higher score is more relevant.

    A cross-encoder reads the query and the passage together, so it is more accurate than
    either retriever and far slower: it reorders the few dozen fused candidates of a search
    (`HybridIndex.search(..., rerank=True)`), never the whole index.

    Pairs are tokenized once, sorted by length and cut into batches whose padded size
    (`rows x longest row`) stays under `max_batch_tokens`, like the SPLADE encoder's, so a
    mix of short and long passages wastes little padding; scores come back in input order.

    Args:
        model_name_or_path: a sentence-transformers `CrossEncoder` (hub id or local
            directory), by default `hotchpotch/japanese-reranker-cross-encoder-small-v1`.
        device, dtype: as for the encoders (`auto`: CUDA in bf16/fp16, else CPU in fp32).
        max_length: tokens kept of each pair (the passage is cut first).
        max_batch_tokens: padded tokens per forward pass; None: by device.
        batch_size: most pairs per forward pass.

    Example:
        >>> reranker = Reranker()  # doctest: +SKIP
        >>> reranker.score([("富士山の高さは？", "富士山は標高3776メートル。")])  # doctest: +SKIP
        array([0.97], dtype=float32)
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_RERANK_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_length: int = 512,
        max_batch_tokens: int | None = None,
        batch_size: int = 64,
        cache_folder: str | None = None,
    ) -> None:
        from sentence_transformers import CrossEncoder

        check_positive_int("max_length", max_length)
        check_positive_int("max_batch_tokens", max_batch_tokens, optional=True)
        check_positive_int("batch_size", batch_size)
        self.model_name = str(model_name_or_path)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.max_length = max_length
        # a pair runs through the whole model (no vocabulary-wide head): SPLADE's budget fits
        self.max_batch_tokens = max_batch_tokens or default_budgets(self.device)[0] * 4
        self.batch_size = batch_size
        self.model = CrossEncoder(
            self.model_name, device=self.device, max_length=max_length, cache_folder=cache_folder
        )
        if self.model.num_labels != 1:
            raise ValueError(
                f"{self.model_name} has {self.model.num_labels} labels; a reranker gives one "
                "relevance score per pair (num_labels=1)"
            )
        if self.dtype != torch.float32:
            self.model.to(self.dtype)
        self.model.eval()
        self.tokenizer: Any = self.model.tokenizer

    def pair_lengths(self, pairs: Sequence[tuple[str, str]]) -> list[int]:
        """Tokens of each pair as the model reads it, special tokens included, not cut at
        `max_length`."""
        pairs = _check_pairs(pairs)
        if not pairs:
            return []
        queries, passages = [q for q, _ in pairs], [p for _, p in pairs]
        ids = self.tokenizer(queries, passages, truncation=False, verbose=False)
        return [len(row) for row in ids["input_ids"]]

    def score(self, pairs: Sequence[tuple[str, str]], *, raw: bool = False) -> np.ndarray:
        """One float32 relevance score per `(query, passage)` pair, in input order: the
        model's own activation of its logit (sentence-transformers': a sigmoid unless the
        model names another), or the logit itself when `raw`."""
        pairs = _check_pairs(pairs)
        scores = np.zeros(len(pairs), dtype=np.float32)
        if not pairs:
            return scores
        lengths = [
            len(ids)
            for ids in self.tokenizer(
                [q for q, _ in pairs],
                [p for _, p in pairs],
                truncation="longest_first",
                max_length=self.max_length,
            )["input_ids"]
        ]
        for batch in token_budget_batches(lengths, self.max_batch_tokens, self.batch_size):
            out = self.model.predict(
                [pairs[i] for i in batch],
                batch_size=len(batch),
                convert_to_tensor=True,
                show_progress_bar=False,
                activation_fn=torch.nn.Identity() if raw else None,
            )
            scores[batch] = out.float().cpu().numpy().reshape(-1)
        return scores

    def rerank(
        self, query: str, passages: Sequence[str], top_k: int | None = None
    ) -> list[tuple[int, float]]:
        """`(position in passages, score)`, best first; equal scores keep the input order."""
        scores = self.score([(query, p) for p in passages])
        order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
        return [(i, float(scores[i])) for i in order[:top_k]]

    def __repr__(self) -> str:
        return (
            f"Reranker({self.model_name!r}, device={self.device!r}, dtype={self.dtype}, "
            f"max_length={self.max_length})"
        )


def reranker_from_settings(s: Settings) -> RerankerProtocol | None:
    """The reranker `s.rerank_model` names (on the encoder server `s.rerank_url` names, if
    set), or None when it names none."""
    if not s.rerank_model:
        return None
    if s.rerank_url:
        from rag_splade.encoders.remote import RemoteReranker
        from rag_splade.factories import remote_options

        return RemoteReranker(
            s.rerank_url, s.rerank_model, max_length=s.rerank_max_length, **remote_options(s)
        )
    return Reranker(s.rerank_model, device=s.device, dtype=s.dtype, max_length=s.rerank_max_length)


def _check_pairs(pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    if isinstance(pairs, (str, bytes)) or not isinstance(pairs, Sequence):
        raise TypeError(f"pairs must be a list of (query, passage) str pairs, got {pairs!r:.80}")
    checked = []
    for i, pair in enumerate(pairs):
        if (
            not isinstance(pair, (tuple, list))
            or len(pair) != 2
            or not all(isinstance(text, str) for text in pair)
        ):
            raise TypeError(f"pairs[{i}] must be a (query, passage) pair of str, got {pair!r:.80}")
        checked.append((pair[0], pair[1]))
    return checked

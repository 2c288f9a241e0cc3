"""Dense encoder over sentence-transformers, with the model family's query/document prefixes."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from rag_splade.checks import check_positive_int, check_texts
from rag_splade.encoders.device import resolve_device, resolve_dtype
from rag_splade.fingerprint import sentence_transformer_fingerprint
from rag_splade.settings import DEFAULT_DENSE_MODEL

# (name fragment, query prefix, document prefix); the first fragment found in the name wins.
KNOWN_PREFIXES: list[tuple[str, str, str]] = [
    ("ruri-v3", "検索クエリ: ", "検索文書: "),
    ("ruri-", "クエリ: ", "文章: "),
    ("e5", "query: ", "passage: "),
]


def prefixes_for(model_name: str) -> tuple[str, str] | None:
    """The (query, document) prefixes a known model family was trained with."""
    name = model_name.lower()
    for fragment, query, document in KNOWN_PREFIXES:
        if fragment in name:
            return query, document
    return None


class DenseEncoder:
    """L2-normalised float32 sentence embeddings with query/document prefixes.

    Prefixes come from `query_prefix`/`document_prefix` when given, else from the model
    family (ruri-v3: `検索クエリ: `/`検索文書: `, multilingual-e5: `query: `/`passage: `),
    else from the model's own sentence-transformers prompts, else none.

    Example:
        >>> dense = DenseEncoder("cl-nagoya/ruri-v3-130m")  # doctest: +SKIP
        >>> dense.encode_queries(["燃費を良くするには"]).shape  # doctest: +SKIP
        (1, 512)
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_DENSE_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        batch_size: int = 32,
        max_length: int | None = None,
        cache_folder: str | None = None,
    ) -> None:
        from sentence_transformers import SentenceTransformer

        check_positive_int("batch_size", batch_size)
        self.model_name = str(model_name_or_path)
        self.device = resolve_device(device)
        self.dtype = resolve_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.model = SentenceTransformer(
            self.model_name, device=self.device, cache_folder=cache_folder
        )
        if self.dtype != torch.float32:
            self.model.to(self.dtype)
        if max_length is not None:
            self.model.max_seq_length = max_length
        self.model.eval()
        known = prefixes_for(self.model_name)
        prompts = getattr(self.model, "prompts", {}) or {}
        default_query, default_doc = known or (
            prompts.get("query", ""),
            prompts.get("document", prompts.get("passage", "")),
        )
        self.query_prefix = default_query if query_prefix is None else query_prefix
        self.document_prefix = default_doc if document_prefix is None else document_prefix
        self._fingerprint: str | None = None

    @property
    def fingerprint(self) -> str:
        """`sha256:<hex>` of the model's weights and module configuration, computed once
        (it reads every weight): an index records the dense model that built it."""
        found = self._fingerprint
        if found is None:
            found = self._fingerprint = sentence_transformer_fingerprint(self.model)
        return found

    @property
    def dimension(self) -> int:
        model = self.model
        get_dim = getattr(model, "get_embedding_dimension", None)
        get_dim = get_dim or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:  # pragma: no cover - every pooled model reports it
            raise ValueError(f"{self.model_name} does not report an embedding dimension")
        return int(dim)

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """`[n, dimension]` float32, unit-norm rows."""
        return self._encode(check_texts(texts, "texts"), self.query_prefix)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """`[n, dimension]` float32, unit-norm rows."""
        return self._encode(check_texts(texts, "texts"), self.document_prefix)

    @property
    def max_length(self) -> int:
        """Tokens the model reads of a text (its prefix included); the rest is cut."""
        length = self.model.max_seq_length
        if length is None:  # pragma: no cover - sentence-transformers sets it from the model
            raise ValueError(f"{self.model_name} does not report a maximum sequence length")
        return int(length)

    def token_counts(self, texts: Sequence[str], prefix: str = "") -> list[int]:
        """Tokens of `prefix + text` for each text, special tokens included, not truncated
        (what `embed` would read before cutting at `max_length`)."""
        texts = check_texts(texts, "texts")
        if not texts:
            return []
        tokenizer = self.model.tokenizer
        ids = tokenizer([prefix + t for t in texts], truncation=False, verbose=False)["input_ids"]
        return [len(row) for row in ids]

    def embed(self, texts: Sequence[str], prefix: str = "", normalize: bool = True) -> np.ndarray:
        """`[n, dimension]` float32 embeddings of `prefix + text` (the prefix as a
        sentence-transformers prompt), unit-norm rows when `normalize`, else as the model
        pools them. `encode_queries` / `encode_documents` are this with their prefix."""
        return self._encode(check_texts(texts, "texts"), prefix, normalize)

    def _encode(self, texts: list[str], prefix: str, normalize: bool = True) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        out = self.model.encode(
            texts,
            prompt=prefix or None,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        ).float()
        if normalize:  # in float32: a bf16 norm is off by ~1e-3
            out = torch.nn.functional.normalize(out, dim=-1)
        return out.cpu().numpy().astype(np.float32, copy=False)

    def __repr__(self) -> str:
        return (
            f"DenseEncoder({self.model_name!r}, device={self.device!r}, dtype={self.dtype}, "
            f"query_prefix={self.query_prefix!r}, document_prefix={self.document_prefix!r})"
        )

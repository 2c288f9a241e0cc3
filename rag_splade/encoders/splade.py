"""SPLADE sparse encoder over sentence-transformers' `SparseEncoder`."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rag_splade.checks import check_choice, check_positive_int, check_texts
from rag_splade.encoders import device as devices
from rag_splade.encoders import onnx_backend
from rag_splade.encoders.device import resolve_device, resolve_dtype
from rag_splade.encoders.protocols import Side
from rag_splade.encoders.splade_forward import default_budgets, encode_sparse, encode_token_ids
from rag_splade.encoders.splade_model import build_splade_model
from rag_splade.encoders.splade_vocab import SpladeTokenizing
from rag_splade.encoders.tokenizer_pool import TokenizerPool
from rag_splade.fingerprint import model_fingerprint
from rag_splade.settings import DEFAULT_SPARSE_MODEL, SPARSE_BACKENDS
from rag_splade.types import SparseVector

logger = logging.getLogger(__name__)
BACKENDS = SPARSE_BACKENDS  # the names are declared once, in settings
# distinct MeCab words whose WordPiece ids `word_piece_ids` keeps
WORD_PIECE_CACHE = 65536


class SpladeEncoder(SpladeTokenizing):
    """Encodes queries and documents into SPLADE-max sparse vectors.

    The model is any masked LM (hub id or local directory). Pooling is exactly
    `max_t log(1 + relu(logits_t)) * mask_t` (sentence-transformers' `SpladePooling`);
    queries are truncated at `query_max_length` tokens, documents at `document_max_length`.

    Texts are batched by padded tokens (`max_batch_tokens`, at most `batch_size` texts a
    batch) after sorting by length, and the MLM head runs `head_chunk_tokens` tokens at a
    time into a running max, so no `[batch, length, vocab]` logits tensor is held: memory
    stays bounded whatever the batch and text lengths (see `splade_forward`). Both default
    per device (CPU: 2,048 and 2,048; CUDA: 65,536 and 16,384).

    `tokenizer_workers` > 0 tokenizes documents in that many worker processes, a wave ahead
    of the model (see `tokenizer_pool`): on a GPU the Python tokenizer is otherwise the
    bottleneck. Queries are always tokenized in-process.

    `backend="onnx"` (CPU, float32, extra `onnx`) runs the model and pooling as one ONNX
    Runtime graph, exported once and cached (under `cache_folder`, else
    `~/.cache/rag_splade/onnx`); see `onnx_backend`. `backend="onnx-int8"` runs that graph
    with int8 weights: faster on CPUs with int8 instructions, not the same vectors (opt-in;
    its fidelity is in the benchmark docs).

    Example:
        >>> sparse = SpladeEncoder("hotchpotch/japanese-splade-v2")  # doctest: +SKIP
        >>> qv = sparse.encode_queries(["車の燃費を向上させる方法は？"])  # doctest: +SKIP
        >>> sparse.decode(qv[0], top_k=3)  # doctest: +SKIP
        [('燃費', 2.14), ('向上', 1.73), ('車', 1.52)]
    """

    def __init__(
        self,
        model_name_or_path: str = DEFAULT_SPARSE_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        query_max_length: int = 64,
        document_max_length: int = 512,
        batch_size: int = 32,
        document_top_k: int | None = None,
        document_min_weight: float | None = None,
        pooling_chunk_size: int | None = None,
        cache_folder: str | None = None,
        max_batch_tokens: int | None = None,
        head_chunk_tokens: int | None = None,
        tokenizer_workers: int = 0,
        backend: str = "torch",
        fast_tokenizer: bool = True,
    ) -> None:
        workers_ok = isinstance(tokenizer_workers, int) and not isinstance(tokenizer_workers, bool)
        if not workers_ok or tokenizer_workers < 0:
            raise ValueError(f"tokenizer_workers must be an int >= 0, got {tokenizer_workers!r}")
        check_positive_int("query_max_length", query_max_length)
        check_positive_int("document_max_length", document_max_length)
        check_positive_int("batch_size", batch_size)
        check_positive_int("max_batch_tokens", max_batch_tokens, optional=True)
        check_positive_int("head_chunk_tokens", head_chunk_tokens, optional=True)
        check_positive_int("document_top_k", document_top_k, optional=True)
        if document_min_weight is not None and (
            isinstance(document_min_weight, bool)
            or not isinstance(document_min_weight, int | float)
            or not document_min_weight > 0
        ):
            raise ValueError(
                f"document_min_weight must be None or a number > 0, got {document_min_weight!r}"
            )
        check_choice("backend", backend, SPARSE_BACKENDS)
        if not isinstance(fast_tokenizer, bool):
            raise ValueError(f"fast_tokenizer must be True or False, got {fast_tokenizer!r}")
        self.model_name = str(model_name_or_path)
        self.device = resolve_device(device)
        # auto on a CPU with native bf16: bf16, which passed the fidelity gates for
        # documents and queries (see the benchmark docs); the ONNX graph runs float32
        self.dtype = resolve_dtype(dtype, self.device, cpu_bf16=backend == "torch")
        if backend != "torch" and (self.device != "cpu" or self.dtype != torch.float32):
            raise ValueError(
                f'backend="{backend}" runs on the CPU from float32 weights: use device="cpu" '
                f'and dtype "auto" or "float32" (got device {self.device!r}, dtype {self.dtype})'
            )
        self.backend = backend
        self.query_max_length = query_max_length
        self.document_max_length = document_max_length
        self.batch_size = batch_size
        self.document_top_k = document_top_k
        self.document_min_weight = document_min_weight
        auto_batch_tokens, auto_head_tokens = default_budgets(self.device)
        self.max_batch_tokens = max_batch_tokens or auto_batch_tokens
        self.head_chunk_tokens = head_chunk_tokens or auto_head_tokens
        self.model = build_splade_model(
            self.model_name,
            query_max_length=query_max_length,
            document_max_length=document_max_length,
            device=self.device,
            cache_folder=cache_folder,
            pooling_chunk_size=pooling_chunk_size,
        )
        if self.dtype != torch.float32:
            self.model.to(self.dtype)
        if dtype == "auto" and self.device == "cpu":
            native = devices.cpu_native_bf16()
            logger.info(
                "SPLADE %s runs in %s on the CPU (%s); RAG_SPLADE_DTYPE=float32 pins float32",
                self.model_name,
                str(self.dtype).removeprefix("torch."),
                f"native bf16: {native}" if native else "no native bf16 on this CPU",
            )
        self.model.eval()
        hf_model = self.model.transformers_model
        if hf_model is None:  # sentence-transformers found no transformers model inside
            raise ValueError(f"{model_name_or_path!r} holds no transformers MLM to run SPLADE on")
        self._hf_model = hf_model
        # what runs the forward pass: the PyTorch model, or its ONNX export
        self._forward: Any = hf_model
        if backend != "torch":
            onnx_cache = Path(cache_folder) / "rag_splade-onnx" if cache_folder else None
            self._forward = onnx_backend.load(hf_model, onnx_cache, int8=backend == "onnx-int8")
        self.tokenizer_workers = tokenizer_workers
        self._set_tokenizer(self.model.tokenizer, fast_tokenizer)
        self._fingerprint: str | None = None
        # documents are tokenized in worker processes when asked (queries never: latency)
        self._pool = (
            TokenizerPool(self._ids_tokenizer, tokenizer_workers) if tokenizer_workers else None
        )

    @property
    def vocab_size(self) -> int:
        return int(self._hf_model.config.vocab_size)

    @property
    def fingerprint(self) -> str:
        """`sha256:<hex>` of the masked LM's config and weights (`model_fingerprint`),
        computed once (it reads every weight): an index records the model that built it."""
        found = self._fingerprint
        if found is None:
            found = self._fingerprint = model_fingerprint(self._hf_model)
        return found

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """Encode queries (truncated at `query_max_length` tokens)."""
        return self._encode(check_texts(texts, "texts"), self.query_max_length, None)

    def encode_documents(
        self, texts: Sequence[str], top_k: int | None = None
    ) -> list[SparseVector]:
        """Encode passages (truncated at `document_max_length`), pruned when pruning is on:
        weights under `document_min_weight` dropped, then the `top_k` strongest terms kept
        (`top_k`, else the encoder's `document_top_k`)."""
        top_k = top_k if top_k is not None else self.document_top_k
        texts = check_texts(texts, "texts")
        return self._encode(
            texts, self.document_max_length, top_k, self.document_min_weight, self._pool
        )

    def _encode(
        self,
        texts: list[str],
        max_length: int,
        top_k: int | None,
        min_weight: float | None = None,
        pool: TokenizerPool | None = None,
    ) -> list[SparseVector]:
        return encode_sparse(
            self._forward,
            self._ids_tokenizer,
            texts,
            max_length=max_length,
            device=self.device,
            max_batch_tokens=self.max_batch_tokens,
            head_chunk_tokens=self.head_chunk_tokens,
            max_batch_size=self.batch_size,
            top_k=top_k,
            min_weight=min_weight,
            pool=pool,
        )

    def encode_ids(
        self, ids: Sequence[Sequence[int] | np.ndarray], side: Side
    ) -> list[SparseVector]:
        """Encode rows of token ids (special tokens included) as texts of `side` are encoded:
        a document row is pruned like `encode_documents`. The ids must be in the vocabulary
        and a row at most `max_length(side)` long.

        Raises:
            ValueError: a row that is empty, too long or has an id outside the vocabulary.
        """
        rows = self.check_id_rows(ids, side)
        document = side == "document"
        pad = self._ids_tokenizer.pad_token_id
        return encode_token_ids(
            self._forward,
            rows,
            pad_id=pad if pad is not None else 0,
            device=self.device,
            max_batch_tokens=self.max_batch_tokens,
            head_chunk_tokens=self.head_chunk_tokens,
            max_batch_size=self.batch_size,
            top_k=self.document_top_k if document else None,
            min_weight=self.document_min_weight if document else None,
        )

    def decode(self, vector: SparseVector, top_k: int | None = None) -> list[tuple[str, float]]:
        """`(term, weight)` pairs of a vector, strongest first."""
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be None or >= 1, got {top_k}")
        if len(vector) == 0:
            return []
        tensor = torch.sparse_coo_tensor(
            torch.from_numpy(vector.indices.astype(np.int64))[None, :],
            torch.from_numpy(vector.values.copy()),
            size=(self.vocab_size,),
            check_invariants=True,
        )
        # one vector decodes to one list of pairs
        decoded: list[tuple[str, float]] = self.model.decode(tensor, top_k=top_k)
        return [(term, float(w)) for term, w in decoded]

    def close(self) -> None:
        """Stop the tokenizer worker processes, if any (also done at exit)."""
        if self._pool is not None:
            self._pool.close()
            self._pool = None

    def __repr__(self) -> str:
        return (
            f"SpladeEncoder({self.model_name!r}, device={self.device!r}, dtype={self.dtype}, "
            f"query_max_length={self.query_max_length}, "
            f"document_max_length={self.document_max_length})"
        )

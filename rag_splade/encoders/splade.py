"""SPLADE sparse encoder over sentence-transformers' `SparseEncoder`."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rag_splade.checks import check_choice, check_positive_int
from rag_splade.encoders import onnx_backend
from rag_splade.encoders.device import resolve_device, resolve_dtype
from rag_splade.encoders.protocols import Side, Truncation
from rag_splade.encoders.splade_forward import default_budgets, encode_sparse, encode_token_ids
from rag_splade.encoders.splade_model import build_splade_model
from rag_splade.encoders.tokenizer_pool import TokenizerPool, tokenize_in_process
from rag_splade.fingerprint import model_fingerprint
from rag_splade.settings import DEFAULT_SPARSE_MODEL, SPARSE_BACKENDS
from rag_splade.text.fast_tokenizer import fast_tokenizer_for
from rag_splade.types import SparseVector

BACKENDS = SPARSE_BACKENDS  # the names are declared once, in settings
# distinct MeCab words whose WordPiece ids `word_piece_ids` keeps
WORD_PIECE_CACHE = 65536


class SpladeEncoder:
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
        self.dtype = resolve_dtype(dtype, self.device)
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
        self.model.eval()
        self.tokenizer: Any = self.model.tokenizer
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
        # what turns texts into ids: the fast path when the tokenizer is its kind (same ids)
        self.fast_tokenizer = (
            fast_tokenizer_for(self.tokenizer, name=self.model_name) if fast_tokenizer else None
        )
        self._ids_tokenizer: Any = self.fast_tokenizer or self.tokenizer
        self._tokens: np.ndarray | None = None  # id -> token, built on first use
        self._fingerprint: str | None = None
        self._word_pieces: dict[str, tuple[int, ...]] = {}  # word -> its WordPiece ids
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

    @property
    def special_tokens(self) -> int:
        """Tokens the tokenizer adds to every text ([CLS] and [SEP])."""
        return int(self.tokenizer.num_special_tokens_to_add(pair=False))

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """Encode queries (truncated at `query_max_length` tokens)."""
        return self._encode(_check_texts(texts, "texts"), self.query_max_length, None)

    def encode_documents(
        self, texts: Sequence[str], top_k: int | None = None
    ) -> list[SparseVector]:
        """Encode passages (truncated at `document_max_length`), pruned when pruning is on:
        weights under `document_min_weight` dropped, then the `top_k` strongest terms kept
        (`top_k`, else the encoder's `document_top_k`)."""
        top_k = top_k if top_k is not None else self.document_top_k
        texts = _check_texts(texts, "texts")
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

    def max_length(self, side: Side) -> int:
        """Tokens kept of a text of `side` (`query_max_length` or `document_max_length`),
        special tokens included."""
        return self.query_max_length if side == "query" else self.document_max_length

    def tokenize(
        self, texts: Sequence[str], side: Side, truncation: Truncation = "right"
    ) -> list[np.ndarray]:
        """The token ids the model reads for each text of `side` (`[CLS] ... [SEP]`, int32).

        `truncation`: "right" keeps the first `max_length(side)` tokens (what `encode_*`
        do), "left" the last ones, None keeps them all (a row may then be too long for
        `encode_ids`)."""
        texts = _check_texts(texts, "texts")
        check_choice("side", side, ("query", "document"))
        limit = self.max_length(side)
        if truncation == "right":
            return tokenize_in_process(self._ids_tokenizer, texts, limit)
        if truncation not in ("left", None):
            raise ValueError(f'truncation must be "right", "left" or None, got {truncation!r}')
        rows = self._untruncated(texts)
        if truncation == "left":
            keep = max(0, limit - 2)  # room for [CLS] and [SEP]
            rows = [
                row
                if row.size <= limit
                else np.concatenate([row[:1], row[-1 - keep : -1], row[-1:]])
                for row in rows
            ]
        return rows

    def _untruncated(self, texts: list[str]) -> list[np.ndarray]:
        if self.fast_tokenizer is not None:
            return self.fast_tokenizer.encode(texts, None)
        ids = self.tokenizer(
            texts, truncation=False, return_attention_mask=False, return_token_type_ids=False
        )["input_ids"]
        return [np.asarray(row, dtype=np.int32) for row in ids]

    def token_spans(self, text: str) -> list[tuple[int, int | None, int | None, bool]]:
        """Each token of `text`, `[CLS]`/`[SEP]` excluded, as `(id, start, stop, special)`
        with character offsets into `text` (None where a token cannot be placed)."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if self.fast_tokenizer is not None:
            return self.fast_tokenizer.tokens(text)
        tok = self.tokenizer
        specials = set(tok.all_special_ids)
        if getattr(tok, "is_fast", False):
            enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
            return [
                (int(i), int(a), int(b), int(i) in specials)
                for i, (a, b) in zip(enc["input_ids"], enc["offset_mapping"], strict=True)
            ]
        ids = tok(text, add_special_tokens=False)["input_ids"]
        return [(int(i), None, None, int(i) in specials) for i in ids]

    def encode_ids(
        self, ids: Sequence[Sequence[int] | np.ndarray], side: Side
    ) -> list[SparseVector]:
        """Encode rows of token ids (special tokens included) as texts of `side` are encoded:
        a document row is pruned like `encode_documents`. The ids must be in the vocabulary
        and a row at most `max_length(side)` long.

        Raises:
            ValueError: a row that is empty, too long or has an id outside the vocabulary.
        """
        check_choice("side", side, ("query", "document"))
        rows = [np.asarray(row, dtype=np.int64).reshape(-1) for row in ids]
        limit, vocab = self.max_length(side), self.vocab_size
        for i, row in enumerate(rows):
            if row.size == 0:
                raise ValueError(f"ids[{i}] is empty: a row holds at least one token id")
            if row.size > limit:
                raise ValueError(f"ids[{i}] has {row.size} tokens; a {side} holds at most {limit}")
            if row.min() < 0 or row.max() >= vocab:
                bad = int(row[(row < 0) | (row >= vocab)][0])
                raise ValueError(f"ids[{i}] holds {bad}, outside the vocabulary (0..{vocab - 1})")
        document = side == "document"
        pad = self._ids_tokenizer.pad_token_id
        return encode_token_ids(
            self._forward,
            [row.astype(np.int32) for row in rows],
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

    def terms(self, ids: Sequence[int] | np.ndarray) -> list[str]:
        """Vocabulary strings of token ids (ids the tokenizer does not know read as its
        unknown token), looked up in a table built once per encoder."""
        table = self._token_table()
        index = np.asarray(ids, dtype=np.int64).reshape(-1)
        if index.size and (index.min() < 0 or index.max() >= table.size):
            bad = index[(index < 0) | (index >= table.size)][0]
            raise IndexError(f"token id {int(bad)} is outside the vocabulary (0..{table.size - 1})")
        names: list[str] = table[index].tolist()
        return names

    def _token_table(self) -> np.ndarray:
        """`id -> token` for the whole vocabulary (model rows the tokenizer lacks read as its
        unknown token), built the first time it is needed."""
        table = self._tokens
        if table is None:
            tok = self.tokenizer
            size = max(len(tok), self.vocab_size)
            known = tok.convert_ids_to_tokens(list(range(len(tok))))
            unknown = str(tok.unk_token)
            table = np.empty(size, dtype=object)
            table[:] = [unknown if t is None else str(t) for t in known] + [unknown] * (
                size - len(known)
            )
            self._tokens = table
        return table

    @property
    def normalizes_text(self) -> bool:
        """Whether the tokenizer NFKC-normalises text before splitting it (BertJapaneseTokenizer
        with MeCab does), so that explanations segment the text the same way."""
        word_tokenizer = getattr(self.tokenizer, "word_tokenizer", None)
        return bool(getattr(word_tokenizer, "normalize_text", False))

    def count_tokens(self, text: str) -> int:
        """Tokens the model sees for `text`, special tokens excluded (for chunking)."""
        if self.fast_tokenizer is not None:
            return self.fast_tokenizer.count_tokens(text)
        return len(self.tokenizer.tokenize(text))

    def word_piece_ids(self, word: str) -> list[int]:
        """Vocabulary ids the tokenizer gives one MeCab word (its WordPiece pieces), cached
        per encoder (the last `WORD_PIECE_CACHE` distinct words)."""
        cache = self._word_pieces
        ids = cache.get(word)
        if ids is None:
            ids = self._tokenize_word(word)
            if len(cache) >= WORD_PIECE_CACHE:
                # drop the oldest entry (dicts keep insertion order), unless a thread beat us
                with contextlib.suppress(KeyError, RuntimeError, StopIteration):
                    del cache[next(iter(cache))]
            cache[word] = ids
        return list(ids)

    def _tokenize_word(self, word: str) -> tuple[int, ...]:
        tok = self.tokenizer
        subword = getattr(tok, "subword_tokenizer", None)
        if subword is not None and getattr(tok, "do_subword_tokenize", False):
            if getattr(tok, "do_lower_case", False):
                word = word.lower()
            pieces = subword.tokenize(word)
        else:
            pieces = tok.tokenize(word)
        return tuple(int(i) for i in tok.convert_tokens_to_ids(pieces))

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


def _check_texts(texts: Sequence[str], name: str) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of str, not a single str; wrap it: [{name}]")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}")
    return texts

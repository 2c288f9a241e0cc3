"""Tokenizing in worker processes, a wave ahead of the forward pass.

The Japanese SPLADE tokenizer (MeCab word split, then WordPiece) is a slow Python tokenizer
that runs on one core at about 200k tokens/s; a GPU runs the model several times faster, so
on a GPU the tokenizer, not the model, sets the pace. `TokenizerPool` spreads the texts over
worker processes (each with its own copy of the tokenizer) and keeps the next wave of texts
in the workers while the model encodes the current one.

Workers are started with `spawn` (safe next to CUDA, OpenMP and other threads) when the
pool is made, so their start-up is paid once, with the model load, not on the first call.
As with any spawned process, a script must keep its own code under
`if __name__ == "__main__":`, since each worker imports the script's main module.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import weakref
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

from rag_splade.checks import check_positive_int
from rag_splade.text.fast_tokenizer import FastJapaneseTokenizer
from rag_splade.text.mecab import mecab_readable

# Texts per worker in a wave: big enough that a worker's wave of long passages keeps a GPU
# busy while the next wave is tokenized (see the benchmark docs for the figures).
TEXTS_PER_WORKER = 256

TokenIds = list[np.ndarray]  # one int32 row of token ids per text


def tokenize_in_process(tokenizer: Any, texts: Sequence[str], max_length: int) -> TokenIds:
    """Token ids of `texts`, truncated at `max_length`, as int32 rows. `tokenizer` is a
    transformers tokenizer or a `FastJapaneseTokenizer`."""
    if not texts:
        return []
    if isinstance(tokenizer, FastJapaneseTokenizer):
        return tokenizer.encode(texts, max_length)
    ids = tokenizer(
        [mecab_readable(t) for t in texts],  # a Japanese one stops at a NUL otherwise
        truncation=True,
        max_length=max_length,
        return_attention_mask=False,
        return_token_type_ids=False,
    )["input_ids"]
    return [np.asarray(row, dtype=np.int32) for row in ids]


class TokenizerPool:
    """`workers` processes that tokenize with a copy of `tokenizer`.

    Example:
        >>> pool = TokenizerPool(tokenizer, workers=8)  # doctest: +SKIP
        >>> for offset, ids in pool.waves(texts, max_length=512):  # doctest: +SKIP
        ...     encode(ids)  # the next wave is being tokenized meanwhile
    """

    def __init__(
        self, tokenizer: Any, workers: int, texts_per_worker: int = TEXTS_PER_WORKER
    ) -> None:
        check_positive_int("workers", workers)
        check_positive_int("texts_per_worker", texts_per_worker)
        self.workers = workers
        self.texts_per_worker = texts_per_worker
        self._executor = ProcessPoolExecutor(
            workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_load_tokenizer,
            initargs=(pickle.dumps(tokenizer),),
        )
        weakref.finalize(self, self._executor.shutdown, wait=False, cancel_futures=True)
        # start every worker now: one tiny task each, waited for
        try:
            for future in [self._executor.submit(_ping) for _ in range(workers)]:
                future.result()
        except BrokenProcessPool as e:
            self._executor.shutdown(wait=False, cancel_futures=True)
            raise RuntimeError(
                "the tokenizer worker processes failed to start. They are spawned, so a script "
                "that sets tokenizer_workers must run its code under "
                '`if __name__ == "__main__":` (see the traceback above)'
            ) from e

    def waves(self, texts: Sequence[str], max_length: int) -> Iterator[tuple[int, TokenIds]]:
        """`(offset, token ids)` of consecutive waves of `texts`, in order; while the caller
        works on one wave, the workers tokenize the next."""
        size = self.texts_per_worker * self.workers
        starts = range(0, len(texts), size)
        pending: list[tuple[int, list[Future[Any]]]] = []
        for start in starts:
            pending.append((start, self._submit(texts[start : start + size], max_length)))
            if len(pending) == 2:
                yield self._collect(*pending.pop(0))
        for item in pending:
            yield self._collect(*item)

    def _submit(self, texts: Sequence[str], max_length: int) -> list[Future[Any]]:
        piece = -(-len(texts) // self.workers)  # ceil: one piece per worker
        return [
            self._executor.submit(_tokenize, list(texts[i : i + piece]), max_length)
            for i in range(0, len(texts), piece)
        ]

    @staticmethod
    def _collect(start: int, futures: list[Future[Any]]) -> tuple[int, TokenIds]:
        ids: TokenIds = []
        for future in futures:
            flat, lengths = _result(future)
            ids += np.split(flat, np.cumsum(lengths)[:-1]) if len(lengths) else []
        return start, ids

    def close(self) -> None:
        self._executor.shutdown(wait=True, cancel_futures=True)


def _result(future: Future[Any]) -> Any:
    try:
        return future.result()
    except BrokenProcessPool as e:
        raise RuntimeError(
            "a tokenizer worker process died (out of memory?); the texts were not encoded. "
            "Use fewer tokenizer_workers, or 0 to tokenize in this process"
        ) from e


# -- in the worker processes ---------------------------------------------------------------
_TOKENIZER: Any = None


def _load_tokenizer(blob: bytes) -> None:
    global _TOKENIZER
    # the workers are the parallelism: the Rust WordPiece of the fast tokenizer stays on one
    # thread in each, instead of every worker starting a thread per core
    os.environ["TOKENIZERS_PARALLELISM"] = "false"
    _TOKENIZER = pickle.loads(blob)


def _ping() -> bool:
    return _TOKENIZER is not None


def _tokenize(texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
    """One flat int32 array and the row lengths: far cheaper to send back than lists."""
    rows = tokenize_in_process(_TOKENIZER, texts, max_length)
    lengths = np.array([len(r) for r in rows], dtype=np.int64)
    flat = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int32)
    return flat, lengths

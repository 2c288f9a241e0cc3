"""Model work off the event loop, micro-batched across concurrent requests.

Concurrent requests each submit their items; a worker gathers them for at most
`max_wait_ms` after the first arrives (or until `max_batch_size`), then runs the batch in
a thread. While a batch runs, the next one fills, so under load batches grow by themselves.
Two batchers use this: `QueryEncoder` (queries -> vectors, one forward pass per encoder,
sparse and dense at the same time in two threads) and `PairScorer` (rerank pairs ->
cross-encoder scores).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from rag_splade import SparseVector
from rag_splade.encoders.protocols import (
    DenseEncoderProtocol,
    RerankerProtocol,
    SparseEncoderProtocol,
)
from rag_splade.search import QueryVectors, SearchRequest

Item = TypeVar("Item")
Result = TypeVar("Result")
Observer = Callable[[str, float], None]


@dataclass
class _Pending(Generic[Item, Result]):
    item: Item
    future: asyncio.Future[Result]


class MicroBatcher(Generic[Item, Result]):
    """Gathers items of concurrent requests into batches for `_process`.

    Args:
        microbatch: gather concurrent requests; False runs each request's items on their own.
        max_batch_size: most items in one batch.
        max_wait_ms: longest wait for more items after the first.
        threads: threads that run batches (`_process` may run parts of a batch in parallel).
    """

    name = "microbatch"

    def __init__(
        self, *, microbatch: bool, max_batch_size: int, max_wait_ms: float, threads: int
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.microbatch = microbatch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=self.name)
        self._queue: list[_Pending[Item, Result]] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.microbatch and self._worker is None:
            self._worker = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for pending in self._queue:
            if not pending.future.done():
                pending.future.set_exception(RuntimeError("the service is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """The results of `items`, in order, computed in a shared batch."""
        loop = asyncio.get_running_loop()
        pending = [_Pending(item, loop.create_future()) for item in items]
        if not self.microbatch:
            await self._process_batch(pending)
            return [p.future.result() for p in pending]
        if self._worker is None or self._worker.done():
            raise RuntimeError(f"{type(self).__name__}.start() was not awaited, or it stopped")
        self._queue.extend(pending)
        self._arrived.set()
        return list(await asyncio.gather(*(p.future for p in pending)))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            deadline = loop.time() + self.max_wait
            while len(self._queue) < self.max_batch_size:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._arrived.clear()
                try:
                    await asyncio.wait_for(self._arrived.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._queue[: self.max_batch_size]
            del self._queue[: self.max_batch_size]
            if not self._queue:
                self._arrived.clear()
            batch = [p for p in batch if not p.future.done()]  # drop cancelled requests
            if batch:
                await self._process_batch(batch)

    async def _process_batch(self, batch: list[_Pending[Item, Result]]) -> None:
        try:
            results = await self._process([p.item for p in batch])
        except Exception as e:  # every request of the batch gets the error; serving goes on
            for p in batch:
                if not p.future.done():
                    p.future.set_exception(e)
            return
        for p, result in zip(batch, results, strict=True):
            if not p.future.done():
                p.future.set_result(result)

    async def _process(self, items: list[Item]) -> list[Result]:
        raise NotImplementedError

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)


class QueryEncoder(MicroBatcher[tuple[str, bool, bool], QueryVectors]):
    """Encode queries for many concurrent requests.

    Example:
        >>> encoder = QueryEncoder(sparse, dense, max_batch_size=32)  # doctest: +SKIP
        >>> await encoder.start()  # doctest: +SKIP
        >>> [vectors] = await encoder.encode([SearchRequest(query="富士山は？")])  # doctest: +SKIP

    Args:
        on_encode: called with (encoder name, seconds) after every forward pass.
        on_batch: called with the number of queries in every micro-batch.
    """

    name = "rag-splade-encode"

    def __init__(
        self,
        sparse: SparseEncoderProtocol,
        dense: DenseEncoderProtocol,
        *,
        microbatch: bool = True,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        on_encode: Observer | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        # one thread per encoder, so a sparse and a dense pass can run at the same time
        super().__init__(
            microbatch=microbatch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, threads=2
        )
        self.sparse = sparse
        self.dense = dense
        self._on_encode = on_encode
        self._on_batch = on_batch

    async def encode(self, requests: Sequence[SearchRequest]) -> list[QueryVectors]:
        """The query vectors each request needs (`needs_sparse`/`needs_dense`), in order."""
        return await self.submit([(r.query, r.needs_sparse, r.needs_dense) for r in requests])

    async def _process(self, items: list[tuple[str, bool, bool]]) -> list[QueryVectors]:
        if self._on_batch is not None:
            self._on_batch(len(items))
        want_sparse = [i for i, (_, sparse, _) in enumerate(items) if sparse]
        want_dense = [i for i, (_, _, dense) in enumerate(items) if dense]
        jobs: list[asyncio.Future[Any]] = []
        for which, wanted in (("sparse", want_sparse), ("dense", want_dense)):
            if wanted:
                jobs.append(self._in_thread(self._timed, which, [items[i][0] for i in wanted]))
        results = list(await asyncio.gather(*jobs))
        sparse_of: dict[int, SparseVector] = {}
        dense_of: dict[int, np.ndarray] = {}
        if want_sparse:
            sparse_of = dict(zip(want_sparse, results.pop(0), strict=True))
        if want_dense:
            dense_of = dict(zip(want_dense, results.pop(0), strict=True))
        return [QueryVectors(sparse_of.get(i), dense_of.get(i)) for i in range(len(items))]

    def _timed(self, which: str, texts: list[str]) -> list[Any]:
        start = time.perf_counter()
        encoder = self.sparse if which == "sparse" else self.dense
        vectors = list(encoder.encode_queries(texts))
        if self._on_encode is not None:
            self._on_encode(which, time.perf_counter() - start)
        return vectors


class PairScorer(MicroBatcher[list[tuple[str, str]], np.ndarray]):
    """Score the rerank pairs of many concurrent requests: each request submits its list of
    (query, passage) pairs, and a batch of requests goes through the reranker together.

    Args:
        on_score: called with the seconds of every reranker pass.
    """

    name = "rag-splade-rerank"

    def __init__(
        self,
        reranker: RerankerProtocol,
        *,
        microbatch: bool = True,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        on_score: Callable[[float], None] | None = None,
    ) -> None:
        super().__init__(
            microbatch=microbatch, max_batch_size=max_batch_size, max_wait_ms=max_wait_ms, threads=1
        )
        self.reranker = reranker
        self._on_score = on_score

    async def score(self, pair_lists: Sequence[list[tuple[str, str]]]) -> list[np.ndarray]:
        """The scores of each list of pairs, in order."""
        return await self.submit(list(pair_lists))

    async def _process(self, items: list[list[tuple[str, str]]]) -> list[np.ndarray]:
        pairs = [pair for pairs in items for pair in pairs]
        scores = await self._in_thread(self._timed, pairs)
        out, start = [], 0
        for pairs in items:
            out.append(scores[start : start + len(pairs)])
            start += len(pairs)
        return out

    def _timed(self, pairs: list[tuple[str, str]]) -> np.ndarray:
        start = time.perf_counter()
        scores = self.reranker.score(pairs)
        if self._on_score is not None:
            self._on_score(time.perf_counter() - start)
        return scores

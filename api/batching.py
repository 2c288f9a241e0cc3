"""Query encoding off the event loop, micro-batched across concurrent requests.

Concurrent requests each submit their queries; a worker gathers them for at most
`max_wait_ms` after the first arrives (or until `max_batch_size`), then runs one forward
pass per encoder, sparse and dense at the same time in two threads. While a batch runs,
the next one fills, so under load batches grow by themselves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from rag_splade import DenseEncoder, SparseVector, SpladeEncoder
from rag_splade.search import QueryVectors, SearchRequest


@dataclass
class _Pending:
    text: str
    sparse: bool
    dense: bool
    future: asyncio.Future[QueryVectors]


Observer = Callable[[str, float], None]


class QueryEncoder:
    """Encode queries for many concurrent requests.

    Example:
        >>> encoder = QueryEncoder(sparse, dense, max_batch_size=32)  # doctest: +SKIP
        >>> await encoder.start()  # doctest: +SKIP
        >>> [vectors] = await encoder.encode([SearchRequest(query="富士山は？")])  # doctest: +SKIP

    Args:
        microbatch: gather concurrent requests; False encodes each request on its own.
        on_encode: called with (encoder name, seconds) after every forward pass.
        on_batch: called with the number of queries in every micro-batch.
    """

    def __init__(
        self,
        sparse: SpladeEncoder,
        dense: DenseEncoder,
        *,
        microbatch: bool = True,
        max_batch_size: int = 32,
        max_wait_ms: float = 2.0,
        on_encode: Observer | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_wait_ms < 0:
            raise ValueError(f"max_wait_ms must be >= 0, got {max_wait_ms}")
        self.sparse = sparse
        self.dense = dense
        self.microbatch = microbatch
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait_ms / 1000
        self._on_encode = on_encode
        self._on_batch = on_batch
        # One thread per encoder, so a sparse and a dense pass can run at the same time.
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="rag-splade-encode")
        self._queue: list[_Pending] = []
        self._arrived = asyncio.Event()
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self.microbatch and self._worker is None:
            self._worker = asyncio.create_task(self._run(), name="rag-splade-microbatch")

    async def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
            self._worker = None
        for item in self._queue:
            if not item.future.done():
                item.future.set_exception(RuntimeError("the service is shutting down"))
        self._queue.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def encode(self, requests: Sequence[SearchRequest]) -> list[QueryVectors]:
        """The query vectors each request needs (`needs_sparse`/`needs_dense`), in order."""
        loop = asyncio.get_running_loop()
        items = [
            _Pending(r.query, r.needs_sparse, r.needs_dense, loop.create_future()) for r in requests
        ]
        if not self.microbatch:
            await self._encode_batch(items)
            return [i.future.result() for i in items]
        if self._worker is None or self._worker.done():
            raise RuntimeError("QueryEncoder.start() was not awaited, or the worker stopped")
        self._queue.extend(items)
        self._arrived.set()
        return list(await asyncio.gather(*(i.future for i in items)))

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
            batch = [i for i in batch if not i.future.done()]  # drop cancelled requests
            try:
                if batch:
                    await self._encode_batch(batch)
            except Exception as e:  # the batch fails, the worker goes on serving
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(e)

    async def _encode_batch(self, batch: list[_Pending]) -> None:
        if self._on_batch is not None:
            self._on_batch(len(batch))
        loop = asyncio.get_running_loop()
        want_sparse = [i for i in batch if i.sparse]
        want_dense = [i for i in batch if i.dense]
        jobs: list[asyncio.Future[Any]] = []
        if want_sparse:
            texts = [i.text for i in want_sparse]
            jobs.append(loop.run_in_executor(self._executor, self._timed, "sparse", texts))
        if want_dense:
            texts = [i.text for i in want_dense]
            jobs.append(loop.run_in_executor(self._executor, self._timed, "dense", texts))
        try:
            results = await asyncio.gather(*jobs)
        except Exception as e:  # every request of the batch gets the error
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(e)
            return
        sparse_of: dict[int, SparseVector] = {}
        dense_of: dict[int, np.ndarray] = {}
        if want_sparse:
            sparse_of = {id(i): v for i, v in zip(want_sparse, results.pop(0), strict=True)}
        if want_dense:
            dense_of = {id(i): v for i, v in zip(want_dense, results.pop(0), strict=True)}
        for item in batch:
            if not item.future.done():
                item.future.set_result(
                    QueryVectors(sparse_of.get(id(item)), dense_of.get(id(item)))
                )

    def _timed(self, which: str, texts: list[str]) -> list[Any]:
        start = time.perf_counter()
        encoder = self.sparse if which == "sparse" else self.dense
        vectors = list(encoder.encode_queries(texts))
        if self._on_encode is not None:
            self._on_encode(which, time.perf_counter() - start)
        return vectors

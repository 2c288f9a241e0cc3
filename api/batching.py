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
from typing import Any, Generic, TypeVar, cast

import numpy as np

from rag_splade import SparseVector
from rag_splade.encoders.protocols import (
    DenseEncoderProtocol,
    RawScorer,
    RerankerProtocol,
    Side,
    SparseEncoderProtocol,
    TextEmbedder,
    TokenIdsEncoder,
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


@dataclass(frozen=True)
class SparseIds:
    """A TEI `/embed_sparse` row: token ids (special tokens included) of one side."""

    ids: np.ndarray
    side: Side


@dataclass(frozen=True)
class DenseText:
    """A TEI `/embed` text: which prefix (`prompt`) goes before it, and whether its row is
    normalised."""

    text: str
    prompt: Side | None
    normalize: bool


EncodeItem = tuple[str, bool, bool] | SparseIds | DenseText
EncodeResult = QueryVectors | SparseVector | np.ndarray


class QueryEncoder(MicroBatcher[EncodeItem, EncodeResult]):
    """Encode queries for many concurrent requests, and the TEI-compatible embed calls with
    them: search queries and `/embed_sparse` rows of the same side share one SPLADE pass,
    search queries and `/embed` texts with the same prefix one dense pass.

    Example:
        >>> encoder = QueryEncoder(sparse, dense, max_batch_size=32)  # doctest: +SKIP
        >>> await encoder.start()  # doctest: +SKIP
        >>> [vectors] = await encoder.encode([SearchRequest(query="富士山は？")])  # doctest: +SKIP

    Args:
        on_encode: called with (encoder name, seconds) after every forward pass.
        on_batch: called with the number of items in every micro-batch.
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
        items = [(r.query, r.needs_sparse, r.needs_dense) for r in requests]
        return cast(list[QueryVectors], await self.submit(items))

    async def embed_sparse(self, rows: Sequence[np.ndarray], side: Side) -> list[SparseVector]:
        """SPLADE vectors of token-id rows (the sparse encoder must take ids)."""
        items = [SparseIds(row, side) for row in rows]
        return cast(list[SparseVector], await self.submit(items))

    async def embed_dense(
        self, texts: Sequence[str], prompt: Side | None, normalize: bool
    ) -> list[np.ndarray]:
        """Dense rows of texts, with the query or document prefix or none."""
        items = [DenseText(t, prompt, normalize) for t in texts]
        return cast(list[np.ndarray], await self.submit(items))

    async def _process(self, items: list[EncodeItem]) -> list[EncodeResult]:
        if self._on_batch is not None:
            self._on_batch(len(items))
        sparse: dict[Side, list[int]] = {}  # side -> positions
        dense: dict[tuple[Side | None, bool], list[int]] = {}  # (prompt, normalize) -> positions
        for i, item in enumerate(items):
            if isinstance(item, SparseIds):
                sparse.setdefault(item.side, []).append(i)
            elif isinstance(item, DenseText):
                dense.setdefault((item.prompt, item.normalize), []).append(i)
            else:
                if item[1]:
                    sparse.setdefault("query", []).append(i)
                if item[2]:
                    dense.setdefault(("query", True), []).append(i)
        jobs: list[asyncio.Future[Any]] = []
        if sparse:
            jobs.append(self._in_thread(self._sparse_lanes, items, sparse))
        if dense:
            jobs.append(self._in_thread(self._dense_lanes, items, dense))
        vectors: dict[tuple[str, int], Any] = {}
        for part in await asyncio.gather(*jobs):
            vectors.update(part)
        out: list[EncodeResult] = []
        for i, item in enumerate(items):
            if isinstance(item, SparseIds):
                out.append(vectors["sparse", i])
            elif isinstance(item, DenseText):
                out.append(vectors["dense", i])
            else:
                out.append(QueryVectors(vectors.get(("sparse", i)), vectors.get(("dense", i))))
        return out

    def _sparse_lanes(
        self, items: list[EncodeItem], lanes: dict[Side, list[int]]
    ) -> dict[tuple[str, int], Any]:
        out: dict[tuple[str, int], Any] = {}
        for side, positions in lanes.items():
            start = time.perf_counter()
            rows = [items[i] for i in positions]
            if all(isinstance(r, tuple) for r in rows):  # search queries only
                vectors = self.sparse.encode_queries(
                    [cast(tuple[str, bool, bool], r)[0] for r in rows]
                )
            else:
                encoder = self.sparse
                if not isinstance(encoder, TokenIdsEncoder):
                    raise TypeError(f"{type(encoder).__name__} does not encode token ids")
                texts = [r[0] for r in rows if isinstance(r, tuple)]
                tokenized = iter(encoder.tokenize(texts, "query") if texts else [])
                ids = [r.ids if isinstance(r, SparseIds) else next(tokenized) for r in rows]
                vectors = encoder.encode_ids(ids, side)
            out.update((("sparse", i), v) for i, v in zip(positions, vectors, strict=True))
            if self._on_encode is not None:
                self._on_encode("sparse", time.perf_counter() - start)
        return out

    def _dense_lanes(
        self, items: list[EncodeItem], lanes: dict[tuple[Side | None, bool], list[int]]
    ) -> dict[tuple[str, int], Any]:
        out: dict[tuple[str, int], Any] = {}
        encoder = self.dense
        for (prompt, normalize), positions in lanes.items():
            start = time.perf_counter()
            texts = [_text_of(items[i]) for i in positions]
            rows: Any
            if prompt == "query" and normalize:
                rows = encoder.encode_queries(texts)
            elif prompt == "document" and normalize:
                rows = encoder.encode_documents(texts)
            else:
                if not isinstance(encoder, TextEmbedder):
                    raise TypeError(
                        f"{type(encoder).__name__} has no embed(texts, prefix, normalize)"
                    )
                prefix = {"query": encoder.query_prefix, "document": encoder.document_prefix}
                rows = encoder.embed(texts, prefix.get(prompt or "", ""), normalize)
            out.update((("dense", i), row) for i, row in zip(positions, rows, strict=True))
            if self._on_encode is not None:
                self._on_encode("dense", time.perf_counter() - start)
        return out


def _text_of(item: EncodeItem) -> str:
    return item.text if isinstance(item, DenseText) else cast(tuple[str, bool, bool], item)[0]


class PairScorer(MicroBatcher[tuple[list[tuple[str, str]], bool], np.ndarray]):
    """Score the rerank pairs of many concurrent requests: each request submits its list of
    (query, passage) pairs, and a batch of requests goes through the reranker together
    (search's reranking and the TEI-compatible `/rerank` alike).

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

    async def score(
        self, pair_lists: Sequence[list[tuple[str, str]]], *, raw: bool = False
    ) -> list[np.ndarray]:
        """The scores of each list of pairs, in order; `raw`: the logits, no activation."""
        return await self.submit([(pairs, raw) for pairs in pair_lists])

    async def _process(self, items: list[tuple[list[tuple[str, str]], bool]]) -> list[np.ndarray]:
        out: list[np.ndarray | None] = [None] * len(items)
        for raw in (False, True):
            group = [i for i, (_, r) in enumerate(items) if r is raw]
            if not group:
                continue
            pairs = [pair for i in group for pair in items[i][0]]
            scores = await self._in_thread(self._timed, pairs, raw)
            start = 0
            for i in group:
                n = len(items[i][0])
                out[i] = scores[start : start + n]
                start += n
        return cast(list[np.ndarray], out)

    def _timed(self, pairs: list[tuple[str, str]], raw: bool) -> np.ndarray:
        start = time.perf_counter()
        if raw:
            scorer = self.reranker
            if not isinstance(scorer, RawScorer):
                raise TypeError(f"{type(scorer).__name__} gives no raw scores")
            scores = scorer.score(pairs, raw=True)
        else:
            scores = self.reranker.score(pairs)
        if self._on_score is not None:
            self._on_score(time.perf_counter() - start)
        return scores

"""What the service holds while it runs: the models, the index, and whether it is ready.

Models load once, in the background, so `/healthz` answers while they load. The store is
opened after them; while it cannot be reached the service stays up, answers 503 with
`Retry-After`, and keeps trying, so it recovers by itself when Qdrant comes back.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Literal, TypeVar

from rag_splade import HybridIndex
from rag_splade.encoders.protocols import (
    DenseEncoderProtocol,
    RerankerProtocol,
    SparseEncoderProtocol,
)
from rag_splade.encoders.reranker import reranker_from_settings
from rag_splade.factories import encoders_from_settings
from rag_splade.store.edge import DiskFullError

from .batching import PairScorer, QueryEncoder
from .config import ServiceSettings
from .errors import InsufficientStorage, ServiceUnavailable
from .faults import is_index_in_use, is_store_outage
from .observability import Metrics

T = TypeVar("T")
State = Literal["loading", "store_unavailable", "ready", "failed", "stopped"]


class Runtime:
    def __init__(
        self,
        settings: ServiceSettings,
        metrics: Metrics,
        logger: logging.Logger,
        *,
        index: HybridIndex | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.logger = logger
        self.state: State = "loading"
        self.detail = "loading the models"
        self.index: HybridIndex | None = index
        self.encoder: QueryEncoder | None = None
        self.scorer: PairScorer | None = None  # None: no reranker configured
        self._loader: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        if self.index is not None:
            await self._load()  # nothing to load: ready as soon as the app starts
        else:
            self._loader = asyncio.create_task(self._load(), name="rag-splade-load")

    async def stop(self) -> None:
        if self._loader is not None:
            self._loader.cancel()
            await asyncio.gather(self._loader, return_exceptions=True)
        if self.encoder is not None:
            await self.encoder.close()
        if self.scorer is not None:
            await self.scorer.close()
        if self.index is not None:
            await asyncio.to_thread(self.index.close)
        elif self.encoder is not None:  # encoders only: no index closes the sparse encoder
            await asyncio.to_thread(self.encoder.sparse.close)
        self.state, self.detail = "stopped", "the service is shutting down"
        self.metrics.ready.set(0)

    async def _load(self) -> None:
        s = self.settings
        encoders: tuple[SparseEncoderProtocol, DenseEncoderProtocol]
        reranker: RerankerProtocol | None
        try:
            if self.index is None:
                encoders = await asyncio.to_thread(encoders_from_settings, s)
                if s.rerank_model:
                    self.detail = "loading the reranker"
                reranker = await asyncio.to_thread(reranker_from_settings, s)
                if not s.encoders_only:
                    self.index = await self._open_store(encoders, reranker)
            else:
                encoders, reranker = (self.index.sparse, self.index.dense), self.index.reranker
            if reranker is not None:
                self.scorer = PairScorer(
                    reranker,
                    microbatch=s.microbatch,
                    max_batch_size=s.batch_max_size,
                    max_wait_ms=s.batch_max_wait_ms,
                    on_score=self.metrics.rerank.observe,
                )
                await self.scorer.start()
            self.encoder = QueryEncoder(
                *encoders,
                microbatch=s.microbatch,
                max_batch_size=s.batch_max_size,
                max_wait_ms=s.batch_max_wait_ms,
                on_encode=lambda name, secs: self.metrics.encode.labels(name).observe(secs),
                on_batch=self.metrics.batch_size.observe,
            )
            await self.encoder.start()
        except asyncio.CancelledError:
            raise
        except BaseException as e:  # BaseException: pyo3's PanicException from a damaged index
            if isinstance(e, (KeyboardInterrupt, SystemExit)):
                raise
            # the reason goes to the log; /readyz is unauthenticated and shows no paths
            self.state = "failed"
            self.detail = f"start-up failed ({type(e).__name__}); the server log has the reason"
            self.logger.exception("start-up failed")
            return
        self.state, self.detail = "ready", "ready"
        self.metrics.ready.set(1)
        self.logger.info("ready: %r", self.index or self.encoder.sparse)

    async def _open_store(
        self,
        encoders: tuple[SparseEncoderProtocol, DenseEncoderProtocol],
        reranker: RerankerProtocol | None,
    ) -> HybridIndex:
        while True:
            try:
                return await asyncio.to_thread(
                    lambda: HybridIndex.from_settings(
                        self.settings, encoders=encoders, reranker=reranker, load_reranker=False
                    )
                )
            except Exception as e:
                if is_index_in_use(e):  # another process holds the Edge index: wait for it
                    self.state = "store_unavailable"
                    self.detail = "the index is open in another process; retrying"
                    self.logger.warning("index in use by another process at start-up: %s", e)
                elif is_store_outage(e):
                    self.state = "store_unavailable"
                    self.detail = (
                        f"the Qdrant store cannot be reached ({type(e).__name__}); retrying"
                    )
                    self.logger.warning("store unreachable at start-up: %s", e)
                else:
                    raise
                await asyncio.sleep(self.settings.store_retry_interval_seconds)

    async def swap_index(self, replace: Callable[[], T]) -> T:
        """Close the store, run `replace` (which swaps the index's files), reopen the store.

        New requests get a 503 meanwhile; the store's lock lets the operations already in
        it finish before it closes. If the store cannot be reopened the service reports
        `failed` with the reason."""
        index = self.index
        if index is None:
            raise ServiceUnavailable(
                f"not ready: {self.detail}", retry_after=self.settings.retry_after_seconds
            )
        self.state, self.detail = "loading", "restoring a snapshot"
        self.metrics.ready.set(0)
        try:
            await asyncio.to_thread(index.store.close)
            try:
                return await asyncio.to_thread(replace)
            finally:  # a refused replace left the old files: they reopen as they were
                try:
                    await asyncio.to_thread(index.store.open, index.spec)
                except Exception as e:
                    self.state = "failed"
                    self.detail = f"the index did not reopen: {type(e).__name__}"
                    self.logger.exception("reopening the index after a restore failed")
                    raise
        finally:
            if self.state == "loading":
                self.state, self.detail = "ready", "ready"
                self.metrics.ready.set(1)

    # -- use -------------------------------------------------------------------------------
    def ready(self) -> tuple[HybridIndex, QueryEncoder]:
        """The index and encoder, or `ServiceUnavailable` saying why not yet."""
        if self.state != "ready" or self.index is None or self.encoder is None:
            retry = 0 if self.state == "failed" else self.settings.retry_after_seconds
            raise ServiceUnavailable(f"not ready: {self.detail}", retry_after=retry)
        return self.index, self.encoder

    def encoding(self) -> QueryEncoder:
        """The encoders' batcher (every mode, `encoders_only` too), or `ServiceUnavailable`."""
        if self.state != "ready" or self.encoder is None:
            retry = 0 if self.state == "failed" else self.settings.retry_after_seconds
            raise ServiceUnavailable(f"not ready: {self.detail}", retry_after=retry)
        return self.encoder

    async def store_call(self, operation: str, fn: Callable[[], T], failure: str = "") -> T:
        """Run a store operation in a thread, timed; an outage becomes a 503."""
        start = time.perf_counter()
        try:
            return await asyncio.to_thread(fn)
        except DiskFullError as e:
            self.logger.error("disk full during %s: %s", operation, e)
            raise InsufficientStorage(
                "the index's disk is full: nothing of this request was written; retry once "
                "space is freed"
            ) from e
        except Exception as e:
            if not is_store_outage(e):
                raise
            self.metrics.store_unavailable.inc()
            self.logger.warning("store unreachable during %s: %s", operation, e)
            raise ServiceUnavailable(
                f"the Qdrant store cannot be reached ({type(e).__name__}){failure}; retry in "
                f"{self.settings.retry_after_seconds} s",
                retry_after=self.settings.retry_after_seconds,
                error="store_unavailable",
            ) from e
        finally:
            self.metrics.store.labels(operation).observe(time.perf_counter() - start)

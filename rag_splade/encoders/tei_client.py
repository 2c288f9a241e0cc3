"""HTTP transport to a TEI-compatible encoder server: batches, a concurrency limit,
timeouts, retries with backoff, and errors that name the URL.

A rag_splade encoder server (`rag-splade serve --encoders-only`) and Text Embeddings
Inference speak the same API; `RemoteEndpoint` talks to either.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import httpx

from rag_splade.errors import RemoteEncoderError, RemoteModelMismatchError
from rag_splade.settings import check_header_key

T = TypeVar("T")
RETRY_STATUS = frozenset({429, 503})  # overloaded, or not ready yet: worth another try
# failures before the server took the call (refused, no free connection, a kept-alive
# connection it had closed): worth another try. A call dropped or unanswered after it was
# sent is not sent again: the server may be at it still, or the call may be what broke it.
NOT_TAKEN = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.RemoteProtocolError)
BACKOFF_SECONDS = 0.5  # first wait; doubled per try, capped at MAX_BACKOFF_SECONDS
MAX_BACKOFF_SECONDS = 8.0


class RemoteEndpoint:
    """One encoder server: `post(path, body)` and `get(path)` with retries, and
    `map_batches` to send many bodies with at most `concurrency` in flight.

    Args:
        url: the server's base URL (`http://encoder:8000`).
        setting: the setting that named the URL, for error messages.
        api_key: sent as `Authorization: Bearer <key>`.
        timeout: seconds before one call fails (connecting, then reading the answer).
        retries: tries after the first on a 429, a 503, a connection refused or timed out
            while connecting, or a kept-alive connection the server had closed; a call the
            server took and then dropped or did not answer in `timeout` is not sent again.
        concurrency: calls in flight at once from this process.
        transport: httpx's transport (a proxy, a mock); default: plain TCP.
    """

    def __init__(
        self,
        url: str,
        *,
        setting: str,
        api_key: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        concurrency: int = 4,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if retries < 0 or concurrency < 1 or not timeout > 0:
            raise ValueError(
                f"retries must be >= 0, concurrency >= 1 and timeout > 0; got {retries}, "
                f"{concurrency}, {timeout}"
            )
        if api_key:
            check_header_key(api_key, "api_key")  # httpx would refuse it at the first call
        try:
            parsed = httpx.URL(url)
        except (httpx.InvalidURL, TypeError) as e:
            raise ValueError(f"{setting} {url!r:.200} is not a URL: {e}") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ValueError(
                f"{setting} must be an http:// or https:// URL with a host, got {url!r:.200}"
            )
        self.url = url.rstrip("/")
        self.setting = setting
        self.timeout = timeout
        self.retries = retries
        self.concurrency = concurrency
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(
            base_url=self.url,
            headers=headers,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            transport=transport,
        )
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def get(self, path: str) -> Any:
        return self._call("GET", path, None)

    def post(self, path: str, body: dict[str, Any]) -> Any:
        return self._call("POST", path, body)

    def map_batches(self, fn: Callable[[T], Any], batches: Sequence[T]) -> list[Any]:
        """`fn(batch)` for every batch, at most `concurrency` at once, results in order."""
        if len(batches) <= 1 or self.concurrency == 1:
            return [fn(b) for b in batches]
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    self.concurrency, thread_name_prefix="rag-splade-tei"
                )
            pool = self._pool
        return list(pool.map(fn, batches))

    @contextlib.contextmanager
    def reading(self, path: str) -> Iterator[None]:
        """Reading `path`'s answer: a body of the wrong shape (a missing key, a wrong type,
        ragged rows) is a `RemoteEncoderError` naming the server, not a raw exception."""
        try:
            yield
        except (RemoteEncoderError, RemoteModelMismatchError):
            raise
        except (KeyError, IndexError, TypeError, ValueError, AttributeError) as e:
            raise self.malformed(path, f"{type(e).__name__}: {e}") from e

    def malformed(self, path: str, detail: str) -> RemoteEncoderError:
        return RemoteEncoderError(
            f"the encoder server at {self.url}{path} ({self.setting}) answered a body this "
            f"client cannot read ({detail}); is it a TEI-compatible server of the right version?"
        )

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        self._client.close()

    def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Any:
        where = f"{self.url}{path} ({self.setting})"
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._client.request(method, path, json=body)
            except (httpx.ReadTimeout, httpx.WriteTimeout) as e:
                # the server took the call and is still at it: sending it again would only
                # pile more work on a server that is already too slow
                raise RemoteEncoderError(
                    f"the encoder server at {where} did not answer within "
                    f"{self.timeout:g} s (RAG_SPLADE_ENCODER_TIMEOUT): {type(e).__name__}; "
                    "give it more time or send smaller batches (RAG_SPLADE_BATCH_SIZE)"
                ) from e
            except NOT_TAKEN as e:
                if last:
                    raise RemoteEncoderError(
                        f"the encoder server at {where} cannot be reached after "
                        f"{self.retries + 1} tries: {type(e).__name__}: {e}; is it running?"
                    ) from e
                self._wait(attempt, None)
                continue
            except httpx.TransportError as e:  # taken, then dropped (or a bad URL)
                raise RemoteEncoderError(
                    f"the encoder server at {where} dropped the call: {type(e).__name__}: "
                    f"{e}; is it running? (not sent again: the call may be what stopped it)"
                ) from e
            if response.status_code in RETRY_STATUS and not last:
                self._wait(attempt, response.headers.get("retry-after"))
                continue
            if response.status_code >= 400:
                raise RemoteEncoderError(
                    f"the encoder server at {where} answered {response.status_code}: "
                    f"{_reason(response)}"
                )
            try:
                return response.json()
            except ValueError as e:
                raise RemoteEncoderError(
                    f"the encoder server at {where} answered something that is not JSON"
                ) from e
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises

    @staticmethod
    def _wait(attempt: int, retry_after: str | None) -> None:
        wait = min(BACKOFF_SECONDS * 2**attempt, MAX_BACKOFF_SECONDS)
        if retry_after is not None and retry_after.isdigit():
            wait = min(max(wait, float(retry_after)), MAX_BACKOFF_SECONDS)
        time.sleep(wait)


def _reason(response: httpx.Response) -> str:
    """The server's own message: TEI's `error`, the service's `message`, else the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        for key in ("message", "error", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])[:300]
    return str(body)[:300]


def chunks(n: int, size: int) -> list[range]:
    """`range(n)` cut into consecutive ranges of at most `size`."""
    return [range(i, min(i + size, n)) for i in range(0, n, size)]

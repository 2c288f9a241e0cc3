"""HTTP framing and slow clients against a real `rag-splade serve` (uvicorn, h11) on
loopback, spoken to with raw sockets: what a client library would never send."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from rag_splade.api.config import ServiceSettings
from rag_splade.pipelines.serve import uvicorn_options
from tests.encoder_server import free_port

HEAD_TIMEOUT = 1  # seconds: small, so that the tests do not sit idle
BODY_TIMEOUT = 1
WAIT = 120.0  # generous: the server answering at all is what is checked, never how fast


class Server:
    def __init__(self, port: int, process: subprocess.Popen[bytes], log: Path) -> None:
        self.port, self.process, self.log = port, process, log
        self.url = f"http://127.0.0.1:{port}"


@pytest.fixture(scope="module")
def server(
    lexical_splade_path: Path, lexical_dense_path: Path, tmp_path_factory
) -> Iterator[Server]:
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = {
        **os.environ,
        "RAG_SPLADE_SPARSE_MODEL": str(lexical_splade_path),
        "RAG_SPLADE_DENSE_MODEL": str(lexical_dense_path),
        "RAG_SPLADE_DEVICE": "cpu",
        "RAG_SPLADE_INDEX_PATH": str(tmp / "index"),
        "RAG_SPLADE_API_KEY": "",
        "RAG_SPLADE_KEYS_FILE": "",
        "RAG_SPLADE_TIMEOUT_REQUEST_HEAD_SECONDS": str(HEAD_TIMEOUT),
        "RAG_SPLADE_TIMEOUT_REQUEST_BODY_SECONDS": str(BODY_TIMEOUT),
        "RAG_SPLADE_MAX_HEADER_BYTES": "4096",
    }
    log = tmp / "serve.log"
    with log.open("wb") as out:
        command = [sys.executable, "-m", "rag_splade.pipelines.cli", "serve", "--port", str(port)]
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    s = Server(port, process, log)
    deadline = time.monotonic() + 600
    while True:
        assert process.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        try:
            if httpx.get(s.url + "/readyz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    yield s
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=60)


def exchange(server: Server, raw: bytes, *, half_close: bool = False) -> bytes:
    """Send `raw`, optionally half-close, and read until the server closes (or WAIT)."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
        s.sendall(raw)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        return read_all(s)


def read_all(s: socket.socket) -> bytes:
    out = b""
    s.settimeout(WAIT)
    try:
        while chunk := s.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


def responses(raw: bytes) -> list[tuple[int, dict[str, str], bytes]]:
    """The HTTP/1.1 responses in `raw` (Content-Length framed, as the service sends)."""
    found = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines)}
        if "content-length" in headers:
            n = int(headers["content-length"])
            body, raw = rest[:n], rest[n:]
        else:  # chunked: the tests read only the status and headers of such answers
            body, raw = rest, b""
        found.append((int(status_line.split()[1]), headers, body))
    return found


def json_error(raw: bytes, status: int) -> dict:
    [(code, headers, body)] = responses(raw)
    assert code == status, raw[:300]
    assert headers["content-type"] == "application/json", headers
    answer = json.loads(body)
    assert set(answer) >= {"error", "message", "request_id"}, answer
    return answer


def post(path: str, body: bytes, length: int | None = None, extra: str = "") -> bytes:
    declared = len(body) if length is None else length
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        f"Content-Length: {declared}\r\n{extra}\r\n"
    ).encode() + body


def stored(server: Server, doc_id: str) -> bool:
    r = httpx.get(f"{server.url}/v1/documents/{doc_id}", timeout=WAIT)
    assert r.status_code in (200, 404), r.text
    return r.status_code == 200


def document(doc_id: str) -> bytes:
    return json.dumps({"documents": [{"id": doc_id, "text": "富士山は日本一高い山。"}]}).encode()


@pytest.mark.parametrize("missing", [1, 20, 10_000])
def test_a_body_shorter_than_its_length_then_a_half_close_is_not_processed(
    server: Server, missing: int
) -> None:
    doc_id = f"partial-{missing}"
    body = document(doc_id)  # whole JSON, but less than the Content-Length says
    raw = exchange(server, post("/v1/documents", body, len(body) + missing), half_close=True)
    if raw:  # the client may still read after a half-close: then it is told why
        assert json_error(raw, 400)["error"] == "invalid_body"
    assert not stored(server, doc_id)
    # the same body with its true length is stored: the refusal was about the framing
    answer = exchange(server, post("/v1/documents", body, extra="Connection: close\r\n"))
    assert responses(answer)[0][0] == 200 and stored(server, doc_id)


def test_a_body_cut_off_by_a_reset_is_not_processed(server: Server) -> None:
    body = document("reset-1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
        s.sendall(post("/v1/documents", body, len(body) + 5))
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    # a later request on a new connection shows the server went on, and nothing was stored
    assert not stored(server, "reset-1")


@pytest.mark.parametrize(
    "body", [b"\xef\xbb\xbf" + document("bom-1"), b"\xef\xbb\xbf{}", b"\xef\xbb\xbf"]
)
def test_a_byte_order_mark_is_refused(server: Server, body: bytes) -> None:
    raw = exchange(server, post("/v1/documents", body, extra="Connection: close\r\n"))
    answer = json_error(raw, 400)
    assert answer["error"] == "invalid_encoding" and "byte-order mark" in answer["message"]
    assert not stored(server, "bom-1")


@pytest.mark.parametrize(
    "request_bytes",
    [
        post("/v1/search", b"{}", extra="").replace(b"Content-Length: 2", b"Content-Length: -1"),
        post("/v1/search", b"{}").replace(b"Content-Length: 2", b"Content-Length: abc"),
        post("/v1/search", b"{}").replace(
            b"Content-Length: 2", b"Content-Length: 2\r\nContent-Length: 3"
        ),
        "GET /v1/documents/検索 HTTP/1.1\r\nHost: t\r\n\r\n".encode(),
        b"GET /v1/stats HTTP/1.1\r\nHost: t\r\nX-Note: \x00\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
    ],
    ids=[
        "length-minus-1",
        "length-abc",
        "two-lengths",
        "utf8-path",
        "nul-header",
        "garbage",
        "no-host",
    ],
)
def test_requests_the_http_layer_refuses_get_the_json_error(
    server: Server, request_bytes: bytes
) -> None:
    answer = json_error(exchange(server, request_bytes), 400)
    assert answer["error"] == "invalid_http" and "not valid HTTP/1.1" in answer["message"]


def test_headers_over_the_limit_get_431_in_json(server: Server) -> None:
    """A head still incomplete past RAG_SPLADE_MAX_HEADER_BYTES (4096 here) is refused
    without waiting for the rest (h11 measures what it holds unparsed)."""
    raw = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 8000  # no end of head
    answer = json_error(exchange(server, raw), 431)
    assert answer["error"] == "invalid_http"


def test_a_percent_encoded_utf8_path_is_served(server: Server) -> None:
    raw = exchange(
        server, b"GET /v1/documents/%E6%A4%9C HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert json_error(raw, 404)["error"] == "not_found"


@pytest.mark.parametrize("stall", [b"GE", b"GET /healthz HTTP/1.1\r\nHost:", b""])
def test_a_stalled_request_head_is_closed_with_408(server: Server, stall: bytes) -> None:
    """Half a request line (or nothing at all) and then silence: the server answers 408 and
    closes within the configured time; the test only waits for it, generously."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
        s.sendall(stall)
        raw = read_all(s)  # returns when the server closes: it must, the test waits WAIT
    answer = json_error(raw, 408)
    assert answer["error"] == "request_timeout"
    assert "RAG_SPLADE_TIMEOUT_REQUEST_HEAD_SECONDS" in answer["message"]


def test_a_keep_alive_connection_that_stalls_in_its_next_head_is_closed(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\nGET /hea")
        raw = read_all(s)
    [(first, _, _), (second, _, body)] = responses(raw)
    assert first == 200 and second == 408 and json.loads(body)["error"] == "request_timeout"


def test_a_stalled_body_gets_408(server: Server) -> None:
    body = document("slow-1")
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
        s.sendall(post("/v1/documents", body[:10], len(body), extra="Connection: close\r\n"))
        raw = read_all(s)
    answer = json_error(raw, 408)
    assert "RAG_SPLADE_TIMEOUT_REQUEST_BODY_SECONDS" in answer["message"]
    assert not stored(server, "slow-1")


def _read_response(s: socket.socket) -> bytes:
    """One Content-Length framed response, read as it comes."""
    raw = b""
    s.settimeout(WAIT)
    while b"\r\n\r\n" not in raw or len(raw) < _framed_length(raw):
        chunk = s.recv(65536)
        assert chunk, raw
        raw += chunk
    return raw


def _framed_length(raw: bytes) -> int:
    head, _, _ = raw.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")[1:]
        if line.lower().startswith(b"content-length:")
    )  # fmt: skip
    return len(head) + 4 + length


def test_a_body_answered_unread_and_then_trickled_is_cut_off(server: Server) -> None:
    """Answered before its body was read (a GET with a body), then one byte at a time: the
    connection is closed once the body timeout has passed, not held for ever."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n")
        assert responses(_read_response(s))[0][0] == 200
        s.settimeout(0.2)
        closed, deadline = False, time.monotonic() + WAIT
        while not closed and time.monotonic() < deadline:
            try:
                s.sendall(b"a")
                closed = s.recv(1) == b""
            except TimeoutError:
                continue
            except (BrokenPipeError, ConnectionResetError):
                closed = True
        assert closed, "a trickled body kept the connection open"


def test_a_next_head_after_an_unread_body_is_timed_out_too(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=WAIT) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\n")
        assert responses(_read_response(s))[0][0] == 200
        s.sendall(b"aaaaaGET /hea")  # the body, then half of the next request's head
        raw = read_all(s)
    answer = json_error(raw, 408)
    assert "RAG_SPLADE_TIMEOUT_REQUEST_HEAD_SECONDS" in answer["message"]


def test_serve_hands_the_connection_settings_to_uvicorn() -> None:
    settings = ServiceSettings(
        timeout_keep_alive_seconds=7,
        timeout_graceful_shutdown_seconds=11,
        limit_concurrency=50,
        max_header_bytes=8192,
    )
    assert uvicorn_options(settings) == {
        "http": "rag_splade.api.protocol:ServiceH11Protocol",
        "timeout_keep_alive": 7,
        "timeout_graceful_shutdown": 11,
        "limit_concurrency": 50,
        "h11_max_incomplete_event_size": 8192,
    }
    assert ServiceSettings(limit_concurrency="").limit_concurrency is None
    for bad in (
        {"timeout_request_head_seconds": 0},
        {"timeout_request_body_seconds": -1},
        {"timeout_keep_alive_seconds": 0},
        {"limit_concurrency": 0},
        {"max_header_bytes": 10},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ServiceSettings(**bad)


def run_middleware(messages: list[dict], headers: dict[str, str], **options) -> tuple[list, bool]:
    """The middleware in front of an app that records whether it was called, fed `messages`
    as the request's body; the messages it sent back and whether the app ran."""
    import asyncio
    import logging

    from rag_splade.api.middleware import RequestContextMiddleware
    from rag_splade.api.observability import Metrics

    called = []

    async def app(scope, receive, send) -> None:
        called.append(await receive())

    middleware = RequestContextMiddleware(
        app,
        metrics=Metrics(),
        logger=logging.getLogger("test"),
        max_body_bytes=1 << 20,
        **options,
    )
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/v1/search",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    sent: list = []
    pending = list(messages)

    async def receive() -> dict:
        if not pending:
            await asyncio.sleep(3600)  # a client that sends nothing more
        return pending.pop(0)

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(middleware(scope, receive, send))
    return sent, bool(called)


JSON = {"content-type": "application/json"}


@pytest.mark.parametrize(
    ("messages", "length", "expected"),
    [
        (
            [
                {"type": "http.request", "body": b"{}", "more_body": True},
                {"type": "http.disconnect"},
            ],
            "2",
            "ended after 2 bytes",
        ),
        (
            [
                {"type": "http.request", "body": b"{}", "more_body": True},
                {"type": "http.disconnect"},
            ],
            None,
            "ended after 2 bytes",
        ),
        (
            [{"type": "http.request", "body": b"{}"}],
            "5",
            "is 2 bytes but its Content-Length says 5",
        ),
        (
            [{"type": "http.request", "body": b'{"a": 1}'}],
            "2",
            "is 8 bytes but its Content-Length says 2",
        ),
        ([{"type": "http.request", "body": b"{}"}], "-1", "decimal number of bytes"),
        ([{"type": "http.request", "body": b"{}"}], "0x2", "decimal number of bytes"),
        (
            [{"type": "http.request", "body": b"{}"}],
            "\u0662",
            "decimal number of bytes",
        ),  # Arabic 2
    ],
)
def test_a_body_that_is_not_the_one_announced_never_reaches_the_app(messages, length, expected):
    headers = JSON if length is None else {**JSON, "content-length": length}
    sent, app_ran = run_middleware(messages, headers)
    assert not app_ran
    assert sent[0]["status"] == 400
    answer = json.loads(sent[1]["body"])
    assert answer["error"] == "invalid_body" and expected in answer["message"]


def test_a_body_is_read_whole_in_time_or_refused_with_408() -> None:
    first = [{"type": "http.request", "body": b"{", "more_body": True}]
    sent, app_ran = run_middleware(first, {**JSON, "content-length": "2"}, body_timeout=0.05)
    assert not app_ran and sent[0]["status"] == 408
    assert "RAG_SPLADE_TIMEOUT_REQUEST_BODY_SECONDS" in json.loads(sent[1]["body"])["message"]
    whole = [*first, {"type": "http.request", "body": b"}"}]
    sent, app_ran = run_middleware(whole, {**JSON, "content-length": "2"}, body_timeout=600)
    assert app_ran and sent == []


@pytest.mark.parametrize(
    "body", [b"\xef\xbb\xbf{}", b"\xef\xbb\xbf", b"\xef\xbb\xbf\xef\xbb\xbf[]"]
)
def test_a_byte_order_mark_never_reaches_the_app(body: bytes) -> None:
    sent, app_ran = run_middleware([{"type": "http.request", "body": body}], JSON)
    assert not app_ran and sent[0]["status"] == 400
    assert "byte-order mark" in json.loads(sent[1]["body"])["message"]

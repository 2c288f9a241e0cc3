"""A real encoder server for the tests: `rag-splade serve --encoders-only` in its own
process on a loopback port, with the tiny offline models."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

KEY = "encoder-test-key"


@dataclass
class EncoderServer:
    process: subprocess.Popen[bytes]
    url: str
    log: Path

    def stop(self) -> None:
        """Kill it at once (SIGKILL: no graceful shutdown, as a crash or an OOM kill)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_encoder_server(
    splade: Path,
    dense: Path,
    log_dir: Path,
    *,
    reranker: Path | None = None,
    port: int | None = None,
    timeout: float = 600.0,
    **env: str,
) -> EncoderServer:
    """Start the server and wait until `/readyz` answers 200 (generous: CI is slow)."""
    port = port or free_port()
    environment = {
        **os.environ,
        "RAG_SPLADE_SPARSE_MODEL": str(splade),
        "RAG_SPLADE_DENSE_MODEL": str(dense),
        "RAG_SPLADE_RERANK_MODEL": str(reranker or ""),
        "RAG_SPLADE_DEVICE": "cpu",
        "RAG_SPLADE_API_KEY": KEY,
        **env,
    }
    log = log_dir / f"encoder-server-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rag_splade.pipelines.cli",
                "serve",
                "--encoders-only",
                "--port",
                str(port),
                "--log-level",
                "warning",
            ],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = EncoderServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"the encoder server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(server.url + "/readyz", timeout=2).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    server.stop()
    raise AssertionError(f"the encoder server was not ready in {timeout} s: {log.read_text()}")

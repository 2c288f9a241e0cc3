"""Serving: the HTTP service under concurrent load, with micro-batching on and off.

The service runs as it does in production, `uvicorn rag_splade.api.app:app` in a process of its own,
and is driven over loopback HTTP by an asyncio client; nothing here imports `api`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

from .common import BenchContext, Row, Section, percentiles

COLUMNS = [
    ("requests_per_s", "requests/s"),
    ("p50_ms", "p50 ms"),
    ("p95_ms", "p95 ms"),
    ("mean_batch", "queries per batch"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--serving-concurrency",
        default="1,8,32",
        help="concurrent clients for the serving section, e.g. 1,8,32",
    )
    parser.add_argument(
        "--serving-requests", type=int, default=64, help="search requests per concurrency level"
    )
    parser.add_argument(
        "--serving-docs", type=int, default=64, help="JSQuAD paragraphs indexed for serving"
    )


def run(args: argparse.Namespace, ctx: BenchContext) -> Section:
    """The `serving` section of `rag-splade bench`, on the benchmark's speed models."""
    levels = [int(v) for v in str(args.serving_concurrency).split(",") if v.strip()]
    if not levels or min(levels) < 1:
        raise ValueError(f"--serving-concurrency needs positive integers, got {levels}")
    with tempfile.TemporaryDirectory(prefix="rag-splade-serving-") as work:
        section = serving_section(
            ctx.models["splade"],
            ctx.models["dense"],
            device=args.device,
            dtype=args.dtype.split(",")[0].strip(),
            texts=ctx.paragraphs[: args.serving_docs],
            queries=ctx.query_texts,
            work_dir=Path(work),
            concurrency=levels,
            requests_per_level=args.serving_requests,
        )
    section.notes.append(f"Models: {ctx.model_label} (sparse), the same shape (dense).")
    return section


def serving_section(
    splade: Path,
    dense: Path,
    *,
    device: str,
    dtype: str,
    texts: Sequence[str],
    queries: Sequence[str],
    work_dir: Path,
    concurrency: Sequence[int] = (1, 8, 32),
    requests_per_level: int = 64,
    startup_timeout: float = 600.0,
) -> Section:
    """Throughput and latency of `POST /v1/search` at each concurrency, batching on and off."""
    title = "6. Serving: POST /v1/search (hybrid, top_k 5, explain and context off)"
    section = Section("serving", title, COLUMNS)
    index_path = work_dir / "serving-index"
    by_mode: dict[bool, dict[int, float]] = {}
    for microbatch in (True, False):
        env = {
            **os.environ,
            "RAG_SPLADE_SPARSE_MODEL": str(splade),
            "RAG_SPLADE_DENSE_MODEL": str(dense),
            "RAG_SPLADE_DEVICE": device,
            "RAG_SPLADE_DTYPE": dtype,
            "RAG_SPLADE_INDEX_PATH": str(index_path),
            "RAG_SPLADE_MICROBATCH": "true" if microbatch else "false",
            "RAG_SPLADE_API_KEY": "",
            "RAG_SPLADE_QDRANT_URL": "",
            # A random speed model activates nearly every vocabulary term; pruning stored
            # passages keeps the index at a real SPLADE's size (a few hundred terms).
            "RAG_SPLADE_DOCUMENT_TOP_K": "256",
        }
        with _Server(env, work_dir / f"serving-{'on' if microbatch else 'off'}.log") as server:
            server.wait_ready(startup_timeout)
            if microbatch:  # the first server fills the index; the second reopens it
                server.add_documents(texts)
            by_mode[microbatch] = {}
            for level in concurrency:
                asyncio.run(_load(server.url, queries[:8], 1, 8))  # warm-up
                before = server.batches()
                latencies, wall = asyncio.run(
                    _load(server.url, queries, level, max(requests_per_level, level))
                )
                after = server.batches()
                served = after[0] - before[0]
                metrics = {
                    "requests_per_s": len(latencies) / wall,
                    **{k: v for k, v in percentiles(latencies).items() if k != "p99_ms"},
                    "mean_batch": served / max(after[1] - before[1], 1),
                }
                by_mode[microbatch][level] = metrics["requests_per_s"]
                name = f"micro-batching {'on' if microbatch else 'off'}, concurrency {level}"
                section.rows.append(Row(name, metrics))
            if microbatch:  # what a client asking for explanations and the context gets
                level = max(concurrency)
                before = server.batches()
                latencies, wall = asyncio.run(
                    _load(server.url, queries, level, max(requests_per_level, level), True)
                )
                after = server.batches()
                metrics = {
                    "requests_per_s": len(latencies) / wall,
                    **{k: v for k, v in percentiles(latencies).items() if k != "p99_ms"},
                    "mean_batch": (after[0] - before[0]) / max(after[1] - before[1], 1),
                }
                name = f"micro-batching on, concurrency {level}, explanations and context on"
                section.rows.append(Row(name, metrics))
    top = max(concurrency)
    ratio = by_mode[True][top] / by_mode[False][top]
    section.notes.append(
        f"Micro-batching gives {ratio:.2f}x the throughput of unbatched serving at "
        f"concurrency {top} (target on a GPU: >= 3x). One uvicorn process; the load "
        "generator runs on the same machine."
    )
    section.notes.append(f"micro_batching_ratio_at_{top}={ratio:.3f}")
    return section


async def _load(
    url: str, queries: Sequence[str], concurrency: int, total: int, explain: bool = False
) -> tuple[list[float], float]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one(i: int) -> None:
            async with gate:
                started = time.perf_counter()
                query = queries[i % len(queries)]
                body = {"query": query, "explain": explain, "context": explain}
                r = await client.post("/v1/search", json=body)
                r.raise_for_status()
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        return latencies, time.perf_counter() - started


class _Server:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        log.parent.mkdir(parents=True, exist_ok=True)
        self._log_file = log.open("wb")
        command = [sys.executable, "-m", "uvicorn", "rag_splade.api.app:app", "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--port", str(port), "--no-access-log"],
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def __enter__(self) -> _Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self._log_file.close()

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the service exited; see {self.log}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"the service was not ready after {timeout} s; see {self.log}")

    def add_documents(self, texts: Sequence[str]) -> None:
        docs = [{"id": f"p{i}", "text": t} for i, t in enumerate(texts)]
        for start in range(0, len(docs), 64):
            r = httpx.post(
                f"{self.url}/v1/documents",
                json={"documents": docs[start : start + 64]},
                timeout=600,
            )
            r.raise_for_status()

    def batches(self) -> tuple[float, float]:
        """(queries, batches) encoded so far, from the service's own metrics."""
        from prometheus_client.parser import text_string_to_metric_families

        text = httpx.get(f"{self.url}/metrics", timeout=10).text
        values = {
            sample.name: sample.value
            for family in text_string_to_metric_families(text)
            if family.name == "rag_splade_query_batch_size"
            for sample in family.samples
        }
        return (
            values.get("rag_splade_query_batch_size_sum", 0.0),
            values.get("rag_splade_query_batch_size_count", 0.0),
        )

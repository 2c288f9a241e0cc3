"""Remote encoding: what the hop to an encoder server costs against encoding in-process.

An encoder server (`rag-splade serve --encoders-only`, in a process of its own, on loopback)
and this process load the same models. At each batch size the same documents are encoded
both ways, SPLADE and dense; the ratio remote/local is the hop's price (HTTP, JSON, and
for SPLADE the tokenizing done here), before any network latency.
"""

from __future__ import annotations

import argparse
import math
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .common import BenchContext, Row, Section, comma_list
from .serving import _Server

TOP_K = 256
COLUMNS = [
    ("local_texts_per_s", "local texts/s"),
    ("remote_texts_per_s", "remote texts/s"),
    ("remote_over_local", "remote time / local"),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--remote-batch-sizes",
        type=comma_list(int),
        default=[1, 8, 32, 256],
        help="texts per encode call in the remote section, e.g. 1,8,32,256",
    )
    parser.add_argument(
        "--remote-texts", type=int, default=256, help="texts encoded per batch size and path"
    )


def run(args: argparse.Namespace, ctx: BenchContext) -> Section:
    """The `remote` section of `rag-splade bench`, on the benchmark's speed models."""
    sizes = list(args.remote_batch_sizes)
    if not sizes or min(sizes) < 1 or args.remote_texts < 1:
        raise ValueError(f"--remote-batch-sizes and --remote-texts must be >= 1, got {sizes}")
    from rag_splade.encoders.dense import DenseEncoder
    from rag_splade.encoders.remote import RemoteDenseEncoder, RemoteSpladeEncoder
    from rag_splade.encoders.splade import SpladeEncoder

    splade, dense = ctx.models["splade"], ctx.models["dense"]
    device = args.device
    title = "10. Remote encoding: an encoder server on loopback against in-process encoding"
    section = Section("remote", title, COLUMNS)
    env = {
        **os.environ,
        "RAG_SPLADE_SPARSE_MODEL": str(splade),
        "RAG_SPLADE_DENSE_MODEL": str(dense),
        "RAG_SPLADE_DEVICE": device,
        "RAG_SPLADE_ENCODERS_ONLY": "true",
        "RAG_SPLADE_API_KEY": "",
        "RAG_SPLADE_TEI_MAX_CLIENT_BATCH_SIZE": str(max(sizes)),
        "RAG_SPLADE_LOG_JSON": "false",
        # a random speed model activates nearly every vocabulary term; pruned to a real
        # SPLADE's size (a few hundred terms), as the serving section stores them
        "RAG_SPLADE_DOCUMENT_TOP_K": str(TOP_K),
    }
    texts = ctx.doc_texts or ctx.paragraphs
    with tempfile.TemporaryDirectory(prefix="rag-splade-remote-") as work:
        log = Path(work) / "encoder-server.log"
        with _Server(env, log) as server:
            server.wait_ready(600.0)
            local_sparse = SpladeEncoder(str(splade), device=device, document_top_k=TOP_K)
            local_dense = DenseEncoder(str(dense), device=device)
            for size in sizes:
                batch = [texts[i % len(texts)] for i in range(size)]
                # a batch of 256 long texts on a CPU takes minutes, not the default 30 s
                remote_sparse = RemoteSpladeEncoder(
                    server.url, str(splade), batch_size=size, document_top_k=TOP_K, timeout=900
                )
                remote_dense = RemoteDenseEncoder(
                    server.url, str(dense), batch_size=size, timeout=900
                )
                pairs = (
                    ("SPLADE", local_sparse.encode_documents, remote_sparse.encode_documents),
                    ("dense", local_dense.encode_documents, remote_dense.encode_documents),
                )
                try:
                    for name, local, remote in pairs:
                        row_name = f"{name} documents, batch {size}"
                        section.rows.append(_row(row_name, local, remote, batch, args.remote_texts))
                finally:
                    remote_sparse.close()
                    remote_dense.close()
            local_sparse.close()
    section.notes += [
        f"Models: {ctx.model_label} (sparse), the same shape (dense), on {device} in both "
        f"processes; the server and this process share the machine's cores. SPLADE "
        f"documents keep their {TOP_K} strongest terms (a real model's size) both ways.",
        "remote time / local above 1 is the hop's cost per text; the encoder server pays off "
        "when it has a GPU and the callers do not (see Deployment).",
    ]
    return section


def _row(
    name: str,
    local: Callable[[Sequence[str]], Any],
    remote: Callable[[Sequence[str]], Any],
    batch: list[str],
    total: int,
) -> Row:
    calls = max(1, math.ceil(total / len(batch)))
    local(batch)  # warm-up: first-call allocations, connections, caches
    remote(batch)
    rates = {}
    for label, encode in (("local", local), ("remote", remote)):
        started = time.perf_counter()
        for _ in range(calls):
            encode(batch)
        rates[label] = calls * len(batch) / (time.perf_counter() - started)
    return Row(
        name,
        {
            "local_texts_per_s": rates["local"],
            "remote_texts_per_s": rates["remote"],
            "remote_over_local": rates["local"] / rates["remote"],
        },
    )

"""One sparse document-encoding path, run in its own process so that its peak memory is its own.

`python -m rag_splade.pipelines.benchmark.encode_worker SPEC.json`: reads `{"path", "model",
"texts", "device", "dtype", ...}`, encodes the texts once to warm up on a few, then all of them
timed, saves the first vectors for fidelity checks and prints one JSON line of results.
"""

from __future__ import annotations

import itertools
import json
import resource
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rag_splade.encoders.tokenizer_pool import tokenize_in_process

LLAMA_INDEX_BATCH = 64  # QdrantVectorStore's default batch_size: what its sparse_doc_fn gets


Encode = Callable[[list[str]], list[tuple[Any, Any]]]


def _rag_splade(spec: dict[str, Any]) -> Encode:
    from rag_splade import SpladeEncoder

    budget = spec.get("max_batch_tokens")
    encoder = SpladeEncoder(
        spec["model"],
        device=spec["device"],
        dtype=spec["dtype"],
        max_batch_tokens=budget,
        batch_size=budget or 32,  # batches are cut by tokens, not by count
        tokenizer_workers=spec.get("tokenizer_workers", 0),
        backend=spec.get("backend", "torch"),
        fast_tokenizer=spec.get("fast_tokenizer", True),
    )
    encode_documents: Callable[[list[str]], list[Any]] = encoder.encode_documents
    if spec.get("quantize") == "torch-int8":
        from .int8 import torch_int8_encode

        encode_documents = torch_int8_encode(encoder)
    ids_tokenizer = encoder.fast_tokenizer or encoder.tokenizer

    def encode(texts: list[str]) -> list[tuple[Any, Any]]:
        return [(v.indices, v.values) for v in encode_documents(texts)]

    def tokenize(texts: list[str]) -> None:  # what the encoder's own tokenization costs
        tokenize_in_process(ids_tokenizer, texts, encoder.document_max_length)

    encode.tokenize = tokenize  # type: ignore[attr-defined]
    return encode


def _sentence_transformers(spec: dict[str, Any]) -> Encode:
    from sentence_transformers import SparseEncoder

    model = SparseEncoder(spec["model"], device=spec["device"])
    if spec["dtype"] != "float32":
        model.to(getattr(torch, spec["dtype"]))

    def encode(texts: list[str]) -> list[tuple[Any, Any]]:
        out = model.encode_document(texts)  # defaults: batch 32, sparse COO on the device
        out = out.coalesce().cpu()
        rows, cols = out.indices().numpy()
        values = out.values().float().numpy()
        bounds = np.searchsorted(rows, np.arange(len(texts) + 1))
        return [(cols[a:b], values[a:b]) for a, b in itertools.pairwise(bounds)]

    return encode


def _llama_index(spec: dict[str, Any]) -> Encode:
    from llama_index.vector_stores.qdrant.utils import default_sparse_encoder

    fn = default_sparse_encoder(spec["model"])  # loads AutoModelForMaskedLM (fp32, CUDA if any)
    no_grad = spec.get("no_grad", False)

    def encode(texts: list[str]) -> list[tuple[Any, Any]]:
        out: list[tuple[Any, Any]] = []
        for start in range(0, len(texts), LLAMA_INDEX_BATCH):
            batch = texts[start : start + LLAMA_INDEX_BATCH]
            if no_grad:
                with torch.no_grad():
                    indices, values = fn(batch)
            else:  # as QdrantVectorStore calls it
                indices, values = fn(batch)
            out += list(zip(indices, values, strict=True))
        return out

    return encode


PATHS = {
    "rag_splade": _rag_splade,
    "sentence_transformers": _sentence_transformers,
    "llama_index": _llama_index,
}


def main(spec_path: str) -> int:
    with open(spec_path, encoding="utf-8") as f:
        spec = json.load(f)
    texts: list[str] = spec["texts"]
    cuda = spec["device"].startswith("cuda")
    encode = PATHS[spec["path"]](spec)
    encode(texts[: spec.get("warmup", 2)])
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    vectors = encode(texts)
    if cuda:
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokenize_s = None
    tokenize = getattr(encode, "tokenize", None)
    if tokenize is not None:  # how much of it the encoder's tokenization took, alone
        t0 = time.perf_counter()
        tokenize(texts)
        tokenize_s = time.perf_counter() - t0
    keep = spec.get("save_vectors", 0)
    if keep and spec.get("vectors_out"):
        arrays: dict[str, Any] = {}
        for i, (indices, values) in enumerate(vectors[:keep]):
            arrays[f"i{i}"] = np.asarray(indices, dtype=np.int64)
            arrays[f"v{i}"] = np.asarray(values, dtype=np.float32)
        np.savez(spec["vectors_out"], **arrays)
    result = {
        "seconds": seconds,
        "docs": len(texts),
        "tokenize_s": tokenize_s,
        "rss_peak_gb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,  # KiB
        "cuda_peak_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "nnz_mean": float(np.mean([len(i) for i, _ in vectors])) if vectors else 0.0,
    }
    print("RESULT " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))

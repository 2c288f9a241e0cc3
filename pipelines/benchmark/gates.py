"""Fidelity gates of the fast encoding paths against float32, on the lexical test model.

A fast path that is not exact (bf16, int8) passes when, on JSQuAD paragraphs and questions,
it keeps at least `MIN_TOP20` of each passage's 20 strongest float32 terms on average and
loses at most `MAX_NDCG_LOSS_PCT` of float32's nDCG@10 (each question's own paragraph is the
relevant one; ranked by the sparse dot product, scored with ranx). The lexical model's
vectors are sparse like a trained model's; the random speed model's near-tied weights make
its top-20 fragile, so its overlap is only reported, not gated.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from rag_splade.types import SparseVector

from .size import ndcg10

MIN_TOP20 = 0.95
MAX_NDCG_LOSS_PCT = 1.0
KINDS = ("bfloat16", "float16", "onnx-int8", "torch-int8")

Encode = Callable[[list[str]], list[SparseVector]]


def load_vectors(path: Path) -> list[dict[int, float]]:
    data = np.load(path)
    n = len([k for k in data.files if k.startswith("i")])
    return [
        dict(zip(data[f"i{i}"].tolist(), data[f"v{i}"].tolist(), strict=True)) for i in range(n)
    ]


def fidelity(
    test: list[dict[int, float]], ref: list[dict[int, float]], k: int = 20
) -> dict[str, float]:
    """Mean share of the reference's top-`k` terms kept, mean cosine, max absolute difference."""
    overlaps, cosines, diffs = [], [], [0.0]
    for a, b in zip(test, ref, strict=True):
        top_b = set(sorted(b, key=b.__getitem__, reverse=True)[:k])
        top_a = set(sorted(a, key=a.__getitem__, reverse=True)[:k])
        overlaps.append(len(top_a & top_b) / max(1, len(top_b)))
        dot = sum(a[i] * b[i] for i in set(a) & set(b))
        na = sum(v * v for v in a.values()) ** 0.5
        nb = sum(v * v for v in b.values()) ** 0.5
        cosines.append(dot / (na * nb) if na and nb else 0.0)
        diffs.append(max((abs(a.get(i, 0.0) - b.get(i, 0.0)) for i in set(a) | set(b)), default=0))
    return {
        "top20_overlap": float(np.mean(overlaps)),
        "cosine": float(np.mean(cosines)),
        "max_abs_diff": float(max(diffs)),
    }


def top20_overlap(test: list[SparseVector], ref: list[SparseVector]) -> float:
    """Mean share of each reference vector's 20 strongest terms that `test` also has there."""
    shares = []
    for a, b in zip(test, ref, strict=True):
        top_a = set(a.indices[np.argsort(-a.values, kind="stable")[:20]].tolist())
        top_b = set(b.indices[np.argsort(-b.values, kind="stable")[:20]].tolist())
        shares.append(len(top_a & top_b) / max(1, len(top_b)))
    return float(np.mean(shares)) if shares else 1.0


def rankings(
    docs: list[SparseVector], queries: list[SparseVector], vocab: int
) -> list[list[tuple[int, float]]]:
    """Top 10 `(document, score)` of each query by the sparse dot product (exact, dense)."""
    matrix = np.zeros((len(docs), vocab), dtype=np.float32)
    for row, vector in enumerate(docs):
        matrix[row, vector.indices] = vector.values
    out = []
    for query in queries:
        scores = matrix[:, query.indices] @ query.values
        top = np.argsort(-scores, kind="stable")[:10]
        out.append([(int(i), float(scores[i])) for i in top])
    return out


def encoders(model: Path, kind: str, cache: Path) -> tuple[Encode, Encode]:
    """`(encode_documents, encode_queries)` of the lexical model on CPU in `kind`."""
    from rag_splade import SpladeEncoder

    if kind == "float32":
        enc = SpladeEncoder(str(model), device="cpu")
    elif kind in ("bfloat16", "float16"):
        enc = SpladeEncoder(str(model), device="cpu", dtype=kind)
    elif kind == "onnx-int8":
        enc = SpladeEncoder(str(model), device="cpu", backend="onnx-int8", cache_folder=str(cache))
    elif kind == "torch-int8":
        from .int8 import torch_int8_encode

        enc = SpladeEncoder(str(model), device="cpu")
        return torch_int8_encode(enc), torch_int8_encode(enc, queries=True)
    else:
        raise ValueError(f"kind must be float32 or one of {KINDS}, got {kind!r}")
    return enc.encode_documents, enc.encode_queries


def run_gates(
    model: Path,
    kinds: list[str],
    paragraphs: list[str],
    questions: list[tuple[str, int]],
    cache: Path,
) -> dict[str, dict[str, Any]]:
    """Per kind: top-20 overlap, nDCG@10 and its loss against float32, and `passed`."""
    from transformers import AutoConfig

    vocab = int(AutoConfig.from_pretrained(str(model)).vocab_size)
    texts = [q for q, _ in questions]
    relevant = [n for _, n in questions]
    ref_docs_fn, ref_queries_fn = encoders(model, "float32", cache)
    ref_docs = ref_docs_fn(paragraphs)
    ref_ndcg = ndcg10(rankings(ref_docs, ref_queries_fn(texts), vocab), relevant)
    out: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        docs_fn, queries_fn = encoders(model, kind, cache)
        docs = docs_fn(paragraphs)
        score = ndcg10(rankings(docs, queries_fn(texts), vocab), relevant)
        overlap = top20_overlap(docs, ref_docs)
        loss = 100.0 * (ref_ndcg - score) / ref_ndcg if ref_ndcg else 0.0
        out[kind] = {
            "gate_top20": overlap,
            "gate_ndcg10": score,
            "gate_ndcg_loss_pct": loss,
            "ndcg10_float32": ref_ndcg,
            "passed": overlap >= MIN_TOP20 and loss <= MAX_NDCG_LOSS_PCT,
        }
    return out

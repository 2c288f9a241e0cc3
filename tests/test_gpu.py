"""CUDA checks (run with: pytest -m gpu). Skipped where torch sees no GPU."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from rag_splade import DenseEncoder, Document, EdgeStore, HybridIndex, SpladeEncoder
from rag_splade.encoders.device import resolve_device, resolve_dtype
from rag_splade.sample import sample_texts
from rag_splade.testing import build_splade_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

TEXTS = sample_texts()[:16]


def test_auto_picks_cuda_and_half_precision() -> None:
    assert resolve_device("auto") == "cuda"
    expected = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    assert resolve_dtype("auto", "cuda") == expected


def test_cuda_fp32_matches_cpu(random_splade, random_splade_path) -> None:
    gpu = SpladeEncoder(str(random_splade_path), device="cuda", dtype="float32")
    cpu_vectors = random_splade.encode_documents(TEXTS)
    for a, b in zip(gpu.encode_documents(TEXTS), cpu_vectors, strict=True):
        assert np.array_equal(a.indices, b.indices)
        assert np.abs(a.values - b.values).max() < 1e-3


def test_cuda_bf16_stays_close_to_fp32(splade, lexical_splade_path) -> None:
    gpu = SpladeEncoder(str(lexical_splade_path), device="cuda")  # auto: bf16
    assert gpu.dtype in (torch.bfloat16, torch.float16)
    for a, b in zip(gpu.encode_documents(TEXTS), splade.encode_documents(TEXTS), strict=True):
        da, db = a.as_dict(), b.as_dict()
        top = set(b.top_k(20).indices.tolist())
        assert len(top & set(da)) >= 18
        shared = set(da) & set(db)
        assert max(abs(da[i] - db[i]) for i in shared) < 0.1
        assert a.dot(b) / (a.dot(a) ** 0.5 * b.dot(b) ** 0.5) > 0.99


def test_hybrid_index_on_cuda(tmp_path, lexical_splade_path, lexical_dense_path) -> None:
    sparse = SpladeEncoder(str(lexical_splade_path), device="cuda")
    dense = DenseEncoder(str(lexical_dense_path), device="cuda")
    with HybridIndex(sparse, dense, EdgeStore(tmp_path / "i")) as index:
        index.add([Document(id=f"d{i}", text=t) for i, t in enumerate(TEXTS)])
        target = next(i for i, t in enumerate(TEXTS) if "小笠原諸島" in t)
        hits = index.search("小笠原諸島", top_k=3, explain=True)
        assert hits[0].doc_id == f"d{target}"
        for hit in hits:
            total = sum(t.contribution for t in hit.explanation.terms)
            assert total == pytest.approx(hit.explanation.sparse_score, rel=1e-4)
            if hit.sparse_score is not None:
                assert hit.explanation.sparse_score == pytest.approx(hit.sparse_score, rel=1e-3)


def test_bert_base_throughput_probe(tmp_path) -> None:
    """Prints SPLADE document-encoding throughput of a BERT-base-shaped model (vocab 32,768)
    on 512-token documents; asserts only that it ran."""
    path = build_splade_model(tmp_path / "base", hidden=768, layers=12, heads=12, vocab_size=32768)
    encoder = SpladeEncoder(str(path), device="cuda", batch_size=64)
    long_text = "".join(sample_texts())
    docs = [long_text[i * 50 :] for i in range(512)]
    encoder.encode_documents(docs[:64])  # warm-up
    torch.cuda.synchronize()
    start = time.perf_counter()
    vectors = encoder.encode_documents(docs)
    torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    tokens = len(docs) * 512
    print(f"\nencode_documents: {len(docs) / seconds:.0f} docs/s, {tokens / seconds:,.0f} tokens/s")
    features = encoder.model.preprocess(docs[:64], task="document")
    features = {k: v.to("cuda") if torch.is_tensor(v) else v for k, v in features.items()}
    with torch.inference_mode():
        encoder.model(features)
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(8):
            encoder.model(features)
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    print(f"forward + pooling only: {8 * 64 * 512 / seconds:,.0f} tokens/s (batch 64 x 512)")
    assert len(vectors) == len(docs)

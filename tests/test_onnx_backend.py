"""SpladeEncoder(backend="onnx"): the same vectors as PyTorch, the export cached by weights."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from rag_splade import SpladeEncoder
from rag_splade.encoders import onnx_backend
from rag_splade.sample import sample_texts

pytest.importorskip("onnxruntime")  # the `onnx` extra; `make install` has it

TEXTS = sample_texts()[:12]


@pytest.fixture(scope="module")
def onnx_encoder(lexical_splade_path, tmp_path_factory) -> SpladeEncoder:
    return onnx_in(lexical_splade_path, tmp_path_factory.mktemp("hf-cache"))


def assert_same(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x.indices, y.indices)
        np.testing.assert_allclose(x.values, y.values, atol=1e-4)


def test_vectors_equal_the_torch_ones(onnx_encoder, splade) -> None:
    # mixed lengths: padding inside a batch must not change a vector
    texts = [*TEXTS, "石油。", "梅雨前線が北上する。" * 40]
    assert_same(onnx_encoder.encode_documents(texts), splade.encode_documents(texts))
    assert_same(onnx_encoder.encode_queries(TEXTS[:4]), splade.encode_queries(TEXTS[:4]))
    assert_same(
        onnx_encoder.encode_documents(TEXTS[:3], top_k=8), splade.encode_documents(TEXTS[:3], 8)
    )


def onnx_in(model_path, cache) -> SpladeEncoder:
    return SpladeEncoder(str(model_path), device="cpu", backend="onnx", cache_folder=cache)


def test_export_is_cached_by_weights(lexical_splade_path, tmp_path, monkeypatch) -> None:
    first = SpladeEncoder(
        str(lexical_splade_path), device="cpu", backend="onnx", cache_folder=tmp_path
    )
    exported = list(tmp_path.rglob("*.onnx"))
    assert len(exported) == 1

    def no_export(*args, **kwargs):
        raise AssertionError("exported again")

    monkeypatch.setattr(onnx_backend.torch.onnx, "export", no_export)
    again = SpladeEncoder(
        str(lexical_splade_path), device="cpu", backend="onnx", cache_folder=tmp_path
    )
    assert again._forward.path == first._forward.path
    monkeypatch.undo()

    model = again.model.transformers_model
    with torch.no_grad():
        next(model.parameters()).add_(0.01)  # other weights: another export
    assert onnx_backend.export(model, tmp_path / "rag_splade-onnx") != first._forward.path
    assert len(list(tmp_path.rglob("*.onnx"))) == 2


def test_bad_backend_settings_are_refused(lexical_splade_path, monkeypatch) -> None:
    path = str(lexical_splade_path)
    with pytest.raises(
        ValueError, match=r"backend must be one of \('torch', 'onnx', 'onnx-int8'\)"
    ):
        SpladeEncoder(path, device="cpu", backend="tensorrt")
    for backend in ("onnx", "onnx-int8"):
        with pytest.raises(ValueError, match=f'backend="{backend}" runs on the CPU from float32'):
            SpladeEncoder(path, device="cpu", dtype="bfloat16", backend=backend)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed
    with pytest.raises(ImportError, match=r'pip install "rag-splade\[onnx\]"'):
        SpladeEncoder(path, device="cpu", backend="onnx")


def test_int8_is_close_to_float32_and_cached(lexical_splade_path, splade, tmp_path, monkeypatch):
    """int8 weights change the numbers a little, not which terms a passage has or how it
    ranks: on the lexical model the strongest terms stay, and each question's own
    paragraph scores as high as it did in float32 (the benchmark measures nDCG@10)."""
    from rag_splade.sample import read_squad_paragraphs

    int8 = SpladeEncoder(
        str(lexical_splade_path), device="cpu", backend="onnx-int8", cache_folder=tmp_path
    )
    assert int8._forward.path.name == "splade-int8.onnx"
    assert len(list(tmp_path.rglob("*.onnx"))) == 2  # the float32 export and its int8 version
    texts = sample_texts()
    got, ref = int8.encode_documents(texts), splade.encode_documents(texts)
    overlaps = []
    for a, b in zip(got, ref, strict=True):
        assert not np.array_equal(a.values, b.values)  # it is quantised
        top_a = set(a.indices[np.argsort(-a.values)[:20]].tolist())
        top_b = set(b.indices[np.argsort(-b.values)[:20]].tolist())
        overlaps.append(len(top_a & top_b) / len(top_b))
    assert np.mean(overlaps) > 0.9
    questions = [(q, n) for n, p in enumerate(read_squad_paragraphs()) for q in p.questions[:1]]

    def first_hits(encoder: SpladeEncoder, docs: list) -> int:
        queries = encoder.encode_queries([q for q, _ in questions])
        hits = 0
        for query, (_, n) in zip(queries, questions, strict=True):
            scores = [d.dot(query) for d in docs]
            hits += int(np.argmax(scores) == n)
        return hits

    assert first_hits(int8, got) >= first_hits(splade, ref) - 2

    def no_quantize(*args, **kwargs):
        raise AssertionError("quantised again")

    import onnxruntime.quantization

    monkeypatch.setattr(onnxruntime.quantization, "quantize_dynamic", no_quantize)
    again = SpladeEncoder(
        str(lexical_splade_path), device="cpu", backend="onnx-int8", cache_folder=tmp_path
    )
    assert again._forward.path == int8._forward.path

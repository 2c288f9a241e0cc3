"""`dtype="auto"` on a CPU: SPLADE in bf16 where the CPU computes bf16 natively, float32
elsewhere; the ONNX graph and the other models stay float32. (The rest of the suite pins
float32, see conftest.py; here the CPU's answer is faked both ways.)"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch

from rag_splade.encoders import device
from rag_splade.encoders.dense import DenseEncoder
from rag_splade.encoders.splade import SpladeEncoder
from rag_splade.sample import sample_texts


def real_flag_reader(tmp_path: Path, flags: str) -> str | None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: fpu sse2 avx2 {flags}\n\n", encoding="utf-8")
    return device.read_native_bf16(cpuinfo)


@pytest.mark.parametrize(
    ("flags", "found"),
    [("avx512f avx512_bf16", "avx512_bf16"), ("amx_tile amx_bf16", "amx_bf16"), ("avx512f", None)],
)
def test_the_cpu_flags_are_read_from_cpuinfo(tmp_path, flags, found) -> None:
    assert real_flag_reader(tmp_path, flags) == found
    assert device.read_native_bf16(tmp_path / "missing") is None


@pytest.mark.parametrize("native", ["amx_bf16", None])
def test_auto_resolves_per_cpu_and_model(monkeypatch, native) -> None:
    monkeypatch.setattr(device, "cpu_native_bf16", lambda: native)
    expected = torch.bfloat16 if native else torch.float32
    assert device.resolve_dtype("auto", "cpu", cpu_bf16=True) == expected
    assert device.resolve_dtype("auto", "cpu") == torch.float32  # a model without the gates
    assert device.resolve_dtype("float32", "cpu", cpu_bf16=True) == torch.float32  # pinned


def test_splade_auto_runs_bf16_on_a_native_cpu(monkeypatch, lexical_splade_path, caplog) -> None:
    monkeypatch.setattr(device, "cpu_native_bf16", lambda: "amx_bf16")
    texts = sample_texts()[:6]
    with caplog.at_level(logging.INFO, logger="rag_splade.encoders.splade"):
        auto = SpladeEncoder(str(lexical_splade_path), device="cpu")
    pinned = SpladeEncoder(str(lexical_splade_path), device="cpu", dtype="float32")
    assert auto.dtype == torch.bfloat16 and pinned.dtype == torch.float32
    assert "runs in bfloat16 on the CPU (native bf16: amx_bf16)" in caplog.text
    assert auto.fingerprint == pinned.fingerprint  # the index sees one model either way
    for a, b in zip(auto.encode_documents(texts), pinned.encode_documents(texts), strict=True):
        shared = np.intersect1d(a.indices, b.indices)
        assert len(shared) >= 0.9 * len(b)  # the same terms, near enough
        cosine = a.dot(b) / np.sqrt(a.dot(a) * b.dot(b))
        assert cosine > 0.99


def test_onnx_and_dense_stay_float32_under_auto(monkeypatch, lexical_dense_path) -> None:
    monkeypatch.setattr(device, "cpu_native_bf16", lambda: "amx_bf16")
    assert DenseEncoder(str(lexical_dense_path), device="cpu").dtype == torch.float32
    assert device.resolve_dtype("auto", "cpu", cpu_bf16=False) == torch.float32


def test_the_index_manifest_records_the_sparse_dtype(tmp_path, splade, dense) -> None:
    import json

    from rag_splade import EdgeStore, HybridIndex
    from rag_splade.store.edge import MANIFEST

    with HybridIndex(splade, dense, EdgeStore(tmp_path / "index")):
        pass
    manifest = json.loads((tmp_path / "index" / MANIFEST).read_text())
    assert manifest["sparse_dtype"] == "float32"  # the suite's pinned dtype (conftest.py)

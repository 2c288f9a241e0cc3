from __future__ import annotations

import io

import pytest

from rag_splade import EdgeStore, HybridIndex, QdrantServerStore, Settings
from rag_splade.pipelines.cli import main
from rag_splade.pipelines.demo import run_demo
from rag_splade.sample import sample_documents


def test_settings_read_the_environment(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", "/models/splade")
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", "/models/dense")
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    monkeypatch.setenv("RAG_SPLADE_INDEX_PATH", str(tmp_path / "idx"))
    monkeypatch.setenv("RAG_SPLADE_QDRANT_URL", "http://qdrant:6333")
    monkeypatch.setenv("RAG_SPLADE_QDRANT_API_KEY", "secret")
    monkeypatch.setenv("RAG_SPLADE_COLLECTION", "docs")
    monkeypatch.setenv("RAG_SPLADE_API_KEY", "service-key")
    monkeypatch.setenv("RAG_SPLADE_FUSION", "dbsf")
    monkeypatch.setenv("RAG_SPLADE_TOKENIZER_WORKERS", "4")
    monkeypatch.setenv("RAG_SPLADE_SPARSE_BACKEND", "onnx")
    s = Settings()
    assert (s.sparse_model, s.dense_model, s.device) == ("/models/splade", "/models/dense", "cpu")
    assert s.index_path == tmp_path / "idx" and s.collection == "docs"
    assert s.qdrant_url == "http://qdrant:6333"
    assert s.qdrant_api_key.get_secret_value() == "secret"
    assert s.api_key.get_secret_value() == "service-key"
    assert "secret" not in repr(s)
    assert s.fusion == "dbsf" and s.tokenizer_workers == 4 and s.sparse_backend == "onnx"


def test_settings_reject_bad_values(monkeypatch) -> None:
    monkeypatch.setenv("RAG_SPLADE_FUSION", "sum")
    with pytest.raises(ValueError, match="fusion"):
        Settings()
    monkeypatch.delenv("RAG_SPLADE_FUSION")
    monkeypatch.setenv("RAG_SPLADE_DOCUMENT_MIN_WEIGHT", "0")
    with pytest.raises(ValueError, match="document_min_weight"):
        Settings()


def test_from_settings_uses_edge_by_default(
    tmp_path, lexical_splade_path, lexical_dense_path
) -> None:
    s = Settings(
        sparse_model=str(lexical_splade_path),
        dense_model=str(lexical_dense_path),
        device="cpu",
        index_path=tmp_path / "idx",
        rrf_k=30,
        document_min_weight=0.5,
    )
    with HybridIndex.from_settings(s) as index:
        assert isinstance(index.store, EdgeStore) and index.rrf_k == 30
        assert index.sparse.document_min_weight == 0.5
    assert (tmp_path / "idx" / "rag_splade.json").exists()


def test_from_settings_prefers_a_qdrant_url(
    monkeypatch, lexical_splade_path, lexical_dense_path
) -> None:
    opened = {}
    monkeypatch.setattr(QdrantServerStore, "open", lambda self, spec: opened.update(store=self))
    s = Settings(
        sparse_model=str(lexical_splade_path),
        dense_model=str(lexical_dense_path),
        device="cpu",
        qdrant_url="http://127.0.0.1:1",
        collection="docs",
    )
    HybridIndex.from_settings(s)
    assert opened["store"].url == "http://127.0.0.1:1" and opened["store"].collection == "docs"


def test_demo_prints_explained_hits(tmp_path, lexical_splade_path, lexical_dense_path) -> None:
    s = Settings(
        sparse_model=str(lexical_splade_path),
        dense_model=str(lexical_dense_path),
        device="cpu",
        index_path=tmp_path / "demo",
    )
    out = io.StringIO()
    count = run_demo(s, queries=["石油の主成分は何か。"], out=out)
    text = out.getvalue()
    assert count == len(sample_documents()) == 64
    assert "Q: 石油の主成分は何か。" in text and "matched:" in text and "【石油】" in text
    assert "[1] 出典: 石油" in text  # the LLM context block cites the top hit
    # running again reuses the index: re-adding replaces, nothing doubles
    assert run_demo(s, queries=["石油"], out=io.StringIO()) == 64


def test_cli_demo_and_tiny_models(tmp_path, monkeypatch, capsys) -> None:
    assert main(["tiny-models", str(tmp_path / "m")]) == 0
    assert "RAG_SPLADE_SPARSE_MODEL=" in capsys.readouterr().out
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(tmp_path / "m" / "splade"))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(tmp_path / "m" / "dense"))
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    assert (
        main(["demo", "--index-path", str(tmp_path / "i"), "--query", "梅雨前線", "--top-k", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Q: 梅雨前線" in out and "2. " in out and "3. " not in out.split("LLM context")[0]

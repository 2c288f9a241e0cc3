from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from rag_splade import EdgeStore, HybridIndex, QdrantServerStore, Settings
from rag_splade.pipelines.cli import main
from rag_splade.pipelines.demo import run_demo
from rag_splade.sample import sample_documents


def test_settings_read_the_environment(monkeypatch, tmp_path) -> None:
    for name in ("splade", "dense"):
        (tmp_path / "models" / name).mkdir(parents=True)
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(tmp_path / "models" / "splade"))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(tmp_path / "models" / "dense"))
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
    models = str(tmp_path / "models")
    assert (s.sparse_model, s.dense_model, s.device) == (
        f"{models}/splade",
        f"{models}/dense",
        "cpu",
    )
    assert s.index_path == tmp_path / "idx" and s.collection == "docs"
    assert s.qdrant_url == "http://qdrant:6333"
    assert s.qdrant_api_key.get_secret_value() == "secret"
    assert s.api_key.get_secret_value() == "service-key"
    assert "secret" not in repr(s)
    assert s.fusion == "dbsf" and s.tokenizer_workers == 4 and s.sparse_backend == "onnx"


@pytest.fixture
def in_folder(tmp_path, monkeypatch) -> Path:
    """`tmp_path` as the working directory and `$PWD`, with `models/tiny/{splade,dense}`."""
    for name in ("splade", "dense"):
        (tmp_path / "models" / "tiny" / name).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))
    for name in ("SPARSE_MODEL", "DENSE_MODEL", "INDEX_PATH", "QDRANT_URL", "RERANK_MODEL"):
        monkeypatch.delenv(f"RAG_SPLADE_{name}", raising=False)
    return tmp_path


def test_local_model_paths_are_made_absolute(in_folder, monkeypatch) -> None:
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", "./models/tiny/splade")
    monkeypatch.setenv("RAG_SPLADE_RERANK_MODEL", "models/tiny/dense")  # exists: local
    s = Settings(dense_model="../" + in_folder.name + "/models/tiny/dense")
    assert s.sparse_model == str(in_folder / "models" / "tiny" / "splade")
    assert s.dense_model == s.rerank_model == str(in_folder / "models" / "tiny" / "dense")
    assert s.index_path == in_folder / "data" / "index"  # the default, absolute too
    # A Jupyter kernel runs in notebooks/: paths the user gave are still found from $PWD.
    (in_folder / "notebooks").mkdir()
    monkeypatch.chdir(in_folder / "notebooks")
    assert Settings().sparse_model == str(in_folder / "models" / "tiny" / "splade")
    # Hub ids stay hub ids.
    assert Settings(sparse_model="hotchpotch/japanese-splade-v2").sparse_model == (
        "hotchpotch/japanese-splade-v2"
    )


@pytest.mark.parametrize(
    "model", ["./models/typo", "../typo", "~/rag-splade-no-such-model", "models/tiny/typo", "/nope"]
)
def test_a_missing_local_model_is_not_found(in_folder, model) -> None:
    expected = Path(os.path.normpath(Path(model).expanduser()))
    if not expected.is_absolute():
        expected = Path(os.path.normpath(in_folder / expected))
    with pytest.raises(ValueError, match=f"sparse_model\n.*not found: {expected}"):
        Settings(sparse_model=model)


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
    # the query's 8 strongest content words, however many function words outweigh them
    [shown] = [line for line in text.splitlines() if line.startswith("  query terms: ")]
    with HybridIndex.from_settings(s) as index:
        content = [
            t for t in index.explain_query("石油の主成分は何か。", 1000) if not t.function_word
        ]
    assert len(content) >= 8
    assert shown.removeprefix("  query terms: ").count(", ") == 8 - 1
    assert shown.split(": ", 1)[1].split(", ")[0].startswith(content[0].term)
    # running again reuses the index: re-adding replaces, nothing doubles
    assert run_demo(s, queries=["石油"], out=io.StringIO()) == 64


def test_cli_demo_and_tiny_models(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["tiny-models", "m"]) == 0  # a relative folder: printed absolute
    assert capsys.readouterr().out.splitlines() == [
        f"RAG_SPLADE_SPARSE_MODEL={tmp_path / 'm' / 'splade'}",
        f"RAG_SPLADE_DENSE_MODEL={tmp_path / 'm' / 'dense'}",
    ]
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(tmp_path / "m" / "splade"))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(tmp_path / "m" / "dense"))
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    assert (
        main(["demo", "--index-path", str(tmp_path / "i"), "--query", "梅雨前線", "--top-k", "2"])
        == 0
    )
    out = capsys.readouterr().out
    assert "Q: 梅雨前線" in out and "2. " in out and "3. " not in out.split("LLM context")[0]
    assert out.count("rankings and scores are meaningless") == 2  # tiny models say so


def test_demo_on_other_models_has_no_tiny_note(tmp_path, lexical_splade_path, lexical_dense_path):
    s = Settings(
        sparse_model=str(lexical_splade_path),
        dense_model=str(lexical_dense_path),
        device="cpu",
        index_path=tmp_path / "demo",
    )
    out = io.StringIO()
    run_demo(s, queries=["石油"], out=out)
    assert "meaningless" not in out.getvalue()


def test_cli_bad_model_path_is_one_line(in_folder, monkeypatch, capsys) -> None:
    """The issue's reproduction: a relative model path run from a folder that lacks it."""
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", "./models/typo/splade")
    from rag_splade.sample import sample_path

    evaluate = ["eval", str(sample_path()), "--runs", "sparse", "--output-dir", "out"]
    for argv in (["search", "山"], ["demo"], ["ingest", str(in_folder)], evaluate):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == (
            f"rag-splade {argv[0]}: sparse_model (RAG_SPLADE_SPARSE_MODEL): "
            f"not found: {in_folder / 'models' / 'typo' / 'splade'}"
        )
    assert not (in_folder / "data").exists() and not (in_folder / "out").exists()


def test_cli_without_hub_access_is_one_line_with_the_fix(in_folder, monkeypatch, capsys) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # no probe of the network
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", "rag-splade-tests/not-cached")
    assert main(["demo", "--index-path", str(in_folder / "i")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("rag-splade demo: RAG_SPLADE_SPARSE_MODEL=rag-splade-tests/not-cached")
    assert "cannot be reached" in err and "make demo-offline" in err
    assert not (in_folder / "i").exists()


def test_a_folder_that_is_not_a_model(in_folder, capsys) -> None:
    from rag_splade.factories import ModelUnavailableError, encoders_from_settings

    s = Settings(sparse_model="./models/tiny/splade", device="cpu")
    with pytest.raises(ModelUnavailableError, match=r"RAG_SPLADE_SPARSE_MODEL=.*splade: .*folder"):
        encoders_from_settings(s)
    with pytest.raises(ValueError, match="device must be one of"):  # options first, as such
        encoders_from_settings(Settings(sparse_model="./models/tiny/splade", device="gpu0"))


def test_search_never_creates_an_index(in_folder, capsys) -> None:
    missing = in_folder / "typo-index"
    assert main(["search", "山", "--index-path", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"rag-splade search: no index at {missing}; build it with")
    assert not missing.exists()

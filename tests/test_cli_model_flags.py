"""`ingest` and `search` take the model flags that `eval` has (no RAG_SPLADE_* needed)."""

from __future__ import annotations

import json

from rag_splade.pipelines.cli import main


def test_ingest_and_search_with_model_flags(
    tmp_path, monkeypatch, lexical_splade_path, lexical_dense_path, capsys
) -> None:
    for name in ("SPARSE_MODEL", "DENSE_MODEL", "QDRANT_URL", "RERANK_MODEL"):
        monkeypatch.delenv(f"RAG_SPLADE_{name}", raising=False)
    (tmp_path / "a.txt").write_text("小笠原諸島は東京都に属する島々です。", encoding="utf-8")
    models = [
        "--sparse-model", str(lexical_splade_path), "--dense-model", str(lexical_dense_path),
        "--device", "cpu", "--index-path", str(tmp_path / "index"),
    ]  # fmt: skip
    assert main(["ingest", str(tmp_path / "a.txt"), *models, "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["search", "小笠原諸島", *models, "--json"]) == 0
    [hit] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert hit["text"] == "小笠原諸島は東京都に属する島々です。"

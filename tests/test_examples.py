"""The example scripts leave the user's own index and working folder alone."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

from rag_splade import HybridIndex, Settings
from rag_splade.documents import Document

pytest.importorskip("llama_index.core")

SCRIPT = Path(__file__).parents[1] / "examples" / "llama_index_rag.py"


def _run(monkeypatch, *argv: str) -> int:
    """Run the example as `python examples/llama_index_rag.py ARGV`; its exit code."""
    monkeypatch.setattr("sys.argv", [str(SCRIPT), *argv])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    return int(exit_.value.code or 0)


def test_example_uses_a_temporary_index(
    tmp_path, monkeypatch, capsys, lexical_splade_path, lexical_dense_path
) -> None:
    """The issue's reproduction: the example wrote 64 documents into the configured index
    (and replaced same-id ones); with nothing configured it left ./data/index behind."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    monkeypatch.delenv("RAG_SPLADE_QDRANT_URL", raising=False)
    mine = tmp_path / "my-index"
    monkeypatch.setenv("RAG_SPLADE_INDEX_PATH", str(mine))
    with HybridIndex.from_settings(Settings()) as index:
        index.add([Document("梅雨-0", "私の文書。梅雨の話。")])
        before = index.documents()

    assert _run(monkeypatch, "石油の主成分は何か。") == 0
    out = capsys.readouterr().out
    assert "Q: 石油の主成分は何か。" in out and "[1] 石油-" in out and "[3] " in out
    with HybridIndex.from_settings(Settings()) as index:
        assert index.documents() == before  # untouched
        assert index.get("梅雨-0")[0].text == "私の文書。梅雨の話。"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my-index"]  # no ./data/index

    kept = tmp_path / "kept"
    assert _run(monkeypatch, "石油の主成分は何か。", "--index-path", str(kept)) == 0
    with HybridIndex.from_settings(Settings(index_path=kept)) as index:
        assert len(index.documents()) == 64


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("RAG_SPLADE_SPARSE_MODEL", "nobody/no-such-splade", "nobody/no-such-splade"),
        ("RAG_SPLADE_DENSE_MODEL", "nobody/no-such-dense", "nobody/no-such-dense"),
        ("RAG_SPLADE_BATCH_SIZE", "0", "RAG_SPLADE_BATCH_SIZE"),
    ],
)
def test_example_set_up_problems_are_one_line(
    tmp_path,
    monkeypatch,
    capsys,
    lexical_splade_path,
    lexical_dense_path,
    variable,
    value,
    expected,
) -> None:
    """Offline with a hub id (or with a bad setting) the example says what is wrong in one
    line and exits 2, as the command line does, instead of a traceback."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("RAG_SPLADE_SPARSE_MODEL", str(lexical_splade_path))
    monkeypatch.setenv("RAG_SPLADE_DENSE_MODEL", str(lexical_dense_path))
    monkeypatch.setenv("RAG_SPLADE_DEVICE", "cpu")
    monkeypatch.setenv(variable, value)
    assert _run(monkeypatch) == 2
    captured = capsys.readouterr()
    # (transformers may draw its weight-loading bars first: the example is a user's script)
    lines = [x for x in captured.err.splitlines() if x.strip() and "it/s]" not in x]
    assert len(lines) == 1, captured.err
    [line] = lines
    assert line.startswith("llama_index_rag.py: ") and expected in line
    assert "Traceback" not in captured.err


def test_example_help_names_its_settings_and_the_mock_llm(monkeypatch, capsys) -> None:
    assert _run(monkeypatch, "--help") == 0
    out = " ".join(capsys.readouterr().out.split())
    for name in ("RAG_SPLADE_SPARSE_MODEL", "RAG_SPLADE_DENSE_MODEL", "RAG_SPLADE_DEVICE"):
        assert name in out
    assert "RAG_SPLADE_INDEX_PATH and RAG_SPLADE_QDRANT_URL are NOT used" in out
    assert "MockLLM" in out and "placeholder text" in out


def test_the_mcp_agent_example_answers_with_a_citation(
    tmp_path, lexical_splade_path, lexical_dense_path
) -> None:
    """A LlamaIndex FunctionAgent (scripted mock LLM) calls the search tool of a real
    `rag-splade mcp` subprocess and cites the passage it got back; run as a user runs it."""
    import os
    import subprocess
    import sys

    pytest.importorskip("mcp")
    env = {
        **os.environ,
        "RAG_SPLADE_SPARSE_MODEL": str(lexical_splade_path),
        "RAG_SPLADE_DENSE_MODEL": str(lexical_dense_path),
        "RAG_SPLADE_DEVICE": "cpu",
    }
    script = SCRIPT.with_name("mcp_agent.py")
    done = subprocess.run(
        [sys.executable, str(script), "石油の主成分は何か。"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "Q: 石油の主成分は何か。" in done.stdout
    answer = done.stdout.split("A: ", 1)[1]
    assert "[1]（出典: 石油）" in answer  # the lexical model finds the petroleum passage
    assert list(tmp_path.iterdir()) == []  # the temporary index is gone

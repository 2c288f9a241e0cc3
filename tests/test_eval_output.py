"""`rag-splade eval` output: the report's date and versions, and progress on stderr (a
moving line on a terminal, plain lines elsewhere, nothing with --quiet)."""

from __future__ import annotations

import datetime
import importlib.metadata
import io
import json
import logging
import sys
from pathlib import Path

import pytest

from rag_splade.pipelines.cli import main
from rag_splade.pipelines.evaluate.progress import stage_progress
from rag_splade.sample import sample_path

pytest.importorskip("ranx")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _eval(tmp_path: Path, *flags: str) -> int:
    argv = ["eval", str(sample_path()), "--runs", "bm25", "--latency-queries", "1"]
    return main([*argv, "--output-dir", str(tmp_path / "out"), *flags])


def test_results_carry_date_and_versions(tmp_path, capsys) -> None:
    before = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    assert _eval(tmp_path, "--quiet") == 0
    result = json.loads((tmp_path / "out" / "results.json").read_text(encoding="utf-8"))
    created = datetime.datetime.fromisoformat(result["created"])
    assert created.tzinfo is not None and before <= created
    versions = result["versions"]
    assert versions["rag-splade"] == importlib.metadata.version("rag-splade")
    assert versions["ranx"] == importlib.metadata.version("ranx")
    assert versions["python"] == ".".join(map(str, sys.version_info[:3]))
    markdown = (tmp_path / "out" / "results.md").read_text(encoding="utf-8")
    assert f"Run {result['created']}: rag-splade {versions['rag-splade']}" in markdown
    assert capsys.readouterr().err.startswith("\nwrote ")  # --quiet: no progress


def test_progress_is_plain_lines_off_a_terminal(tmp_path, capsys) -> None:
    assert _eval(tmp_path) == 0
    err = capsys.readouterr().err
    assert "BM25 index of" in err and "INFO" not in err  # said once, plainly
    assert err.count("BM25 index of") == 1 and "\r" not in err


def test_progress_on_a_terminal() -> None:
    terminal = Terminal()
    log = logging.getLogger("rag_splade.tests.progress.stage")
    with stage_progress("rag_splade.tests.progress", stream=terminal):
        log.info("indexed 64 documents")
        log.debug("not shown")
    shown = terminal.getvalue()
    assert "eval [00:0" in shown and "indexed 64 documents" in shown and "\r" in shown
    assert "not shown" not in shown
    quiet = Terminal()
    with stage_progress("rag_splade.tests.progress", enabled=False, stream=quiet):
        log.info("hidden")
    assert quiet.getvalue() == ""
    assert logging.getLogger("rag_splade.tests.progress").handlers == []  # restored

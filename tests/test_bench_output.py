"""What `rag-splade bench` prints around its tables: the tiny-model note, the progress bar
(only on a terminal), integer counts. No timing is asserted."""

from __future__ import annotations

import argparse
import io
import sys
from pathlib import Path

import pytest

from rag_splade.pipelines.benchmark import add_arguments, run
from rag_splade.pipelines.benchmark.cli import TINY_NOTE


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def bench_models(
    tmp_path_factory: pytest.TempPathFactory,
    random_splade_path: Path,
    random_dense_path: Path,
    lexical_splade_path: Path,
) -> Path:
    """The session's tiny models under the names `--tiny` gives them."""
    folder = tmp_path_factory.mktemp("bench-models")
    (folder / "splade-tiny").symlink_to(random_splade_path, target_is_directory=True)
    (folder / "dense-tiny").symlink_to(random_dense_path, target_is_directory=True)
    (folder / "splade-lexical").symlink_to(lexical_splade_path, target_is_directory=True)
    return folder


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _size_run(models: Path) -> argparse.Namespace:
    return parse(["--tiny", "--sections=size", "--prune-k=16", f"--model-dir={models}"])


def test_tiny_runs_say_they_measure_no_speed(bench_models, capsys, tmp_path) -> None:
    args = _size_run(bench_models)
    args.json_out = str(tmp_path / "bench.json")
    assert run(args) == 0
    out = capsys.readouterr()
    assert TINY_NOTE in out.err and f"**{TINY_NOTE}**" in out.out
    assert "do not measure speed" in TINY_NOTE
    assert TINY_NOTE in Path(args.json_out).read_text(encoding="utf-8")


def test_progress_bar_on_a_terminal_only(bench_models, capsys, monkeypatch) -> None:
    assert run(_size_run(bench_models)) == 0  # capsys: not a terminal
    err = capsys.readouterr().err
    assert "[bench] size ..." in err and "section/s" not in err and "1/1" not in err

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert run(_size_run(bench_models)) == 0
    shown = terminal.getvalue()
    assert "bench: 100%" in shown and "1/1" in shown and "[bench] size" not in shown


def test_counts_print_as_integers() -> None:
    from rag_splade.pipelines.benchmark.common import Row, Section, fmt

    assert [fmt(v) for v in (12.0, 12, 200.0, 12_000.0, 0.0)] == ["12", "12", "200", "12,000", "0"]
    assert [fmt(v) for v in (12.5, 1.234, float("nan"), None)] == ["12.5", "1.23", "nan", "—"]
    section = Section("s", "S", [("queries", "queries")], [Row("a", {"queries": 12.0})])
    assert "| a | 12 | ok |" in section.to_markdown()

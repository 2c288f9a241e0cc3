"""ranx's numba compile stays quiet: no NumbaTypeSafetyWarning (with its ANSI escapes) on
a fresh compile, and the compiled metrics land in numba's cache for the next process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

pytest.importorskip("ranx")

from numba.core.errors import NumbaTypeSafetyWarning

from rag_splade.pipelines.evaluate.metrics import _quiet_numba

SCORE = (
    "from rag_splade.pipelines.evaluate.metrics import compare_runs\n"
    "qrels = {'q1': {'d1': 1}, 'q2': {'d2': 1}}\n"
    "runs = {'a': {'q1': {'d1': 2.0, 'd2': 1.0}, 'q2': {'d1': 2.0, 'd2': 1.0}},\n"
    "        'b': {'q1': {'d2': 2.0, 'd1': 1.0}, 'q2': {'d2': 2.0, 'd1': 1.0}}}\n"
    "print(compare_runs(qrels, runs, 'a')['b']['scores']['mrr@10'])\n"
)


def test_the_type_safety_warning_is_silenced_and_others_are_not() -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with _quiet_numba():
            warnings.warn("unsafe cast from uint64 to int64", NumbaTypeSafetyWarning, stacklevel=1)
            warnings.warn("something else", UserWarning, stacklevel=1)
        warnings.warn("after the block", NumbaTypeSafetyWarning, stacklevel=1)
    # numba's own warnings wrap their text in ANSI bold: compare the words only
    assert [(w.category, re.sub(r"\x1b\[[0-9;]*m", "", str(w.message))) for w in seen] == [
        (UserWarning, "something else"),
        (NumbaTypeSafetyWarning, "after the block"),
    ]


@pytest.mark.slow  # a cold numba compile of ranx's metrics: tens of seconds of CPU
def test_a_fresh_compile_prints_no_warning_and_is_cached(tmp_path: Path) -> None:
    cache = tmp_path / "numba-cache"
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache), "PYTHONWARNINGS": "default"}
    out = subprocess.run(
        [sys.executable, "-c", SCORE], capture_output=True, text=True, env=env, timeout=1800
    )
    assert out.returncode == 0, out.stderr
    assert float(out.stdout.strip()) == pytest.approx(0.75)
    assert "NumbaTypeSafetyWarning" not in out.stderr, out.stderr
    assert "\x1b[" not in out.stderr, out.stderr
    cached = sorted(p.name for p in cache.rglob("*.nbi"))
    assert any(name.startswith("ndcg._ndcg_parallel") for name in cached), cached

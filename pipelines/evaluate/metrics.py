"""Metrics and paired significance tests, computed by `ranx`.

A run is `{query_id: {doc_id: score}}`; higher scores rank first. Queries a run has no
result for score 0 on every metric.

ranx's metrics are numba functions compiled on their first call (`cache=True`): the
first evaluation on a machine compiles them, later processes load numba's cache (next to
ranx, else under `~/.cache/numba`, or `NUMBA_CACHE_DIR`). What is left each process is
numba compiling its typed containers, which it does not cache.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, SupportsFloat, TypedDict

from rag_splade.checks import check_choice

DEFAULT_METRICS = ("ndcg@10", "recall@10", "recall@100", "mrr@10")
STAT_TESTS = ("student", "fisher", "tukey")
EXTRAS_HINT = 'pip install "rag-splade[eval]"'

RunDict = Mapping[str, Mapping[str, float]]


class RunComparison(TypedDict):
    """A run's mean `scores` per metric and its `p_values` against the baseline."""

    scores: dict[str, float]
    p_values: dict[str, float | None]


def _ranx() -> Any:
    try:
        import ranx
    except ImportError as e:
        raise ImportError(f"evaluation metrics need ranx: {EXTRAS_HINT}") from e
    return ranx


@contextmanager
def _quiet_numba() -> Iterator[None]:
    """Silence numba's NumbaTypeSafetyWarning while ranx compiles.

    ranx's parallel nDCG stores a score at a `prange` index (uint64) into an int64-indexed
    array: numba warns of an unsafe cast, in ANSI colours, on every fresh compile. The
    index is a query's position, far below 2**63, so the cast loses nothing.
    """
    from numba.core.errors import NumbaTypeSafetyWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NumbaTypeSafetyWarning)
        yield


def _qrels(qrels: Mapping[str, Mapping[str, int]]) -> Any:
    return _ranx().Qrels({q: dict(docs) for q, docs in qrels.items()})


def _run(run: RunDict, qrels: Mapping[str, Mapping[str, int]], name: str) -> Any:
    # ranx wants every query of the qrels in the run; a query with no hits gets a
    # single zero-relevance placeholder, which scores 0 on every metric.
    filled: dict[str, dict[str, float]] = {}
    for qid in qrels:
        docs = {str(d): float(s) for d, s in run.get(qid, {}).items()}
        filled[qid] = docs or {"\x00no-result": 0.0}
    return _ranx().Run(filled, name=name)


def check_metrics(metrics: Sequence[str]) -> list[str]:
    """Validate metric names against ranx's list (e.g. `ndcg@10`, `recall@100`, `mrr@10`)."""
    from ranx.metrics import metric_switch

    out = []
    for m in metrics:
        base = m.split("@", 1)[0]
        try:
            metric_switch(base)
        except (ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"unknown metric {m!r}: use ranx names such as ndcg@10, recall@100, mrr@10, "
                "map@100, precision@5, hit_rate@10"
            ) from e
        out.append(m)
    if not out:
        raise ValueError("at least one metric is needed")
    return out


def compute_metrics(
    qrels: Mapping[str, Mapping[str, int]],
    run: RunDict,
    metrics: Sequence[str] = DEFAULT_METRICS,
) -> dict[str, float]:
    """Mean of each metric over the queries of `qrels`.

    Example:
        >>> compute_metrics({"q": {"d1": 1}}, {"q": {"d0": 2.0, "d1": 1.0}}, ["mrr@10"])
        {'mrr@10': 0.5}
    """
    metrics = check_metrics(metrics)
    ranx = _ranx()
    with _quiet_numba():
        scores = ranx.evaluate(_qrels(qrels), _run(run, qrels, "run"), list(metrics))
    if len(metrics) == 1:
        scores = {metrics[0]: scores}
    return {m: float(scores[m]) for m in metrics}


def _p_value(value: SupportsFloat) -> float | None:
    p = float(value)
    return None if math.isnan(p) else p


def compare_runs(
    qrels: Mapping[str, Mapping[str, int]],
    runs: Mapping[str, RunDict],
    baseline: str,
    metrics: Sequence[str] = DEFAULT_METRICS,
    *,
    stat_test: str = "student",
    n_permutations: int = 1000,
    seed: int = 42,
) -> dict[str, RunComparison]:
    """Scores of every run and the p-value of its difference from `baseline`.

    Args:
        stat_test: `student` (paired t-test), `fisher` (randomization test, paired) or
            `tukey` (Tukey's HSD over all runs).

    Returns:
        `{run: {"scores": {metric: mean}, "p_values": {metric: p}}}`; the baseline's own
        p-values are empty. A p-value is None where the test is undefined (the two runs
        score the same on every query).
    """
    check_choice("stat_test", stat_test, STAT_TESTS)
    if baseline not in runs:
        raise ValueError(f"baseline {baseline!r} is not one of the runs {sorted(runs)}")
    metrics = check_metrics(metrics)
    ranx = _ranx()
    names = list(runs)
    if len(names) < 2:
        only = compute_metrics(qrels, runs[baseline], metrics)
        return {baseline: {"scores": only, "p_values": {}}}
    with _quiet_numba():
        report = ranx.compare(
            _qrels(qrels),
            [_run(runs[n], qrels, n) for n in names],
            list(metrics),
            stat_test=stat_test,
            n_permutations=n_permutations,
            random_seed=seed,
            rounding_digits=12,
        )
    table = report.to_dict()
    out: dict[str, RunComparison] = {}
    for n in names:
        entry = table[n]
        p_values = {} if n == baseline else entry["comparisons"][baseline]
        out[n] = {
            "scores": {m: float(entry["scores"][m]) for m in metrics},
            "p_values": {m: _p_value(p_values[m]) for m in p_values},
        }
    return out

"""The evaluation harness: retrieval datasets, runs, ranx metrics, reports.

Example:
    >>> from pipelines.evaluate import evaluate, load_dataset  # doctest: +SKIP
    >>> ds = load_dataset("../data/jsquad", split="valid")  # doctest: +SKIP
    >>> report = evaluate(Settings(), ds, runs="bm25,sparse,dense,hybrid-rrf")  # doctest: +SKIP
    >>> print(report.to_markdown()); report.plot("results.png")  # doctest: +SKIP
"""

from __future__ import annotations

from pipelines.evaluate.cli import add_arguments, run
from pipelines.evaluate.datasets import (
    Passage,
    RetrievalDataset,
    load_dataset,
    load_squad,
    write_beir,
)
from pipelines.evaluate.harness import evaluate
from pipelines.evaluate.metrics import DEFAULT_METRICS, compare_runs, compute_metrics
from pipelines.evaluate.report import EvaluationReport, RunResult
from pipelines.evaluate.runs import DEFAULT_RUNS, RunSpec, best_chunk_per_document

__all__ = [
    "DEFAULT_METRICS",
    "DEFAULT_RUNS",
    "EvaluationReport",
    "Passage",
    "RetrievalDataset",
    "RunResult",
    "RunSpec",
    "add_arguments",
    "best_chunk_per_document",
    "compare_runs",
    "compute_metrics",
    "evaluate",
    "load_dataset",
    "load_squad",
    "run",
    "write_beir",
]

"""The evaluation harness: retrieval datasets, runs, ranx metrics, reports.

Example:
    >>> from rag_splade.pipelines.evaluate import evaluate, load_dataset  # doctest: +SKIP
    >>> ds = load_dataset("../data/jsquad", split="valid")  # doctest: +SKIP
    >>> report = evaluate(Settings(), ds, runs="bm25,sparse,dense,hybrid-rrf")  # doctest: +SKIP
    >>> print(report.to_markdown()); report.plot("results.png")  # doctest: +SKIP
"""

from __future__ import annotations

from .cli import add_arguments, run
from .datasets import (
    Passage,
    RetrievalDataset,
    load_dataset,
    load_squad,
    write_beir,
)
from .harness import evaluate
from .metrics import DEFAULT_METRICS, compare_runs, compute_metrics
from .report import EvaluationReport, RunResult
from .runs import DEFAULT_RUNS, RunSpec, best_chunk_per_document

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

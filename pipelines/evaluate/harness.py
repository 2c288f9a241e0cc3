"""`evaluate`: index a dataset's corpus, run every configuration, score and compare them."""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rag_splade.checks import check_choice, check_positive_int

from .datasets import RetrievalDataset
from .metrics import DEFAULT_METRICS, STAT_TESTS, check_metrics, compare_runs
from .report import EvaluationReport, RunResult
from .runs import (
    RunOutput,
    RunSpec,
    chunk_depth,
    execute_bm25,
    execute_index_runs,
    parse_runs,
)

if TYPE_CHECKING:
    from rag_splade import HybridIndex, Settings

logger = logging.getLogger(__name__)

FINGERPRINT = "evaluate_corpus.json"


def default_baseline(names: Sequence[str]) -> str:
    """`hybrid-rrf` when it runs, else `bm25`, else the first run."""
    for candidate in ("hybrid-rrf", "bm25"):
        if candidate in names:
            return candidate
    return names[0]


def evaluate(
    target: HybridIndex | Settings | None,
    dataset: RetrievalDataset,
    *,
    runs: Sequence[str] | str = ("bm25", "sparse", "dense", "hybrid-rrf", "hybrid-dbsf"),
    rrf_sweep: Sequence[float] = (),
    metrics: Sequence[str] = DEFAULT_METRICS,
    baseline: str | None = None,
    stat_test: str = "student",
    alpha: float = 0.05,
    depth: int = 100,
    include_title: bool = True,
    bm25_tokens: str = "lemma",
    latency_queries: int = 100,
    index_path: str | Path | None = None,
    ingest: bool = True,
    rerank: bool = False,
) -> EvaluationReport:
    """Evaluate retrieval runs on `dataset`, at document level.

    Args:
        target: a `Settings` (models, device, batch size; the index is built in a
            temporary folder, or in `index_path`), a ready `HybridIndex` (the corpus is
            added to it when `ingest`), or None (`Settings()` from `RAG_SPLADE_*`). With
            only the `bm25` run no model is loaded and `target` is not used.
        runs: run names (see `rag_splade.pipelines.evaluate.runs`), a list or comma-separated.
        rrf_sweep: extra sparse:dense RRF weight ratios, e.g. `(0.25, 0.5, 2, 4)`.
        metrics: ranx metric names.
        baseline: the run the others are tested against (default `hybrid-rrf`, else
            `bm25`, else the first run).
        stat_test: `student` (paired t-test), `fisher` (randomization) or `tukey`.
        depth: documents ranked per query (Recall@100 needs 100).
        include_title: index and BM25-score `title + "\\n" + text` (BEIR's convention).
        bm25_tokens: `lemma` or `surface` MeCab content words for the BM25 run.
        latency_queries: queries timed one at a time per run (0: no latency).
        index_path: where a `Settings` target builds its Edge index; an existing index
            there is reused only when it was built from the same corpus and models.
        ingest: add the corpus to a `HybridIndex` target (upserts by document id).
        rerank: add the `+rerank` variant of every index run (the reranker of the target,
            or of `Settings.rerank_model`); each `+rerank` run is also tested against the
            same run without reranking.

    Example:
        >>> ds = load_dataset("rag_splade/data/jsquad_sample.json")  # doctest: +SKIP
        >>> print(evaluate(Settings(), ds, runs="bm25,hybrid-rrf").to_markdown())  # doctest: +SKIP
    """
    specs = parse_runs(runs, rrf_sweep, rerank=rerank)
    names = [s.name for s in specs]
    reranked = [s.name for s in specs if s.rerank]
    if reranked and not _has_reranker(target):
        raise ValueError(
            f"runs {reranked} need a reranker: set RAG_SPLADE_RERANK_MODEL (or --rerank-model), "
            "or pass a HybridIndex built with reranker=..."
        )
    metrics = check_metrics(metrics)
    baseline = baseline or default_baseline(names)
    if baseline not in names:
        raise ValueError(f"baseline {baseline!r} is not one of the runs {names}")
    check_choice("stat_test", stat_test, STAT_TESTS)
    check_positive_int("depth", depth)
    if latency_queries < 0:
        raise ValueError(f"latency_queries must be >= 0, got {latency_queries!r}")
    if not dataset.queries:
        raise ValueError(f"dataset {dataset.name!r} has no queries with relevant documents")

    outputs: dict[str, RunOutput] = {}
    info: dict[str, Any] = dict(dataset.summary())
    config: dict[str, Any] = {
        "depth": depth,
        "include_title": include_title,
        "bm25_tokens": bm25_tokens,
        "latency_queries": latency_queries,
    }
    docs = dataset.documents(include_title)
    if "bm25" in names:
        from .bm25 import BM25Retriever

        started = time.perf_counter()
        bm25 = BM25Retriever({d.id: d.text for d in docs}, tokens=bm25_tokens)
        logger.info(
            "BM25 index of %d documents in %.1f s", len(docs), time.perf_counter() - started
        )
        outputs["bm25"] = execute_bm25(
            bm25, dataset.queries, depth=depth, latency_queries=latency_queries
        )
    index_specs = [s for s in specs if s.needs_index]
    if index_specs:
        with ExitStack() as stack:
            index = _open_index(
                target, dataset, docs, include_title, index_path, ingest, stack, bool(reranked)
            )
            chunks = index.count()
            info["chunks"] = chunks
            config.update(
                sparse_model=str(index.sparse.model_name),
                dense_model=str(index.dense.model_name),
                rrf_k=index.rrf_k,
            )
            if index.reranker is not None and reranked:
                config.update(
                    rerank_model=str(index.reranker.model_name),
                    rerank_candidates=index.rerank_candidates,
                )
            top_k = chunk_depth(depth, len(docs), chunks)
            started = time.perf_counter()
            for out in execute_index_runs(
                index,
                index_specs,
                dataset.queries,
                depth=depth,
                chunk_top_k=top_k,
                latency_queries=latency_queries,
            ):
                outputs[out.spec.name] = out
            logger.info("index runs done in %.1f s", time.perf_counter() - started)

    ordered = {n: outputs[n].results for n in names}
    compared = compare_runs(dataset.qrels, ordered, baseline, metrics, stat_test=stat_test)
    versus_plain = _versus_without_rerank(specs, ordered, dataset, metrics, stat_test)
    results = [
        RunResult(
            name=n,
            metrics=compared[n]["scores"],
            p_values=compared[n]["p_values"],
            latency=outputs[n].latency(),
            rerank_p_values=versus_plain.get(n, {}),
        )
        for n in names
    ]
    return EvaluationReport(info, list(metrics), baseline, stat_test, alpha, results, config)


def _has_reranker(target: HybridIndex | Settings | None) -> bool:
    from rag_splade import HybridIndex, Settings

    if isinstance(target, HybridIndex):
        return target.reranker is not None
    return bool((target or Settings()).rerank_model)


def _versus_without_rerank(
    specs: Sequence[RunSpec],
    rankings: dict[str, dict[str, dict[str, float]]],
    dataset: RetrievalDataset,
    metrics: Sequence[str],
    stat_test: str,
) -> dict[str, dict[str, float | None]]:
    """Each `+rerank` run's p-values against the same run without reranking (when it ran)."""
    out = {}
    for spec in specs:
        plain = spec.without_rerank
        if plain is None or plain not in rankings:
            continue
        pair = {plain: rankings[plain], spec.name: rankings[spec.name]}
        compared = compare_runs(dataset.qrels, pair, plain, metrics, stat_test=stat_test)
        out[spec.name] = compared[spec.name]["p_values"]
    return out


def _open_index(
    target: HybridIndex | Settings | None,
    dataset: RetrievalDataset,
    docs: list,
    include_title: bool,
    index_path: str | Path | None,
    ingest: bool,
    stack: ExitStack,
    load_reranker: bool,
) -> HybridIndex:
    from rag_splade import HybridIndex, Settings

    if isinstance(target, HybridIndex):
        if ingest:
            _ingest(target, docs)
        return target
    if target is not None and not isinstance(target, Settings):
        raise TypeError(
            f"evaluate() needs a HybridIndex, a Settings or None, got {type(target).__name__}"
        )
    settings = target or Settings()
    if index_path is None:
        index_path = stack.enter_context(tempfile.TemporaryDirectory(prefix="rag-splade-eval-"))
    path = Path(index_path)
    # Evaluation always uses its own embedded Edge index, never a configured server.
    settings = settings.model_copy(update={"index_path": path, "qdrant_url": None})
    logger.info("loading models: sparse=%s dense=%s", settings.sparse_model, settings.dense_model)
    index = stack.enter_context(HybridIndex.from_settings(settings, load_reranker=load_reranker))
    stamp = _fingerprint(docs, settings, include_title)
    stamp_file = path / FINGERPRINT
    existing = index.count()
    if existing and stamp_file.exists() and json.loads(stamp_file.read_text()) == stamp:
        logger.info("reusing the index at %s (%d chunks, same corpus and models)", path, existing)
        return index
    if existing:
        raise ValueError(
            f"the index at {str(path)!r} already holds {existing} chunks that were not built "
            f"from this corpus ({dataset.name}) with these models: use an empty or new "
            "--index-path"
        )
    _ingest(index, docs)
    stamp_file.write_text(json.dumps(stamp, indent=2))
    return index


def _ingest(index: HybridIndex, docs: list) -> None:
    started = time.perf_counter()
    added = index.add(docs)
    index.optimize()
    logger.info(
        "indexed %d documents as %d chunks in %.1f s",
        added.documents,
        added.chunks,
        time.perf_counter() - started,
    )


def _fingerprint(docs: list, settings: Settings, include_title: bool) -> dict[str, Any]:
    digest = hashlib.sha256()
    for d in docs:
        digest.update(d.id.encode() + b"\x00" + d.text.encode() + b"\x01")
    keys = (
        "sparse_model",
        "dense_model",
        "document_max_length",
        "document_top_k",
        "document_min_weight",
        "document_prefix",
        "chunk_overlap_sentences",
        "normalize_text",
    )
    return {
        "corpus_sha256": digest.hexdigest(),
        "documents": len(docs),
        "include_title": include_title,
        **{k: getattr(settings, k) for k in keys},
    }


__all__ = ["RunSpec", "default_baseline", "evaluate"]

"""`rag-splade eval`: the evaluation harness on the command line.

`add_arguments(parser)` declares the flags and `run(args)` runs them; the main CLI
mounts both under its `eval` sub-command.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .datasets import FORMATS
from .metrics import DEFAULT_METRICS, STAT_TESTS
from .progress import stage_progress
from .runs import DEFAULT_RUNS, SWEEP_RATIOS

DESCRIPTION = (
    "Evaluate sparse, dense, hybrid (RRF, DBSF) and BM25 retrieval on a BEIR, TREC or "
    "SQuAD-style dataset: nDCG/Recall/MRR with ranx, significance against a baseline, "
    "per-query latency. Models and device come from RAG_SPLADE_* settings unless given "
    "as flags; the index is a fresh Edge index in a temporary folder unless --index-path."
)


def _floats(text: str) -> list[float]:
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from e


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from e
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the `eval` flags on `parser`."""
    if not parser.description:
        parser.description = DESCRIPTION
    parser.add_argument(
        "dataset",
        help="BEIR folder, folder with corpus.jsonl/queries.jsonl + TREC qrels, "
        "SQuAD-style .json file, or a folder with one <split>*.json SQuAD file (JSQuAD)",
    )
    data = parser.add_argument_group("dataset")
    data.add_argument("--split", default="test", help="qrels split or SQuAD file prefix (test)")
    data.add_argument("--format", choices=FORMATS, default="auto", help="dataset layout (auto)")
    data.add_argument("--qrels", help="explicit qrels file (BEIR TSV or TREC `qid 0 docid rel`)")
    data.add_argument(
        "--limit", type=_non_negative, help="evaluate the first N queries only (quick runs)"
    )
    data.add_argument(
        "--corpus-limit",
        type=_non_negative,
        help="index only the documents judged for the kept queries plus the first M others "
        "(default: the whole corpus; a reduced corpus gives higher, not comparable, scores)",
    )
    data.add_argument(
        "--no-title", action="store_true", help="index the text alone, without the title line"
    )
    runs = parser.add_argument_group("runs and metrics")
    runs.add_argument(
        "--runs",
        default=",".join(DEFAULT_RUNS),
        help="comma-separated: bm25, sparse, dense, hybrid-rrf, hybrid-dbsf, hybrid-rrf-w<r> "
        f"(default {','.join(DEFAULT_RUNS)}); bm25 alone loads no model",
    )
    runs.add_argument(
        "--rrf-sweep",
        nargs="?",
        type=_floats,
        const=list(SWEEP_RATIOS),
        default=[],
        metavar="RATIOS",
        help="add hybrid RRF runs with these sparse:dense weight ratios "
        f"(flag alone: {','.join(f'{r:g}' for r in SWEEP_RATIOS)})",
    )
    runs.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help="ranx metric names")
    runs.add_argument(
        "--baseline", help="run to test the others against (default hybrid-rrf, else bm25)"
    )
    runs.add_argument("--stat-test", choices=STAT_TESTS, default="student")
    runs.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    runs.add_argument("--depth", type=int, default=100, help="documents ranked per query (100)")
    runs.add_argument(
        "--bm25-tokens", choices=("lemma", "surface"), default="lemma", help="MeCab word form"
    )
    runs.add_argument(
        "--latency-queries",
        type=_non_negative,
        default=100,
        help="queries timed one at a time per run (100; 0 = skip)",
    )
    models = parser.add_argument_group("models and index (default: RAG_SPLADE_* settings)")
    models.add_argument("--sparse-model", help="SPLADE model: hub id or local folder")
    models.add_argument("--dense-model", help="dense model: hub id or local folder")
    models.add_argument("--device", help="auto, cpu, cuda, cuda:N, mps")
    models.add_argument("--batch-size", type=int, help="encoder batch size")
    models.add_argument(
        "--rerank",
        action="store_true",
        help="add the +rerank variant of every index run (needs a reranker model)",
    )
    models.add_argument("--rerank-model", help="cross-encoder reranker: hub id or local folder")
    models.add_argument(
        "--rerank-candidates", type=int, help="chunks the reranker reorders per query (50)"
    )
    models.add_argument(
        "--index-path",
        help="build (or reuse, when built from the same corpus and models) the Edge index "
        "here instead of a temporary folder",
    )
    out = parser.add_argument_group("output")
    out.add_argument(
        "--output-dir",
        default="data/eval",
        help="writes results.md, results.json, results.png here (data/eval)",
    )
    out.add_argument(
        "--quiet",
        action="store_true",
        help="no progress on stderr (on a terminal: a line with the elapsed time and stage)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the evaluation the parsed `args` describe; print the table; 0 on success."""

    with stage_progress(__package__ or "", enabled=not args.quiet):
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    from .datasets import load_dataset
    from .harness import evaluate

    dataset = load_dataset(args.dataset, split=args.split, format=args.format, qrels=args.qrels)
    if args.limit is not None or args.corpus_limit is not None:
        dataset = dataset.limit(args.limit, args.corpus_limit)
    names = [n for n in args.runs.split(",") if n.strip()]
    settings = None
    if any(n.strip() != "bm25" for n in names) or args.rrf_sweep:
        from rag_splade import Settings

        overrides = {
            key: value
            for key, value in (
                ("sparse_model", args.sparse_model),
                ("dense_model", args.dense_model),
                ("device", args.device),
                ("batch_size", args.batch_size),
                ("rerank_model", args.rerank_model),
                ("rerank_candidates", args.rerank_candidates),
            )
            if value is not None
        }
        settings = Settings(**overrides)
    report = evaluate(
        settings,
        dataset,
        runs=names,
        rrf_sweep=args.rrf_sweep,
        metrics=[m for m in args.metrics.split(",") if m.strip()],
        baseline=args.baseline,
        stat_test=args.stat_test,
        alpha=args.alpha,
        depth=args.depth,
        include_title=not args.no_title,
        bm25_tokens=args.bm25_tokens,
        latency_queries=args.latency_queries,
        index_path=args.index_path,
        rerank=args.rerank,
    )
    output = Path(args.output_dir)
    output.mkdir(parents=True, exist_ok=True)
    markdown = report.to_markdown()
    (output / "results.md").write_text(markdown + "\n", encoding="utf-8")
    report.to_json(output / "results.json")
    report.plot(output / "results.png")
    print(markdown)
    print(f"\nwrote {output / 'results.md'}, results.json, results.png", file=sys.stderr)
    return 0

"""`rag-splade train`: fine-tune the SPLADE model on (question, passage) pairs, measured.

pairs -> held-out split by passage -> hard negatives mined with the current models ->
`SparseEncoderTrainer` -> the model folder (loads with `SpladeEncoder`), its model card,
and the before/after evaluation of the held-out questions (`eval.md`, `eval.json`,
`eval.png`) with the evaluation harness.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .evaluate.metrics import DEFAULT_METRICS, STAT_TESTS

if TYPE_CHECKING:
    from rag_splade import DenseEncoder, SpladeEncoder
    from rag_splade.training import PairSet, TrainConfig

    from .evaluate.report import EvaluationReport

FORMATS = ("auto", "jsonl", "csv", "squad", "beir")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `train` arguments to `parser` (a sub-command parser)."""
    parser.description = (
        "Fine-tune the SPLADE model (RAG_SPLADE_SPARSE_MODEL, or --base-model) on "
        "(question, passage) pairs and evaluate it before and after on held-out questions. "
        "Needs the extra `train`: pip install 'rag-splade[train]'."
    )
    parser.add_argument("data", type=Path, help="pairs: .jsonl, .csv/.tsv, SQuAD .json or BEIR")
    parser.add_argument("--output", type=Path, required=True, help="the model folder to write")
    data = parser.add_argument_group("data")
    data.add_argument("--format", choices=FORMATS, default="auto")
    data.add_argument("--query-field", default="query", help="JSONL/CSV question field")
    data.add_argument("--passage-field", default="passage", help="JSONL/CSV passage field")
    data.add_argument("--answer-field", help="JSONL/CSV answer field (guards mining)")
    data.add_argument("--split", default="test", help="BEIR qrels split (default test)")
    data.add_argument("--eval", type=Path, help="a separate held-out file (same formats)")
    data.add_argument("--eval-fraction", type=float, default=0.1, help="passages held out")
    data.add_argument("--eval-limit", type=int, help="evaluate the first N held-out questions")
    data.add_argument("--no-eval", action="store_true", help="skip the before/after evaluation")
    models = parser.add_argument_group("models")
    models.add_argument("--base-model", help="SPLADE MLM to start from (default: settings)")
    models.add_argument("--dense-model", help="dense model for mining (default: settings)")
    models.add_argument("--device", help="auto, cpu, cuda (default: RAG_SPLADE_DEVICE)")
    mining = parser.add_argument_group("hard negatives")
    mining.add_argument("--negatives", type=int, default=1, help="per question; 0: none")
    mining.add_argument("--mining-depth", type=int, default=30, help="top-N per retriever")
    train = parser.add_argument_group("training")
    train.add_argument("--epochs", type=float, default=1.0)
    train.add_argument("--max-steps", type=int, help="stop after N optimizer steps")
    train.add_argument("--batch-size", type=int, default=32)
    train.add_argument("--grad-accum", type=int, default=1, help="gradient accumulation steps")
    train.add_argument("--lr", type=float, default=2e-5, help="learning rate")
    train.add_argument("--warmup-ratio", type=float, default=0.1)
    train.add_argument("--query-reg", type=float, default=5e-5, help="query FLOPS weight")
    train.add_argument("--doc-reg", type=float, default=3e-5, help="document FLOPS weight")
    train.add_argument("--query-max-length", type=int, default=64)
    train.add_argument("--doc-max-length", type=int, default=512)
    train.add_argument("--save-steps", type=int, default=500, help="checkpoint every N steps")
    train.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    train.add_argument("--seed", type=int, default=42)
    train.add_argument("--stat-test", choices=STAT_TESTS, default="student")
    train.add_argument("--quiet", action="store_true", help="no progress bar")


def load_pairs(path: Path, args: argparse.Namespace) -> PairSet:
    """Pairs from any supported file or folder (BEIR through the evaluation's reader)."""
    from rag_splade.training import PairSet, read_pairs

    fmt = args.format
    if fmt == "beir" or (fmt == "auto" and path.is_dir()):
        from .evaluate.datasets import load_dataset

        ds = load_dataset(path, split=args.split)
        corpus = {d.id: d.text for d in ds.documents(include_title=True)}
        return PairSet.from_qrels(ds.name, corpus, ds.queries, ds.qrels)
    return read_pairs(
        path,
        format=fmt,
        query_field=args.query_field,
        passage_field=args.passage_field,
        answer_field=args.answer_field,
    )


def run(args: argparse.Namespace) -> int:
    """Run the whole loop; 0 on success, 2 on bad input (one line on stderr)."""
    try:
        return _run(args)
    except (ValueError, FileNotFoundError, ImportError) as e:
        print(f"rag-splade train: {e}", file=sys.stderr)
        return 2


def _say(args: argparse.Namespace, message: str) -> None:
    if not args.quiet:
        print(f"[train] {message}", file=sys.stderr, flush=True)


def _run(args: argparse.Namespace) -> int:
    from rag_splade import Settings
    from rag_splade.training import (
        TrainConfig,
        leaked_passages,
        separate_eval,
        split_by_passage,
        training_examples,
    )

    if args.eval_limit is not None and args.eval_limit < 1:
        raise ValueError(f"--eval-limit must be a positive int, got {args.eval_limit}")
    if args.negatives < 0:
        raise ValueError(f"--negatives must be >= 0, got {args.negatives}")
    from rag_splade.settings import resolve_model

    settings = Settings()
    config = TrainConfig(
        base_model=resolve_model(args.base_model) if args.base_model else settings.sparse_model,
        output_dir=args.output,
        epochs=args.epochs,
        max_steps=args.max_steps,
        batch_size=args.batch_size,
        gradient_accumulation=args.grad_accum,
        learning_rate=args.lr,
        warmup_ratio=args.warmup_ratio,
        query_regularizer=args.query_reg,
        document_regularizer=args.doc_reg,
        query_max_length=args.query_max_length,
        document_max_length=args.doc_max_length,
        seed=args.seed,
        save_steps=args.save_steps,
        device=args.device or settings.device,
        resume=args.resume,
        progress=not args.quiet,
    )  # validated here, before any model loads
    pairs = load_pairs(args.data, args)
    if args.eval is not None:
        split = separate_eval(pairs, load_pairs(args.eval, args))
    else:
        split = split_by_passage(pairs, args.eval_fraction, seed=args.seed)
    if leaked_passages(split):  # the split functions guarantee it; checked all the same
        raise ValueError("a held-out passage is also trained on")
    _say(args, f"train {split.train.summary()}; held out {split.heldout.summary()}")
    if split.dropped:
        _say(args, f"{split.dropped} training pairs dropped: their passage is held out")
    args.output.mkdir(parents=True, exist_ok=True)
    dense_model = resolve_model(args.dense_model) if args.dense_model else settings.dense_model
    sparse, dense = _encoders(config, dense_model)
    mined = None
    if args.negatives:
        from rag_splade.training import mine_hard_negatives

        started = time.perf_counter()
        mined = mine_hard_negatives(
            split.train,
            sparse,
            dense,
            negatives=args.negatives,
            depth=args.mining_depth,
            seed=args.seed,
            cache=args.output / "negatives.json",
        )
        how = "reused" if mined.cached else f"mined in {time.perf_counter() - started:.0f} s"
        _say(args, f"hard negatives {how}: {mined.stats}")
    before = None if args.no_eval else _rankings(sparse, dense, split.heldout, args)
    examples = training_examples(split.train, mined)
    from rag_splade.training import train_splade
    from rag_splade.training.card import write_model_card

    result = train_splade(config, examples)
    _say(args, f"trained {result.steps} steps in {result.seconds:.0f} s")
    table = None
    if before is not None:
        from rag_splade import SpladeEncoder

        tuned = SpladeEncoder(str(args.output), device=sparse.device)
        after = _rankings(tuned, dense, split.heldout, args)
        report = _report(split.heldout, before, after, args)
        table = _markdown(report, before, after)
        (args.output / "eval.md").write_text(table + "\n", encoding="utf-8")
        report.to_json(args.output / "eval.json")
        report.plot(args.output / "eval.png")
        print(table)
    data: dict[str, Any] = {
        "source": str(args.data),
        "training pairs": len(split.train.pairs),
        "training passages": len(split.train.passage_ids),
        "held-out questions": len(split.heldout.pairs),
        "held-out from": str(args.eval) if args.eval else f"{args.eval_fraction:.0%} of passages",
        "pairs dropped (passage held out)": split.dropped,
        "hard negatives per question": args.negatives,
    }
    if mined is not None:
        data["mining"] = ", ".join(f"{k} {v}" for k, v in vars(mined.stats).items())
    write_model_card(args.output, config, result, data, table)
    print(f"model: {args.output.absolute()} (RAG_SPLADE_SPARSE_MODEL={args.output.absolute()})")
    return 0


def _encoders(config: TrainConfig, dense_model: str) -> tuple[SpladeEncoder, DenseEncoder]:
    from rag_splade import DenseEncoder, SpladeEncoder
    from rag_splade.factories import check_model_available

    check_model_available(config.base_model, "RAG_SPLADE_SPARSE_MODEL")
    check_model_available(dense_model, "RAG_SPLADE_DENSE_MODEL")
    sparse = SpladeEncoder(config.base_model, device=config.device)
    dense = DenseEncoder(dense_model, device=config.device)
    return sparse, dense


def _rankings(
    sparse: SpladeEncoder, dense: DenseEncoder, heldout: PairSet, args: argparse.Namespace
) -> dict[str, Any]:
    """The sparse run of the held-out questions over the held-out corpus, and the mean
    active dims of the queries and of the passages."""
    import numpy as np

    from rag_splade import EdgeStore, HybridIndex
    from rag_splade.types import Document

    from .evaluate.runs import RunSpec, chunk_depth, execute_index_runs

    queries = _queries(heldout, args.eval_limit)
    with tempfile.TemporaryDirectory(prefix="rag-splade-train-eval-") as tmp:
        index = HybridIndex(sparse, dense, EdgeStore(Path(tmp) / "index"))
        try:
            docs = [Document(id=pid, text=t) for pid, t in heldout.corpus.items()]
            index.add(docs)
            index.optimize()
            top_k = chunk_depth(100, len(docs), index.count())
            (out,) = execute_index_runs(
                index, [RunSpec.parse("sparse")], queries, depth=100, chunk_top_k=top_k,
                latency_queries=0,
            )  # fmt: skip
        finally:
            index.close()
    texts = list(heldout.corpus.values())[:1000]  # active dims: a sample is enough
    q_dims = [len(v.indices) for v in sparse.encode_queries(list(queries.values()))]
    d_dims = [len(v.indices) for v in sparse.encode_documents(texts)]
    return {
        "results": out.results,
        "query_dims": float(np.mean(q_dims)),
        "document_dims": float(np.mean(d_dims)),
    }


def _queries(heldout: PairSet, limit: int | None) -> dict[str, str]:
    queries = {p.query_id: p.query for p in heldout.pairs}
    return dict(list(queries.items())[:limit]) if limit else queries


def _report(
    heldout: PairSet, before: dict[str, Any], after: dict[str, Any], args: argparse.Namespace
) -> EvaluationReport:
    from .evaluate.metrics import compare_runs
    from .evaluate.report import EvaluationReport, RunResult

    queries = _queries(heldout, args.eval_limit)
    qrels: dict[str, dict[str, int]] = {}
    for p in heldout.pairs:
        if p.query_id in queries:
            qrels.setdefault(p.query_id, {})[p.passage_id] = 1
    runs = {"base": before["results"], "fine-tuned": after["results"]}
    compared = compare_runs(qrels, runs, "base", DEFAULT_METRICS, stat_test=args.stat_test)
    results = [
        RunResult(n, compared[n]["scores"], compared[n]["p_values"], {"queries": 0}) for n in runs
    ]
    info = {"name": heldout.name, "queries": len(qrels), "documents": len(heldout.corpus)}
    dims = {
        n: {"query_dims": r["query_dims"], "document_dims": r["document_dims"]}
        for n, r in (("base", before), ("fine-tuned", after))
    }
    config = {"run": "sparse", "active_dims": dims}
    return EvaluationReport(
        info, list(DEFAULT_METRICS), "base", args.stat_test, 0.05, results, config
    )


def _markdown(report: EvaluationReport, before: dict[str, Any], after: dict[str, Any]) -> str:
    """The harness's table, with the active dims of each model."""
    lines = [report.to_markdown(), "", "| model | active dims / query | active dims / passage |"]
    lines.append("|---|---:|---:|")
    for name, r in (("base", before), ("fine-tuned", after)):
        lines.append(f"| {name} | {r['query_dims']:.1f} | {r['document_dims']:.1f} |")
    return "\n".join(lines)

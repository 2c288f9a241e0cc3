"""`rag-splade search`: ask an existing index from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, replace
from typing import TextIO

from rag_splade import HybridIndex, SearchHit, Settings, format_context
from rag_splade.search import (
    DEFAULT_EXPLAIN,
    FUSIONS,
    MODES,
    SearchOptions,
    option_names,
    requests_for,
)

from .index_options import add_index_arguments, add_tenant_argument, index_overrides, open_tenant

PROG = "rag-splade search"  # every error line starts with it


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("query", nargs="+", help="one or more questions")
    parser.add_argument("--top-k", type=int, default=5)
    parser.add_argument("--mode", choices=MODES, default="hybrid")
    parser.add_argument("--fusion", choices=FUSIONS, default=None, help="default: the settings")
    parser.add_argument(
        "--weights",
        type=_weights,
        metavar="SPARSE,DENSE",
        help="Qdrant RRF weights, hybrid + rrf only, e.g. 1,2 (a smaller weight gives that "
        "list more say)",
    )
    parser.add_argument(
        "--explain",
        action=argparse.BooleanOptionalAction,
        default=DEFAULT_EXPLAIN,
        help="show the terms that made each hit match (default: on)",
    )
    parser.add_argument(
        "--filter",
        action="append",
        dest="filters",
        default=[],
        metavar="FIELD=JSON",
        help="payload filter, e.g. source='\"faq\"' or year='{\"gte\": 2020}' (repeatable). "
        "The value is JSON; a value that is not (faq) is the string itself, but one that "
        'starts like JSON ({, [ or ") and does not parse is refused (exit 2)',
    )
    parser.add_argument(
        "--rerank",
        action="store_true",
        help="reorder the fused candidates with the cross-encoder (RAG_SPLADE_RERANK_MODEL "
        "or --rerank-model)",
    )
    parser.add_argument(
        "--rerank-candidates",
        type=int,
        metavar="N",
        help="fused candidates the reranker scores (default: RAG_SPLADE_RERANK_CANDIDATES)",
    )
    parser.add_argument(
        "--rerank-model",
        help="cross-encoder hub id or local folder, e.g. "
        "hotchpotch/japanese-reranker-cross-encoder-small-v1",
    )
    parser.add_argument("--offset", type=int, default=0, help="hits to skip (paging)")
    parser.add_argument(
        "--min-score",
        type=float,
        help="drop hits below this score (the rerank score with --rerank, else the fused one)",
    )
    parser.add_argument(
        "--group-by-document", type=int, metavar="N", help="at most N chunks per document"
    )
    parser.add_argument(
        "--candidates", type=int, help="each retriever's list before fusion (default: settings)"
    )
    parser.add_argument("--rrf-k", type=int, help="RRF constant (default: settings, 61)")
    parser.add_argument("--sparse-model", help="SPLADE model: hub id or local folder")
    parser.add_argument("--dense-model", help="dense model: hub id or local folder")
    parser.add_argument("--json", action="store_true", help="print hits as JSON lines")
    parser.add_argument("--context", action="store_true", help="print the LLM context block")
    parser.add_argument(
        "--context-style",
        choices=("numbered", "xml"),
        default="numbered",
        help="numbered [n] blocks (default) or <passage> elements",
    )
    add_tenant_argument(add_index_arguments(parser))


def _weights(text: str) -> tuple[float, float]:
    try:
        sparse, dense = (float(x) for x in text.split(","))
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"--weights takes two numbers SPARSE,DENSE such as 1,2; got {text!r}"
        ) from e
    return sparse, dense


def parse_filters(items: list[str]) -> dict[str, object]:
    """`FIELD=JSON` pairs; a value that is not JSON is taken as a string, unless it starts
    like JSON (`{`, `[` or `"`): broken JSON is refused, since as a string it would
    quietly match nothing."""
    filters: dict[str, object] = {}
    for item in items:
        field, sep, value = item.partition("=")
        if not sep or not field:
            raise ValueError(f"--filter must look like FIELD=VALUE, got {item!r}")
        try:
            filters[field] = json.loads(value)
        except json.JSONDecodeError as e:
            if value.lstrip()[:1] in ("{", "[", '"'):
                raise ValueError(
                    f"--filter {field}: {value!r} starts like JSON but is not valid JSON "
                    f"({e.msg}, character {e.pos + 1}); write it whole, e.g. "
                    f"{field}='{{\"gte\": 2020}}', or {field}='\"text\"' for a string"
                ) from None
            filters[field] = value
    return filters


def run(args: argparse.Namespace, out: TextIO | None = None) -> int:
    from .demo import print_hit

    out = out or sys.stdout
    try:
        filters = parse_filters(args.filters) or None
    except ValueError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return 2
    settings = Settings(**index_overrides(args, "rerank_model", "sparse_model", "dense_model"))
    with HybridIndex.from_settings(settings, load_reranker=args.rerank) as whole:
        try:
            index = open_tenant(whole, args)
        except ValueError as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 2
        if index.count() == 0:
            print(f"{PROG}: the index is empty; fill it with `rag-splade ingest`", file=sys.stderr)
            return 1
        try:
            # every SearchOptions field is a flag of the same name (checked by a test)
            fields = {name: getattr(args, name) for name in option_names()}
            fields.update(
                filters=filters,
                explain=args.explain or args.context,  # the context's key terms need them
            )
            options = SearchOptions(**fields)
            results = index.search_requests(requests_for(args.query, options))
        except (TypeError, ValueError) as e:
            print(f"{PROG}: {e}", file=sys.stderr)
            return 2
        for query, hits in zip(args.query, results, strict=True):
            shown = hits if args.explain else [replace(h, explanation=None) for h in hits]
            if args.json:
                for rank, hit in enumerate(shown, start=args.offset + 1):
                    print(json.dumps(_as_json(query, rank, hit), ensure_ascii=False), file=out)
                continue
            print(f"Q: {query}", file=out)
            if not shown:
                print("  (no hits)", file=out)
            for rank, hit in enumerate(shown, start=args.offset + 1):
                print_hit(rank, hit, out)
            if args.context:
                print("\n" + format_context(hits, style=args.context_style) + "\n", file=out)
    return 0


def _as_json(query: str, rank: int, hit: SearchHit) -> dict[str, object]:
    return {"query": query, "rank": rank, **asdict(hit)}

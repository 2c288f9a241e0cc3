"""The demo: index the bundled JSQuAD sample in an embedded Qdrant Edge index and show
explained hits for a few questions (`rag-splade demo`, or `run_demo` from Python)."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from rag_splade import HybridIndex, SearchHit, Settings, format_context
from rag_splade.context import highlight
from rag_splade.sample import sample_documents
from rag_splade.text.visible import visible_lines

from .index_options import add_index_arguments, index_overrides, settings_problem
from .tiny_models import is_tiny_model

TINY_MODELS_NOTE = (
    "Note: these are tiny models built offline (`rag-splade tiny-models`). They run every "
    "step of the pipeline, but their rankings and scores are meaningless; the real models "
    "(`make demo` with hub access) rank by meaning."
)

QUERY_TERMS_SHOWN = 8  # content words of the query shown per question
SNIPPET_CHARS = 160

DEMO_QUERIES = (
    "日本で梅雨がないのは北海道とどこか。",
    "石油の主成分は何か。",
    "サケが川を遡上するのはなぜか。",
)


def print_hit(rank: int, hit: SearchHit, out: TextIO) -> None:
    sparse = "-" if hit.sparse_rank is None else f"#{hit.sparse_rank} {hit.sparse_score:.2f}"
    dense = "-" if hit.dense_rank is None else f"#{hit.dense_rank} {hit.dense_score:.3f}"
    rerank = "" if hit.rerank_score is None else f"  rerank={hit.rerank_score:.4f}"
    print(
        f"  {rank}. {hit.doc_id}{rerank}  fused={hit.score:.4f}  sparse {sparse}  dense {dense}",
        file=out,
    )
    if hit.explanation is None:
        return
    key = hit.explanation.key_terms(6)
    if key:
        print("     matched: " + ", ".join(f"{t.term} {t.contribution:.2f}" for t in key), file=out)
    elif any(t.literal for t in hit.explanation.terms):
        print("     matched: function words only (particles, auxiliaries, symbols)", file=out)
    related = hit.explanation.related_terms(3)
    if related:
        print("     related (expansions): " + ", ".join(t.term for t in related), file=out)
    # one indented line: the passage's own line breaks (a `# 見出し` heading, a list) would
    # start lines of their own at the left margin
    snippet = " ".join(" ".join(visible_lines(highlight(hit))).split())
    cut = snippet[:SNIPPET_CHARS]
    print(f"     {cut}{'…' if len(snippet) > SNIPPET_CHARS else ''}", file=out)


def run_demo(
    settings: Settings | None = None,
    *,
    queries: Sequence[str] = DEMO_QUERIES,
    top_k: int = 3,
    out: TextIO | None = None,
) -> int:
    """Build (or reuse) the demo index and print explained hits; return the chunk count."""
    out = out or sys.stdout
    settings = settings or Settings()
    where = settings.qdrant_url or Path(settings.index_path).resolve()
    print(f"Loading models: sparse={settings.sparse_model}  dense={settings.dense_model}", file=out)
    tiny = is_tiny_model(settings.sparse_model) or is_tiny_model(settings.dense_model)
    if tiny:
        print(TINY_MODELS_NOTE, file=out)
    with HybridIndex.from_settings(settings) as index:
        docs = sample_documents()
        started = time.perf_counter()
        added = index.add(docs)
        seconds = time.perf_counter() - started
        print(
            f"Indexed {added.documents} JSQuAD paragraphs as {added.chunks} chunks into {where} "
            f"in {seconds:.1f} s",
            file=out,
        )
        for query in queries:
            print(f"\nQ: {query}", file=out)
            # every term, then the strongest content words: function words would take
            # most of a short list
            terms = [t for t in index.explain_query(query, top_k=1000) if not t.function_word]
            shown = ", ".join(
                f"{t.term}{'*' if t.expansion else ''} {t.weight:.2f}"
                for t in terms[:QUERY_TERMS_SHOWN]
            )
            print(f"  query terms: {shown}", file=out)
            hits = index.search(query, top_k=top_k, explain=True)
            for rank, hit in enumerate(hits, start=1):
                print_hit(rank, hit, out)
        print("\nLLM context for the last question:\n", file=out)
        print(format_context(hits), file=out)
        if tiny:  # said again where the reader's eyes end up
            print("\n" + TINY_MODELS_NOTE, file=out)
        return index.count()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `demo` arguments to `parser` (a sub-command parser)."""
    parser.add_argument("--query", action="append", help="a question to ask (repeatable)")
    parser.add_argument("--top-k", type=int, default=3, help="hits shown per question (3)")
    add_index_arguments(parser)


def run(args: argparse.Namespace) -> int:
    """Run the demo with parsed arguments; 2 when the settings are invalid."""
    from pydantic import ValidationError

    try:
        settings = Settings(**index_overrides(args))
    except ValidationError as e:
        print(f"rag-splade demo: {settings_problem(e)}", file=sys.stderr)
        return 2
    run_demo(settings, queries=args.query or DEMO_QUERIES, top_k=args.top_k)
    return 0

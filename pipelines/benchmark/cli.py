"""`rag-splade bench`: every figure in one process run, printed as markdown (and JSON).

Sections (`--sections`): `encode` (sparse document encoding against LlamaIndex's and
sentence-transformers' paths), `tokenizer` (the Japanese tokenizer alone), `query` (query
encoding latency and a hybrid search's breakdown), `store` (hybrid query latency and
upserts per store), `size` (index size per chunk and its nDCG@10 cost),
`serving` (API throughput at several concurrencies), `explain` (what explanations add
to a search), `rerank` (what a cross-encoder over 20/50/100 candidates adds), `filtered`
(filtered and tenant searches), `remote` (an encoder server on loopback against
in-process encoding) and `scale` (Qdrant Edge at 10k to 1M points, three shard
configurations: latency, memory, disk, recall). A
section module has `run(args, ctx) -> Section` and may have `add_arguments(parser)` for
flags of its own.
Peer libraries are imported only by the sections that use them.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .common import (
    BASE_SHAPE,
    BenchContext,
    Section,
    comma_list,
    document_texts,
    jsquad,
    machine,
    machine_line,
    model_paths,
)

TINY_NOTE = (
    "Tiny models (--tiny): these rows check that every path runs; they do not measure "
    "speed (a tiny model's time is mostly fixed overhead), so compare no ratio here."
)

SECTIONS = [
    "encode",
    "tokenizer",
    "query",
    "store",
    "size",
    "serving",
    "explain",
    "rerank",
    "filtered",
    "remote",
    "scale",
]
DEFAULT_SECTIONS = ",".join(SECTIONS)


def available_sections() -> list[str]:
    return [s for s in SECTIONS if importlib.util.find_spec(f"{__package__}.{s}")]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's flags (`rag-splade bench` adds them to its sub-parser)."""
    add = parser.add_argument
    add("--sections", default=DEFAULT_SECTIONS, help=f"comma list of {SECTIONS}")
    add("--docs", type=int, default=64, help="documents for the encoding section")
    add(
        "--doc-length",
        choices=["natural", "512"],
        default="natural",
        help="JSQuAD paragraphs as they are, or windows that fill 512 tokens",
    )
    add("--texts", help="a JSQuAD JSON file (default: the bundled 64-paragraph sample)")
    add("--queries", type=int, default=100, help="queries for the query-encoding section")
    add(
        "--points",
        type=comma_list(int),
        default=[10_000, 100_000],
        help="store sizes, e.g. 10000,100000",
    )
    add("--store-queries", type=int, default=200, help="hybrid queries per store size (Edge)")
    add("--local-queries", type=int, default=10, help="queries for qdrant-client local mode")
    add(
        "--local-max-points",
        type=int,
        default=10_000,
        help="largest size measured on qdrant-client local mode (a pure-Python brute force)",
    )
    add("--device", default="cpu", help="cpu, cuda, cuda:N")
    add(
        "--dtype",
        default="auto",
        help="comma list of float32/bfloat16/float16 for rag_splade; auto: float32 and "
        "bfloat16 on a CPU with bf16 instructions, bfloat16 on CUDA",
    )
    add("--max-batch-tokens", type=int, help="SpladeEncoder token budget (default: per device)")
    add(
        "--tokenizer-workers",
        type=comma_list(int),
        default=[],
        help="encode section: extra rag_splade rows with these tokenizer_workers, e.g. 4,8",
    )
    add("--tiny", action="store_true", help="tiny test-sized models instead of BERT-base shape")
    add("--model-dir", help="where speed models are built and kept (default: a temp folder)")
    add("--skip-peers", action="store_true", help="rag_splade rows only (no LlamaIndex/ST)")
    add(
        "--skip-llama-as-called",
        action="store_true",
        help="skip LlamaIndex's encoder without no_grad (killed for memory at batch 64 on 24 GB)",
    )
    add("--memory-cap-gb", type=float, default=12.0, help="kill an encoding path above this RSS")
    add("--encode-timeout", type=float, default=900.0, help="seconds before a path is killed")
    add("--json", dest="json_out", help="also write the results as JSON to this file")
    for name in available_sections():  # a section may add flags of its own (e.g. serving)
        module = importlib.import_module(f"{__package__}.{name}")
        if hasattr(module, "add_arguments"):
            module.add_arguments(parser)


def build_context(args: argparse.Namespace) -> BenchContext:
    info = machine()
    model_dir = Path(args.model_dir or Path(tempfile.gettempdir()) / "rag-splade-bench-models")
    model_dir.mkdir(parents=True, exist_ok=True)
    paragraphs, questions = jsquad(args.texts)
    bundled_paragraphs, bundled_questions = jsquad(None)
    shape = "tiny" if args.tiny else "BERT-base-shaped"
    label = (
        "tiny random BERT (hidden 64, 2 layers)"
        if args.tiny
        else f"{shape} random BertForMaskedLM (12 layers, hidden 768, vocab "
        f"{BASE_SHAPE['vocab_size']:,}, BertJapaneseTokenizer)"
    )
    return BenchContext(
        machine=info,
        models=model_paths(model_dir, args.tiny),
        model_label=label,
        paragraphs=bundled_paragraphs,  # the size section's corpus (its questions' paragraphs)
        questions=bundled_questions,
        doc_texts=document_texts(paragraphs, args.docs, args.doc_length),
        query_texts=[q for q, _ in questions],
    )


def run(args: argparse.Namespace) -> int:
    """Run the chosen sections, print markdown tables, write JSON if asked; 0 on success."""
    chosen = [s.strip() for s in args.sections.split(",") if s.strip()]
    available = available_sections()
    unknown = [s for s in chosen if s not in available]
    if unknown:
        print(
            f"unknown or unavailable sections {unknown}; choose from {available}", file=sys.stderr
        )
        return 2
    if args.tiny:
        print(TINY_NOTE, file=sys.stderr)
    ctx = build_context(args)
    started = time.time()
    results: dict[str, Section] = {}
    bar = section_bar(len(chosen))
    for name in chosen:
        bar.set_postfix_str(name)
        if bar.disable:  # no terminal: one plain line per section for the log
            print(f"[bench] {name} ...", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        module = importlib.import_module(f"{__package__}.{name}")
        section = module.run(args, ctx)
        section.notes.append(f"Section time {time.perf_counter() - t0:.0f} s.")
        results[name] = section
        bar.update()
    bar.close()
    line = machine_line(ctx.machine)
    print(f"## rag_splade benchmark\n\n{line}\n")
    if args.tiny:
        print(f"**{TINY_NOTE}**\n")
    for section in results.values():
        print(section.to_markdown())
    if args.json_out:
        payload = {
            "machine": ctx.machine,
            "started": started,
            "model": ctx.model_label,
            "note": TINY_NOTE if args.tiny else None,
            "args": {k: v for k, v in vars(args).items() if not callable(v)},
            "sections": {name: s.to_json() for name, s in results.items()},
        }
        Path(args.json_out).write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    return 0


def section_bar(total: int) -> Any:
    """A tqdm bar over the sections on stderr; disabled when stderr is not a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total, desc="bench", unit=" section", file=sys.stderr, disable=not _on_terminal()
    )


def _on_terminal() -> bool:
    return bool(getattr(sys.stderr, "isatty", lambda: False)())

"""`rag-splade`: the command-line entry point (ingest, search, eval, bench, demo)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

# subcommand -> (module with add_arguments(parser) and run(args) -> int, help)
COMMANDS = {
    "ingest": (".ingest", "add or update files and folders in the index, with progress"),
    "search": (".search", "ask the index; explained hits, optionally as JSON"),
    "eval": (".evaluate", "evaluate sparse, dense, hybrid and BM25 runs on a dataset"),
    "bench": (".benchmark", "measure speed, memory and size against the peer paths"),
}
SETTINGS_HELP = (
    "Models, device and index come from RAG_SPLADE_* settings (RAG_SPLADE_SPARSE_MODEL, "
    "RAG_SPLADE_DENSE_MODEL, RAG_SPLADE_INDEX_PATH, RAG_SPLADE_QDRANT_URL, ...)."
)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rag-splade", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (module, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=SETTINGS_HELP)
        # Only the chosen command's module is imported (some pull in heavy libraries).
        if name == chosen:
            importlib.import_module(module, __package__).add_arguments(command)

    demo = sub.add_parser(
        "demo",
        help="index the bundled JSQuAD sample in an embedded Qdrant Edge index and search it",
        description=SETTINGS_HELP,
    )
    demo.add_argument("--index-path", help="Edge index folder (default: RAG_SPLADE_INDEX_PATH)")
    demo.add_argument("--query", action="append", help="a question to ask (repeatable)")
    demo.add_argument("--top-k", type=int, default=3)

    tiny = sub.add_parser(
        "tiny-models",
        help="build tiny offline Japanese models (for trying the demo without the model hub)",
    )
    tiny.add_argument("directory", help="where to write splade/ and dense/")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if args.command in COMMANDS:
        return importlib.import_module(COMMANDS[args.command][0], __package__).run(args)
    if args.command == "demo":
        from rag_splade import Settings

        from .demo import DEMO_QUERIES, run_demo

        overrides = {"index_path": args.index_path} if args.index_path else {}
        settings = Settings(**overrides)
        run_demo(settings, queries=args.query or DEMO_QUERIES, top_k=args.top_k)
        return 0
    if args.command == "tiny-models":
        from pathlib import Path

        from rag_splade.testing import build_dense_model, build_splade_model

        root = Path(args.directory)
        splade = build_splade_model(root / "splade", lexical=True)
        dense = build_dense_model(root / "dense", lexical=True, tokenizer_dir=splade)
        print(f"RAG_SPLADE_SPARSE_MODEL={splade}\nRAG_SPLADE_DENSE_MODEL={dense}")
        return 0
    return 2  # pragma: no cover - argparse rejects unknown commands


if __name__ == "__main__":
    sys.exit(main())

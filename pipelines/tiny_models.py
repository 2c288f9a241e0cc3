"""`rag-splade tiny-models DIR`: tiny offline Japanese models, to try the demo and the service
without the model hub (their rankings are lexical, not learned)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

# Written into each model folder, so the demo can say that the rankings mean nothing.
TINY_MARKER = "TINY_MODEL.txt"
TINY_NOTE = (
    "A tiny model built offline by `rag-splade tiny-models` (lexical, a few hundred words of "
    "vocabulary): it runs the whole pipeline, but its rankings say nothing about retrieval "
    "quality. Use the real models for that.\n"
)


def is_tiny_model(model: str) -> bool:
    """Whether `model` is a folder that `rag-splade tiny-models` built."""
    return (Path(model) / TINY_MARKER).is_file()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `tiny-models` arguments to `parser` (a sub-command parser)."""
    parser.description = (
        "Build a tiny lexical SPLADE model (DIR/splade) and a tiny dense model (DIR/dense) "
        "offline, and print the RAG_SPLADE_* settings that select them."
    )
    parser.add_argument("directory", type=Path, help="where to write splade/ and dense/")


def run(args: argparse.Namespace) -> int:
    """Build both models; print `RAG_SPLADE_SPARSE_MODEL=...` and `RAG_SPLADE_DENSE_MODEL=...`
    as absolute paths (they work from any folder: a notebook kernel, a service)."""
    root: Path = args.directory.expanduser().absolute()
    if root.exists() and not root.is_dir():
        print(f"rag-splade tiny-models: {root} is a file; give a folder", file=sys.stderr)
        return 2
    from rag_splade.testing import build_dense_model, build_splade_model

    splade = build_splade_model(root / "splade", lexical=True)
    dense = build_dense_model(root / "dense", lexical=True, tokenizer_dir=splade)
    for folder in (splade, dense):
        (Path(folder) / TINY_MARKER).write_text(TINY_NOTE, encoding="utf-8")
    print(f"RAG_SPLADE_SPARSE_MODEL={splade}\nRAG_SPLADE_DENSE_MODEL={dense}")
    return 0

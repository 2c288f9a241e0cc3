"""`rag-splade tiny-models DIR`: tiny offline Japanese models, to try the demo and the service
without the model hub (their rankings are lexical, not learned)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `tiny-models` arguments to `parser` (a sub-command parser)."""
    parser.description = (
        "Build a tiny lexical SPLADE model (DIR/splade) and a tiny dense model (DIR/dense) "
        "offline, and print the RAG_SPLADE_* settings that select them."
    )
    parser.add_argument("directory", type=Path, help="where to write splade/ and dense/")


def run(args: argparse.Namespace) -> int:
    """Build both models; print `RAG_SPLADE_SPARSE_MODEL=...` and `RAG_SPLADE_DENSE_MODEL=...`."""
    root: Path = args.directory
    if root.exists() and not root.is_dir():
        print(f"rag-splade tiny-models: {root} is a file; give a folder", file=sys.stderr)
        return 2
    from rag_splade.testing import build_dense_model, build_splade_model

    splade = build_splade_model(root / "splade", lexical=True)
    dense = build_dense_model(root / "dense", lexical=True, tokenizer_dir=splade)
    print(f"RAG_SPLADE_SPARSE_MODEL={splade}\nRAG_SPLADE_DENSE_MODEL={dense}")
    return 0

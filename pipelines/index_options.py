"""The flags that choose an index, shared by the commands that open one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

INDEX_FLAGS = ("index_path", "qdrant_url", "collection", "device")


def add_index_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """`--index-path`, `--qdrant-url`, `--collection`, `--device`; unset ones keep the
    `RAG_SPLADE_*` settings. Returns the group, for commands to add flags of their own."""
    group = parser.add_argument_group("index (default: RAG_SPLADE_* settings)")
    group.add_argument("--index-path", help="embedded Edge index folder")
    group.add_argument("--qdrant-url", help="Qdrant server URL (wins over --index-path)")
    group.add_argument("--collection", help="collection on the Qdrant server")
    group.add_argument("--device", help="cpu, cuda, cuda:1, mps or auto")
    return group


def index_overrides(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """Settings overrides from the index flags (and `extra` attributes) that were given."""
    names = (*INDEX_FLAGS, *extra)
    return {name: getattr(args, name) for name in names if getattr(args, name) is not None}


def settings_problem(error: ValidationError) -> str:
    """A `Settings` validation error on one line: `field (RAG_SPLADE_FIELD): message; ...`."""
    parts = []
    for e in error.errors():
        field = ".".join(str(part) for part in e["loc"]) or "settings"
        message = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{field} (RAG_SPLADE_{field.upper()}): {message}")
    return "; ".join(parts)

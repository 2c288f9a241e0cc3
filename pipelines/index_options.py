"""The flags that choose an index, shared by the commands that open one."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pydantic import ValidationError

    from rag_splade import HybridIndex

INDEX_FLAGS = ("index_path", "qdrant_url", "collection", "device")


def add_index_arguments(parser: argparse.ArgumentParser) -> argparse._ArgumentGroup:
    """`--index-path`, `--qdrant-url`, `--collection`, `--device`; unset ones keep the
    `RAG_SPLADE_*` settings. Returns the group, for commands to add flags of their own."""
    group = parser.add_argument_group("index (default: RAG_SPLADE_* settings)")
    group.add_argument("--index-path", help="embedded Edge index folder")
    group.add_argument("--qdrant-url", help="Qdrant server URL (wins over --index-path)")
    group.add_argument("--collection", help="collection on the Qdrant server")
    group.add_argument("--device", help="cpu, cuda, cuda:1, mps or auto")
    group.add_argument(
        "--payload-index",
        action="append",
        metavar="FIELD:TYPE",
        help="index a metadata field in Qdrant (keyword, integer, float, bool, datetime); "
        "repeat for several (RAG_SPLADE_PAYLOAD_INDEXES)",
    )
    return group


def add_tenant_argument(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """`--tenant`: the tenant whose documents a command reads or writes."""
    parser.add_argument(
        "--tenant",
        help="read and write only this tenant's documents (default: the default tenant)",
    )


def open_tenant(index: HybridIndex, args: argparse.Namespace) -> HybridIndex:
    """`index` seen as `--tenant` when given (a ValueError names a bad tenant id)."""
    tenant = getattr(args, "tenant", None)
    return index if tenant is None else index.tenant(tenant)


def index_overrides(args: argparse.Namespace, *extra: str) -> dict[str, Any]:
    """Settings overrides from the index flags (and `extra` attributes) that were given."""
    names = (*INDEX_FLAGS, *extra)
    found = {name: getattr(args, name) for name in names if getattr(args, name) is not None}
    declared = getattr(args, "payload_index", None)
    if declared:  # FIELD:TYPE pairs; Settings checks them (a ValidationError naming them)
        found["payload_indexes"] = dict(item.rpartition(":")[::2] for item in declared)
    return found


def settings_problem(error: ValidationError) -> str:
    """A `Settings` validation error on one line: `field (RAG_SPLADE_FIELD): message; ...`."""
    parts = []
    for e in error.errors():
        field = ".".join(str(part) for part in e["loc"]) or "settings"
        message = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{field} (RAG_SPLADE_{field.upper()}): {message}")
    return "; ".join(parts)

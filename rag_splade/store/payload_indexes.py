"""Payload indexes: metadata fields declared with a type get a Qdrant payload index.

A filter on a declared field is answered from the index; a filter on any other field
still works, by scanning the candidates. A declared field is also a promise about the
values: a document whose value does not fit the type is refused when it is added
(Qdrant would index nothing for it, and a range filter would silently miss it).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Literal, get_args

from rag_splade.metadata import RESERVED_KEYS, check_key

__all__ = [
    "FIELD_TYPES",
    "FieldType",
    "check_declared",
    "check_values",
]

_QDRANT_DATETIME = re.compile(
    r"\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})?)?)?"
)
FieldType = Literal["keyword", "integer", "float", "bool", "datetime"]
FIELD_TYPES: tuple[str, ...] = get_args(FieldType)


def check_declared(declared: Mapping[str, str] | None) -> dict[str, FieldType]:
    """`{metadata key or dotted path: type}`, checked whole.

    Raises:
        ValueError: a key that is not a metadata key, or a type not in `FIELD_TYPES`.
    """
    if declared is None:
        return {}
    if not isinstance(declared, Mapping):
        raise TypeError(f"payload indexes are a dict of field -> type, got {declared!r:.80}")
    checked: dict[str, FieldType] = {}
    for key, kind in declared.items():
        if not isinstance(key, str) or not key or key.split(".")[0] in RESERVED_KEYS:
            raise ValueError(f"payload index on {key!r:.60}: name a metadata key")
        for part in key.split("."):
            check_key(part, f"payload index on {key!r:.60}")
        if kind not in FIELD_TYPES:
            raise ValueError(
                f"payload index on {key!r}: type {kind!r:.40} is not one of {FIELD_TYPES}"
            )
        checked[key] = kind  # type: ignore[assignment]  # checked against FIELD_TYPES
    return checked


def check_values(metadata: Mapping[str, Any], declared: Mapping[str, str], doc_id: str) -> None:
    """Every declared field present in `metadata` holds values of its type (or a list of
    them).

    Raises:
        ValueError: naming the document, the field, its type and the value.
    """
    for key, kind in declared.items():
        value: Any = metadata
        for part in key.split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not _fits(item, kind):
                raise ValueError(
                    f"document {doc_id!r}: metadata {key!r} is declared {kind} (a payload "
                    f"index), got {item!r:.60}; store a {kind} there or change the declaration"
                )


def _fits(value: Any, kind: str) -> bool:
    if kind == "keyword":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "float":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "bool":
        return isinstance(value, bool)
    # datetime: the forms Qdrant's parser reads (checked against Qdrant Edge), then a real
    # date and time; Python's fromisoformat alone also takes forms Qdrant does not index
    # (20240101, 2024-W01-1, 2024-01-01T10), which a range filter then silently misses
    if not isinstance(value, str) or not _QDRANT_DATETIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True

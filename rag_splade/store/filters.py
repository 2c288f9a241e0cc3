"""Payload filters: one small, validated language that both stores translate.

`{"source": "faq"}` equality, `{"lang": ["ja", "en"]}` any-of,
`{"year": {"gte": 2020, "lt": 2024}}` numeric range; all conditions must hold.
Keys name metadata fields, except `doc_id` and `chunk_index`, which are the chunk's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

RANGE_OPERATORS = ("gt", "gte", "lt", "lte")
CHUNK_FIELDS = ("doc_id", "chunk_index")
ALLOWED = (
    "a str/int/bool (equality), a non-empty list of str or of int (any-of), "
    "or a dict of gt/gte/lt/lte numbers (range)"
)


@dataclass(frozen=True)
class Condition:
    """One condition on a payload field (`field` is the payload path)."""

    field: str
    kind: Literal["eq", "any", "range"]
    value: Any


def payload_field(key: str) -> str:
    return key if key in CHUNK_FIELDS else f"metadata.{key}"


def parse_filters(filters: Mapping[str, Any] | None) -> list[Condition]:
    """Validate user filters; raise `TypeError`/`ValueError` naming the key and what is allowed."""
    if filters is None:
        return []
    if not isinstance(filters, Mapping):
        raise TypeError(
            f"filters must be a dict of field -> condition, got {type(filters).__name__}"
        )
    conditions = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key.strip():
            raise ValueError(f"filter keys must be non-empty strings, got {key!r}")
        conditions.append(_condition(key, value))
    return conditions


def _condition(key: str, value: Any) -> Condition:
    field = payload_field(key)
    if isinstance(value, (str, bool, int)):
        return Condition(field, "eq", value)
    if isinstance(value, float):
        raise TypeError(
            f"filter {key!r}: equality on a float ({value!r}) is not supported; "
            f"use a range such as {{'gte': {value}, 'lte': {value}}}"
        )
    if isinstance(value, (list, tuple)):
        kinds = {type(v) for v in value}
        if not value or not (kinds <= {str} or kinds <= {int}):
            raise TypeError(
                f"filter {key!r}: a list must be non-empty and all str or all int, got {value!r}"
            )
        return Condition(field, "any", list(value))
    if isinstance(value, Mapping):
        unknown = set(value) - set(RANGE_OPERATORS)
        if not value or unknown:
            raise ValueError(
                f"filter {key!r}: range operators must be among {RANGE_OPERATORS}, "
                f"got {sorted(map(str, value)) or 'none'}"
            )
        for op, bound in value.items():
            if isinstance(bound, bool) or not isinstance(bound, (int, float)):
                raise TypeError(f"filter {key!r}: range bound {op} must be a number, got {bound!r}")
        return Condition(field, "range", {op: float(b) for op, b in value.items()})
    raise TypeError(f"filter {key!r}: got {type(value).__name__} {value!r}; allowed: {ALLOWED}")

"""Payload filters: one small, validated language that both stores translate.

`{"source": "faq"}` equality, `{"lang": ["ja", "en"]}` any-of,
`{"year": {"gte": 2020, "lt": 2024}}` numeric range; all conditions must hold.
Keys name metadata fields, except `doc_id` and `chunk_index`, which are the chunk's own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from rag_splade.checks import is_finite
from rag_splade.metadata import KEY_RULE, check_int, check_key, check_text

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
    kind: Literal["eq", "any", "range", "empty"]  # empty: the field is absent (no value)
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
        _check_path(key)
        if key.split(".")[0] == "tenant":
            raise ValueError(
                "filter key 'tenant' is reserved: a search sees one tenant, the one of "
                "index.tenant(...) or of the API key; filters cannot name or widen it"
            )
        conditions.append(_condition(key, value))
    return conditions


def _check_path(key: object) -> None:
    """A filter key is a metadata key, or a dotted path into nested metadata (`a.b`): each
    part must be a key Qdrant's JSON paths can name (`rag_splade.metadata`)."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"filter keys must be non-empty strings, got {key!r:.60}")
    for part in key.split("."):
        if not part:
            raise ValueError(
                f"filter key {key!r:.60} has an empty part; allowed: {KEY_RULE}, "
                "joined by '.' for nested fields"
            )
        check_key(part, f"filter key {key!r:.60}")


def _check_scalar(key: str, value: Any) -> None:
    if isinstance(value, str):
        check_text(value, f"filter {key!r}")
    elif isinstance(value, int) and not isinstance(value, bool):
        check_int(value, f"filter {key!r}")


def _condition(key: str, value: Any) -> Condition:
    field = payload_field(key)
    if isinstance(value, (str, bool, int)):
        _check_scalar(key, value)
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
        for item in value:
            _check_scalar(key, item)
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
            if not is_finite(bound):
                raise ValueError(
                    f"filter {key!r}: range bound {op} must be finite (within a float's "
                    f"range), got {bound!r:.40}"
                )
        return Condition(field, "range", {op: float(b) for op, b in value.items()})
    raise TypeError(f"filter {key!r}: got {type(value).__name__} {value!r}; allowed: {ALLOWED}")

"""Translate LlamaIndex `MetadataFilters` into the store's filter language; raise on what
cannot be translated instead of dropping it."""

from __future__ import annotations

from typing import Any

from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

RANGE_OPS = {
    FilterOperator.GT: "gt",
    FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt",
    FilterOperator.LTE: "lte",
}
SUPPORTED = "==, in, >, >=, <, <= combined with AND"


def to_store_filters(filters: MetadataFilters | None) -> dict[str, Any] | None:
    """`MetadataFilters` -> `{"key": value | [values] | {"gte": ...}}` for `HybridIndex.search`."""
    if filters is None or not filters.filters:
        return None
    if filters.condition not in (FilterCondition.AND, None) and len(filters.filters) > 1:
        raise ValueError(
            f"filter condition {filters.condition!r} is not supported; only {SUPPORTED}"
        )
    out: dict[str, Any] = {}
    for item in filters.filters:
        if not isinstance(item, MetadataFilter):
            raise ValueError(f"nested MetadataFilters are not supported; only {SUPPORTED}")
        key, op, value = item.key, item.operator, item.value
        if op == FilterOperator.EQ:
            _set(out, key, value)
        elif op == FilterOperator.IN:
            if not isinstance(value, list):
                raise ValueError(f"filter {key!r}: operator 'in' needs a list, got {value!r}")
            _set(out, key, value)
        elif op in RANGE_OPS:
            bounds = out.setdefault(key, {})
            if not isinstance(bounds, dict):
                raise ValueError(f"filter {key!r}: cannot combine equality with a range")
            bounds[RANGE_OPS[op]] = value
        else:
            raise ValueError(
                f"filter {key!r}: operator {op.value!r} is not supported; only {SUPPORTED}"
            )
    return out


def _set(out: dict[str, Any], key: str, value: Any) -> None:
    if key in out:
        raise ValueError(f"filter {key!r} is given twice; combine the values with 'in'")
    out[key] = value

"""Argument checks shared by the library and its pipelines: each error names the value and
what is allowed."""

from __future__ import annotations

from collections.abc import Sequence


def check_query(query: object, name: str) -> str:
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} must be a non-empty string (got only whitespace or nothing)")
    return query


def check_doc_id(doc_id: object) -> str:
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise ValueError(f"doc_id must be a non-empty string, got {doc_id!r}")
    return doc_id


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def check_positive_int(name: str, value: object, *, optional: bool = False) -> None:
    """`value` is an int >= 1 (bools are not), or None when `optional`."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        allowed = "None or a positive int" if optional else "a positive int"
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_weights(
    weights: Sequence[float] | None, mode: str, fusion: str
) -> tuple[float, float] | None:
    if weights is None:
        return None
    if mode != "hybrid" or fusion != "rrf":
        raise ValueError(
            f"weights apply to hybrid mode with rrf fusion only (got mode={mode!r}, "
            f"fusion={fusion!r}); DBSF normalises scores itself"
        )
    if (
        isinstance(weights, (str, bytes))
        or len(weights) != 2
        or any(isinstance(w, bool) or not isinstance(w, (int, float)) or w < 0 for w in weights)
        or sum(weights) == 0
    ):
        raise ValueError(
            f"weights must be two non-negative numbers (sparse, dense), not both 0, got {weights!r}"
        )
    return float(weights[0]), float(weights[1])

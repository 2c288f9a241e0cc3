"""Argument checks shared by the library and its pipelines: each error names the value and
what is allowed."""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Sequence


def check_query(query: object, name: str) -> str:
    if not isinstance(query, str):
        raise TypeError(f"{name} must be a str, got {type(query).__name__}")
    if not query.strip():
        raise ValueError(f"{name} must be a non-empty string (got only whitespace or nothing)")
    try:
        query.encode("utf-8")
    except UnicodeEncodeError as e:  # a lone surrogate: no tokenizer or JSON encoder takes it
        raise ValueError(
            f"{name} must be valid Unicode text; character {e.start} is a lone surrogate "
            f"({query[e.start]!r})"
        ) from None
    return query


# what a new id may not hold besides: invisible format characters (zero-width spaces,
# direction overrides: an id that reads as another) and line or paragraph separators
_NEW_ID_REFUSED = ("Cf", "Zl", "Zp")


def check_doc_id(doc_id: object, name: str = "doc_id", *, new: bool = False) -> str:
    """A document id: a non-empty string of printable text (no control characters, such as
    a newline, and no lone surrogates), taken exactly as given.

    `new` (an id being stored): also no invisible format characters or line separators,
    and no `.` or `..` path segment, which HTTP clients rewrite before a request reaches
    `/v1/documents/{id}`. Ids stored before these rules stay readable and deletable."""
    if not isinstance(doc_id, str) or not doc_id.strip():
        raise ValueError(f"{name} must be a non-empty string, got {doc_id!r:.80}")
    bad = next((ch for ch in doc_id if unicodedata.category(ch) in ("Cc", "Cs")), None)
    if bad is not None:
        raise ValueError(
            f"{name} {doc_id!r:.80} contains {bad!r}; ids are printable text (no control "
            "characters or lone surrogates)"
        )
    if new:
        bad = next((ch for ch in doc_id if unicodedata.category(ch) in _NEW_ID_REFUSED), None)
        if bad is not None:
            raise ValueError(
                f"{name} {doc_id!r:.80} contains {bad!r}, which does not show (or breaks the "
                "line); ids are visible text"
            )
        if any(part in (".", "..") for part in doc_id.split("/")):
            raise ValueError(
                f"{name} {doc_id!r:.80} has a '.' or '..' path segment, which HTTP clients "
                "rewrite in /v1/documents/{id}; name it without one"
            )
    return doc_id


def is_finite(value: float) -> bool:
    """`math.isfinite`, False (not OverflowError) for an int too large for a float."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


# the largest count any option may hold: the engine takes u32 limits, and an int past
# them would overflow there instead of being refused here
MAX_COUNT = 2**31 - 1


def check_positive_int(name: str, value: object, *, optional: bool = False) -> None:
    """`value` is an int from 1 to `MAX_COUNT` (bools are not), or None when `optional`."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_COUNT:
        allowed = "None or a positive int" if optional else "a positive int"
        raise ValueError(f"{name} must be {allowed} (at most {MAX_COUNT}), got {value!r:.40}")


def check_texts(texts: Sequence[str], name: str) -> list[str]:
    """`texts` as a list, each a str; a lone str is refused (it is not a list of texts)."""
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of str, not a single str; wrap it: [{name}]")
    texts = list(texts)
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{name}[{i}] must be a str, got {type(text).__name__}")
    return texts

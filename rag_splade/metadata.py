"""What document metadata may be: checked whole before anything is written.

Metadata goes into each chunk's Qdrant payload, and filters address it by JSON path. A
value Qdrant cannot store or decode (nesting past its decoder's recursion limit, NaN, a
lone surrogate, an integer past 64 bits) once made an index unreadable, so every rule here
is checked when a `Document` is built and again by `HybridIndex.add` before its first
write. The rules:

- keys: non-empty strings of letters (any script), digits, `_` and `-`, at most
  `MAX_KEY_CHARS` characters (Qdrant's JSON paths cannot name other keys, so a filter could
  never reach them); `doc_id` and `chunk_index` are reserved at the top level (filters name
  the chunk's own fields by them);
- values: None, bool, int (signed 64-bit), finite float, str (valid Unicode), lists and
  dicts of these, nested at most `MAX_DEPTH` levels;
- size: at most `MAX_METADATA_BYTES` bytes as JSON.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

MAX_DEPTH = 16
MAX_KEY_CHARS = 128
MAX_METADATA_BYTES = 64 * 1024
# doc_id and chunk_index name the chunk's own fields in filters; tenant is the reserved
# tenant field (`rag_splade.store.tenants`), chosen by the index view, never by a filter
RESERVED_KEYS = ("doc_id", "chunk_index", "tenant")
I64 = (-(2**63), 2**63 - 1)
# fullmatch: `$` would let a final newline through ("title\n" is no key)
KEY = re.compile(r"[\w-]+")
KEY_RULE = (
    f"a non-empty string of letters, digits, '_' and '-' (at most {MAX_KEY_CHARS} characters)"
)


def check_key(key: object, where: str) -> str:
    """`key` if it is a key Qdrant's JSON paths can name, else a ValueError naming it."""
    if not isinstance(key, str):
        raise TypeError(f"{where}: keys must be strings, got {type(key).__name__} {key!r:.40}")
    if not KEY.fullmatch(key) or len(key) > MAX_KEY_CHARS:
        raise ValueError(f"{where}: key {key!r:.60} is not allowed; a key is {KEY_RULE}")
    return key


def check_depth(value: object, where: str, limit: int = MAX_DEPTH) -> None:
    """Raise a ValueError when dicts and lists in `value` nest deeper than `limit`; walked
    without recursion, so no input can exhaust the stack before it is refused."""
    stack: list[tuple[object, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, Mapping | list | tuple):
            if depth >= limit:
                raise ValueError(f"{where} nests deeper than {limit} levels")
            children = item.values() if isinstance(item, Mapping) else item
            stack.extend((child, depth + 1) for child in children)


def json_depth_ok(text: str, limit: int = MAX_DEPTH) -> bool:
    """Whether the JSON `text` nests at most `limit` arrays/objects deep, counted on the
    text itself (strings skipped) before any parser recurses into it."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return False
        elif ch in "]}":
            depth -= 1
    return True


def check_text(value: str, where: str) -> None:
    """A string that can be stored: valid Unicode (no lone surrogate)."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(
            f"{where} must be valid Unicode; character {e.start} is a lone surrogate"
        ) from None


def check_int(value: int, where: str) -> None:
    if not I64[0] <= value <= I64[1]:
        raise ValueError(f"{where} must fit in a signed 64-bit integer, got {value}")


_RESERVED_WHY = {
    "doc_id": "filters use it for the chunk's own field",
    "chunk_index": "filters use it for the chunk's own field",
    "tenant": "the tenant comes from the index view or the API key, not from metadata",
}


def check_metadata(metadata: object, doc_id: str = "?") -> None:
    """Raise a TypeError/ValueError naming the document and the field when `metadata`
    breaks a rule of this module."""
    where = f"document {doc_id!r}: metadata"
    if not isinstance(metadata, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(metadata).__name__}")
    for key in metadata:
        check_key(key, where)
        if key in RESERVED_KEYS:
            raise ValueError(f"{where}: key {key!r} is reserved ({_RESERVED_WHY[key]}); rename it")
        _check_value(metadata[key], f"{where}.{key}", 1)
    size = len(json.dumps(metadata, ensure_ascii=False).encode())
    if size > MAX_METADATA_BYTES:
        raise ValueError(
            f"{where} is {size} bytes as JSON; the limit is {MAX_METADATA_BYTES}: store large "
            "values elsewhere and keep a reference"
        )


def _check_value(value: Any, where: str, depth: int) -> None:
    if value is None or isinstance(value, bool):
        return
    if isinstance(value, int):
        check_int(value, where)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where} must be a finite number, got {value}")
    elif isinstance(value, str):
        check_text(value, where)
    elif isinstance(value, (list, tuple, Mapping)):
        if depth >= MAX_DEPTH:
            raise ValueError(f"{where} nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, Mapping):
            for key, item in value.items():
                check_key(key, where)
                _check_value(item, f"{where}.{key}", depth + 1)
        else:
            for i, item in enumerate(value):
                _check_value(item, f"{where}[{i}]", depth + 1)
    else:
        raise TypeError(
            f"{where} must be None, a bool, number, str, list or dict, got {type(value).__name__}"
        )

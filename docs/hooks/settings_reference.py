"""MkDocs hook: the configuration reference, generated from the settings classes.

A page that contains the marker `<!-- settings-reference -->` gets, in its place, one
table per settings class: every field, its `RAG_SPLADE_<FIELD>` variable, type, default
and description. The description is the field's `Field(description=...)`; a field without
one gets an empty cell. Generating the table at build time means it cannot drift from
the code: a field added, renamed or re-typed shows up on the next `mkdocs build`.
"""

from __future__ import annotations

import enum
import types
import typing
from pathlib import PurePath
from typing import Any

MARKER = "<!-- settings-reference -->"


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """MkDocs event: replace the marker with the generated tables."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render())


def settings_classes() -> list[tuple[str, type]]:
    """(heading, class): the library's settings, then the service's own fields."""
    from rag_splade.api.config import ServiceSettings
    from rag_splade.settings import Settings

    return [
        ("Library, CLI and service: `rag_splade.Settings`", Settings),
        ("HTTP service only: `rag_splade.api.config.ServiceSettings`", ServiceSettings),
    ]


def render() -> str:
    """Markdown: one table per class; a subclass lists only the fields it adds."""
    parts: list[str] = []
    seen: set[str] = set()
    for heading, cls in settings_classes():
        fields = {n: f for n, f in cls.model_fields.items() if n not in seen}
        seen.update(fields)
        prefix = cls.model_config.get("env_prefix", "")
        rows = [
            "| field | environment variable | type | default | description |",
            "|---|---|---|---|---|",
        ]
        for name, field in fields.items():
            cells = [
                f"`{name}`",
                f"`{env_name(prefix, name)}`",
                cell(type_name(field.annotation) + constraints(field.metadata)),
                cell(default_of(field)),
                cell(field.description or ""),
            ]
            rows.append("| " + " | ".join(cells) + " |")
        parts += [f"### {heading}", "", *rows, ""]
    return "\n".join(parts)


def env_name(prefix: str, name: str) -> str:
    return f"{prefix}{name}".upper()


def cell(text: str) -> str:
    """Table-safe: no pipes or line breaks inside a cell."""
    return text.replace("|", "\\|").replace("\n", " ")


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return " or ".join(f"`{a}`" for a in args)
    if origin in (typing.Union, types.UnionType):
        named = [type_name(a) for a in args if a is not type(None)]
        return " or ".join(named) + (", optional" if type(None) in args else "")
    if isinstance(annotation, type):
        return f"`{annotation.__name__}`"
    return f"`{annotation}`"


def constraints(metadata: list[Any]) -> str:
    """Bounds from `Field(ge=..., gt=..., le=..., lt=...)`."""
    signs = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}
    bounds = [
        f"{sign} {getattr(m, key)}"
        for m in metadata
        for key, sign in signs.items()
        if getattr(m, key, None) is not None
    ]
    return f", {', '.join(bounds)}" if bounds else ""


def default_of(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is None:
        return "unset"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, PurePath):
        return f"`./{value}`" if not value.is_absolute() else f"`{value}`"
    if value == "":
        return "empty"
    return f"`{value}`"

"""What a reader reports when an input gives no document (shared by every reader)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Problem:
    """An input that gave no document: `failed` (unreadable, undecodable, malformed) or
    `empty` (no text). `where` is the file, with `(line n)`, `(row n)`... for a record."""

    kind: Literal["failed", "empty"]
    where: str
    reason: str
    doc_id: str | None = None

    def describe(self) -> str:
        label = "FAILED" if self.kind == "failed" else "empty, skipped"
        return f"{label}: {self.where}: {self.reason}"


class ReadError(Exception):
    """A file or record that cannot be turned into a document (the message says why)."""

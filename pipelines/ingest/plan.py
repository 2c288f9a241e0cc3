"""What an ingest run would do, decided one document at a time: the `--dry-run` answer.

`IngestPlan` reads the inputs and, against what the index already holds, yields each
document to write (new, edited, or cut short before), with its content hash; unchanged
documents and duplicate ids are counted and reported, not yielded. After it has run,
`deletions()` names the stored documents the inputs no longer hold. Reading streams: a
corpus larger than memory is planned and written a batch at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from rag_splade import Document
from rag_splade.documents import CONTENT_HASH
from rag_splade.index import DocumentInfo

from .readers import Problem, ReadOptions, read_documents

__all__ = ["IngestPlan", "Planned", "content_hash", "is_current"]


def content_hash(document: Document) -> str:
    """SHA-256 of a document's text and metadata (the hash itself left out)."""
    metadata = {k: v for k, v in document.metadata.items() if k != CONTENT_HASH}
    blob = json.dumps(
        [document.text, metadata], ensure_ascii=False, sort_keys=True, default=str
    ).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()


def is_current(info: DocumentInfo | None, digest: str) -> bool:
    """Whether the stored document is complete and has this content hash."""
    return info is not None and info.complete and info.metadata.get(CONTENT_HASH) == digest


@dataclass(frozen=True)
class Planned:
    """A document to write: its content hash is in its metadata; `replaces` when the index
    holds a version of it."""

    document: Document
    replaces: bool


class IngestPlan:
    """The documents of `paths` to write into an index that holds `existing`.

    Args:
        existing: the stored documents (`HybridIndex.documents()`); empty for a new index.
        note: called with every input skipped (failed, empty, a duplicate id).
        on_unchanged: called for every document skipped because the index holds it as is.
        force: plan every document, changed or not.
    """

    def __init__(
        self,
        paths: Iterable[str | Path],
        existing: Mapping[str, DocumentInfo],
        *,
        note: Callable[[Problem], None],
        on_unchanged: Callable[[str], None],
        options: ReadOptions | None = None,
        force: bool = False,
    ) -> None:
        self.paths = paths
        self.existing = existing
        self.note = note
        self.on_unchanged = on_unchanged
        self.options = options
        self.force = force
        self._seen: dict[str, str] = {}  # id -> where it was read

    def __iter__(self) -> Iterator[Planned]:
        for doc in read_documents(self.paths, self.options, on_problem=self.note):
            where = str(doc.metadata.get("source", ""))
            first = self._seen.get(doc.id)
            if first is not None:
                reason = f"duplicate document id {doc.id!r} (first read from {first})"
                self.note(Problem("failed", where, reason, doc.id))
                continue
            self._seen[doc.id] = where
            digest = content_hash(doc)
            info = self.existing.get(doc.id)
            if not self.force and is_current(info, digest):
                self.on_unchanged(doc.id)
                continue
            metadata = {**doc.metadata, CONTENT_HASH: digest}
            yield Planned(Document(doc.id, doc.text, metadata), info is not None)

    def forget(self, doc_id: str) -> None:
        """Count `doc_id` as absent from the inputs (it read as text, chunked to nothing)."""
        self._seen.pop(doc_id, None)

    def deletions(self) -> list[str]:
        """Stored documents the inputs did not hold, sorted (after the plan has run)."""
        return sorted(set(self.existing) - set(self._seen))

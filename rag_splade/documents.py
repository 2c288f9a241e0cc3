"""Documents on their way into a store (planning `add`) and as a store holds them
(`DocumentInfo`). Every stored chunk records how many chunks its document has, so a
write cut short is seen for what it is, whoever wrote it."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rag_splade.text.chunking import Chunk
from rag_splade.types import Document

# (document, chunk) -> metadata for that chunk alone, e.g. the page it starts on
ChunkMetadata = Callable[[Document, Chunk], Mapping[str, Any]]
# Metadata that the project's own tools keep for their bookkeeping: the ingest job's change
# detection and PDF page offsets. Adapters (LlamaIndex) hide these from embeddings and LLMs.
CONTENT_HASH = "content_hash"  # SHA-256 of a document's text and metadata
PAGE_STARTS = "page_starts"  # offsets in a PDF document's text where its pages start
BOOKKEEPING_KEYS = (CONTENT_HASH, PAGE_STARTS)
# the payload fields `document_infos` reads
INFO_FIELDS = ("doc_id", "chunk_index", "chunk_count", "metadata", "chunk_keys")


@dataclass(frozen=True)
class DocumentInfo:
    """A document as the index holds it (`HybridIndex.documents`).

    `complete` is False unless its chunks are numbered 0..chunks-1, each records that
    many chunks, and all carry the same metadata: a replacement or a first write cut
    short leaves an incomplete document behind.
    """

    doc_id: str
    chunks: int
    metadata: dict[str, Any]
    complete: bool


@dataclass(frozen=True)
class PlannedChunk:
    """A chunk `add` will write, metadata settled, waiting for its batch."""

    doc_id: str
    chunk: Chunk
    total: int  # chunks in its document
    metadata: dict[str, Any]
    chunk_keys: tuple[str, ...]


def plan_chunks(
    documents: Sequence[Any],
    split: Callable[[Document], list[Chunk]],
    chunks: Sequence[Sequence[Chunk]] | None,
    chunk_metadata: ChunkMetadata | None,
) -> list[PlannedChunk]:
    """Check every document (and any chunks given for them) and plan their chunks.

    Raises before anything is written, naming the document at fault.
    """
    if chunks is not None and len(chunks) != len(documents):
        raise ValueError(
            f"chunks must hold one list per document: got {len(chunks)} for "
            f"{len(documents)} documents"
        )
    seen: set[str] = set()
    planned: list[PlannedChunk] = []
    for i, doc in enumerate(documents):
        if not isinstance(doc, Document):
            raise TypeError(f"documents[{i}] must be a Document, got {type(doc).__name__}")
        if doc.id in seen:
            raise ValueError(f"document id {doc.id!r} appears twice in one add() call")
        seen.add(doc.id)
        own = split(doc) if chunks is None else _checked(doc, chunks[i])
        if not own:
            raise ValueError(f"document {doc.id!r} has no text to index (empty or whitespace only)")
        for c in own:
            metadata, keys = _chunk_metadata(doc, c, chunk_metadata)
            planned.append(PlannedChunk(doc.id, c, len(own), metadata, keys))
    return planned


def _checked(doc: Document, given: Sequence[Chunk]) -> list[Chunk]:
    """Chunks passed in for `doc`: numbered from 0, inside its text, each holding the text
    of its span (as written, or NFKC-normalised as the chunker gives it), not blank."""
    given = list(given)
    for n, c in enumerate(given):
        fits = (
            isinstance(c, Chunk)
            and c.index == n
            and isinstance(c.start, int)
            and isinstance(c.end, int)
            and 0 <= c.start < c.end <= len(doc.text)
        )
        span = doc.text[c.start : c.end] if fits else ""
        if (
            not fits
            or c.text not in (span, unicodedata.normalize("NFKC", span))
            or not span.strip()
        ):
            raise ValueError(
                f"chunks for document {doc.id!r} must be what HybridIndex.chunk() gave for it "
                f"(Chunk objects numbered from 0, each the text of its span of the document, "
                f"not blank); item {n} is {c!r:.120}"
            )
    return given


def _chunk_metadata(
    doc: Document, chunk: Chunk, chunk_metadata: ChunkMetadata | None
) -> tuple[dict[str, Any], tuple[str, ...]]:
    if chunk_metadata is None:
        return doc.metadata, ()
    extra = dict(chunk_metadata(doc, chunk))
    clash = sorted(set(extra) & set(doc.metadata))
    if clash:
        raise ValueError(
            f"chunk_metadata for document {doc.id!r} repeats document metadata keys {clash}; "
            "use keys of its own"
        )
    return {**doc.metadata, **extra}, tuple(sorted(extra))


def document_infos(payloads: Iterable[Mapping[str, Any]]) -> dict[str, DocumentInfo]:
    """Group chunk payloads (`INFO_FIELDS`) by document."""
    found: dict[str, list[tuple[int, Any, dict[str, Any]]]] = {}
    for payload in payloads:
        own = set(payload.get("chunk_keys") or ())  # per-chunk keys differ by design
        metadata = {k: v for k, v in (payload.get("metadata") or {}).items() if k not in own}
        entry = (int(payload["chunk_index"]), payload.get("chunk_count"), metadata)
        found.setdefault(payload["doc_id"], []).append(entry)
    infos = {}
    for doc_id, entries in found.items():
        entries.sort(key=lambda e: e[0])
        n, first = len(entries), entries[0][2]
        complete = all(
            index == i and count == n and metadata == first
            for i, (index, count, metadata) in enumerate(entries)
        )
        infos[doc_id] = DocumentInfo(doc_id, n, first, complete)
    return infos

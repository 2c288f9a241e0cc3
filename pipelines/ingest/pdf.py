"""PDF files: one document per file, with the offset where each page starts.

`HybridIndex` chunks the document itself and stores every chunk's `start`/`end`
offsets, so the page of a chunk (or hit) follows from `metadata["page_starts"]`:
`pages_of(hit)`.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path
from typing import Any, Protocol

from pipelines.ingest.readers import ReadError
from rag_splade import Document

PAGE_STARTS = "page_starts"  # offset in the document text where page 1, 2, ... starts
PAGE_COUNT = "pages"
PAGE_BREAK = "\n\n"


def read_pdf(path: Path, source: str) -> Document:
    """The text of every page, joined by blank lines; id and `source` are `source`."""
    try:
        from pypdf import PdfReader
        from pypdf.errors import PyPdfError
    except ImportError as e:
        raise ImportError("reading PDF files needs pypdf: pip install 'rag-splade[pdf]'") from e
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ReadError("encrypted PDF (needs a password); decrypt it first")
        pages = [page.extract_text() or "" for page in reader.pages]
        info = reader.metadata
        title = info.title if info is not None else None
    except (PyPdfError, ValueError, KeyError, TypeError) as e:
        raise ReadError(f"not a readable PDF: {e}") from e
    starts, parts, offset = [], [], 0
    for text in pages:
        text = text.strip()
        starts.append(offset)
        parts.append(text)
        offset += len(text) + len(PAGE_BREAK)
    metadata: dict[str, Any] = {"source": source, PAGE_COUNT: len(pages), PAGE_STARTS: starts}
    if isinstance(title, str) and title.strip():
        metadata["title"] = title.strip()
    return Document(id=source, text=PAGE_BREAK.join(parts), metadata=metadata)


class _Located(Protocol):
    metadata: dict[str, Any]
    start: int
    end: int


def pages_of(chunk: _Located) -> list[int]:
    """The 1-based pages a stored chunk or search hit spans ([] for a non-PDF document).

    Example:
        >>> hit = index.search("rainy season", top_k=1)[0]  # doctest: +SKIP
        >>> pages_of(hit)  # doctest: +SKIP
        [3, 4]
    """
    starts = chunk.metadata.get(PAGE_STARTS)
    if not starts:
        return []
    first = bisect_right(starts, chunk.start)
    last = bisect_right(starts, max(chunk.start, chunk.end - 1))
    return list(range(max(first, 1), last + 1))

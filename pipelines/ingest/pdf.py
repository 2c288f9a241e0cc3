"""PDF files: one document per file, with the offset where each page starts.

`HybridIndex` chunks the document itself; `page_metadata` gives each chunk its first and
last page (`page`, `page_end` in the chunk's metadata), and `pages_of(hit)` lists every
page a chunk spans from the document's `page_starts`.
"""

from __future__ import annotations

from bisect import bisect_right
from pathlib import Path
from typing import Any, Protocol

from rag_splade import Document
from rag_splade.documents import PAGE_STARTS
from rag_splade.text.chunking import Chunk

from .problems import ReadError

PAGE_COUNT = "pages"
PAGE_BREAK = "\n\n"
FIRST_PAGE, LAST_PAGE = "page", "page_end"  # per-chunk metadata


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
    return _pages(chunk.metadata.get(PAGE_STARTS), chunk.start, chunk.end)


def page_metadata(document: Document, chunk: Chunk) -> dict[str, int]:
    """Chunk metadata for `HybridIndex.add(chunk_metadata=...)`: the first and last page
    of a PDF chunk (`page`, `page_end`), so hits can cite and filters can select pages."""
    pages = _pages(document.metadata.get(PAGE_STARTS), chunk.start, chunk.end)
    return {FIRST_PAGE: pages[0], LAST_PAGE: pages[-1]} if pages else {}


def _pages(starts: list[int] | None, start: int, end: int) -> list[int]:
    if not starts:
        return []
    first = bisect_right(starts, start)
    last = bisect_right(starts, max(start, end - 1))
    return list(range(max(first, 1), last + 1))

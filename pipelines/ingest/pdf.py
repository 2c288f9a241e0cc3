"""PDF files: one document per file, with the offset where each page starts.

`page_chunks` cuts a PDF page by page, so no chunk crosses a page boundary: each chunk's
`page` (and `page_end`, the same page) in its metadata cites it exactly and selects it
in a filter (`--filter page=3`); `pages_of(hit)` reads the page from `page_starts`.
"""

from __future__ import annotations

import dataclasses
import re
from bisect import bisect_right
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from rag_splade import Document
from rag_splade.documents import PAGE_STARTS
from rag_splade.text.chunking import Chunk

from .problems import ReadError

PAGE_COUNT = "pages"
PAGE_BREAK = "\n\n"
FIRST_PAGE, LAST_PAGE = "page", "page_end"  # per-chunk metadata
# Titles that PDF writers fill in when the author gave none.
_PLACEHOLDER_TITLE = re.compile(r"(untitled|無題)([\s_-]*(document|\d+))?", re.I)


def read_pdf(path: Path, source: str) -> Document:
    """The text of every page, joined by blank lines; id and `source` are `source`.
    `title` is the PDF's own `/Title`, or the file name (without `.pdf`) when that is
    empty or a placeholder such as "untitled"."""
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
    title = title.strip() if isinstance(title, str) else ""
    metadata["title"] = title if title and not _PLACEHOLDER_TITLE.fullmatch(title) else path.stem
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


def page_chunks(document: Document, split: Callable[[Document], list[Chunk]]) -> list[Chunk]:
    """`split` (e.g. `HybridIndex.chunk`) applied page by page to a PDF document, offsets
    moved into the whole text and chunks numbered on; any other document is split whole.

    Example:
        >>> chunks = page_chunks(doc, index.chunk)  # doctest: +SKIP
        >>> index.add([doc], chunks=[chunks], chunk_metadata=page_metadata)  # doctest: +SKIP
    """
    starts = document.metadata.get(PAGE_STARTS)
    if not starts:
        return split(document)
    ends = [start - len(PAGE_BREAK) for start in starts[1:]] + [len(document.text)]
    chunks: list[Chunk] = []
    for start, end in zip(starts, ends, strict=True):
        page = Document(document.id, document.text[start:end], document.metadata)
        for chunk in split(page):
            chunks.append(
                dataclasses.replace(
                    chunk, index=len(chunks), start=chunk.start + start, end=chunk.end + start
                )
            )
    return chunks


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

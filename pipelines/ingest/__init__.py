"""Ingestion: files and folders into a `HybridIndex`, incrementally.

Formats: `.txt`, `.md`, `.jsonl`, `.csv` (values typed), SQuAD-style `.json` (or a JSON
list of records), `.pdf` (chunked page by page), and with the extra `formats` `.docx`
and `.html`. Command line: `rag-splade ingest PATH...` (see `add_arguments`).

Example:
    >>> from rag_splade.pipelines.ingest import ingest
    >>> report = ingest(["./docs"], HybridIndex.from_settings())  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
"""

from .cli import add_arguments, run
from .core import (
    CONTENT_HASH,
    IngestReport,
    content_hash,
    ingest,
    is_current,
)
from .pdf import PAGE_STARTS, page_chunks, pages_of
from .readers import SUFFIXES, Problem, ReadError, ReadOptions, read_documents, typed_value

__all__ = [
    "CONTENT_HASH",
    "PAGE_STARTS",
    "SUFFIXES",
    "IngestReport",
    "Problem",
    "ReadError",
    "ReadOptions",
    "add_arguments",
    "content_hash",
    "ingest",
    "is_current",
    "page_chunks",
    "pages_of",
    "read_documents",
    "run",
    "typed_value",
]

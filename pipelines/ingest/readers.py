"""Turn files into `Document`s: plain text, Markdown, JSON Lines, CSV, SQuAD-style JSON, PDF,
Word (`.docx`) and HTML (the last two with the extra `formats`).

A file that cannot be read or decoded, or a record without text, is reported as a
`Problem` and skipped; the rest of the input is still read.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rag_splade import Document
from rag_splade.squad import SquadProblem, squad_items
from rag_splade.store.edge import EdgeStore

from .decoding import decode_text
from .formats import HTML_SUFFIXES, read_docx, read_html
from .pdf import read_pdf
from .problems import Problem, ReadError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReadOptions:
    """How records (`.jsonl`, `.csv`, a JSON list) map to documents.

    Args:
        id_field: field holding the document id; a record without it gets
            `<file>#<line or row>` (which moves when rows are inserted above it).
        text_field: field holding the text to index.
        metadata_fields: fields kept as metadata; None keeps every other field.
        encoding: encoding of text, Markdown, JSON Lines, CSV and JSON files (and of HTML
            files that declare no charset of their own).
        infer_types: CSV metadata values that read as an integer, a decimal number or
            `true`/`false` are stored as numbers and booleans (so range filters work);
            False keeps every CSV value a string. Decided per value; a number with a
            leading zero (`007`, a code) stays a string.
    """

    id_field: str = "id"
    text_field: str = "text"
    metadata_fields: tuple[str, ...] | None = None
    encoding: str = "utf-8"
    infer_types: bool = True


OnProblem = Callable[[Problem], None]


def read_documents(
    paths: Iterable[str | Path],
    options: ReadOptions | None = None,
    *,
    on_problem: OnProblem | None = None,
) -> Iterator[Document]:
    """Yield the documents of files and folders (folders recursively; hidden entries and
    Edge index folders skipped).

    Text and PDF files give one document each, with the path relative to the input folder
    (a file given directly: its name) as id and `metadata["source"]`. Records of `.jsonl`,
    `.csv` and JSON-list files give one document each; a SQuAD-style `.json` gives one per
    paragraph, id `<file>#<title>-<n>` (so two files with the same titles do not collide).

    Args:
        on_problem: called for every input skipped; by default a failure raises
            `ReadError` and an empty input is logged.

    Example:
        >>> options = ReadOptions(text_field="body")
        >>> docs = list(read_documents(["./docs"], options))  # doctest: +SKIP
    """
    options = options or ReadOptions()
    report = on_problem or _raise_or_log
    for path in paths:
        path = Path(path)
        if path.is_dir():
            for file in _walk(path):
                yield from _read_file(file, path, options, report)
        elif path.exists() or path.is_symlink():
            if path.suffix.lower() not in SUFFIXES:
                report(
                    Problem("failed", str(path), f"unsupported file type (supported: {SUFFIXES})")
                )
                continue
            yield from _read_file(path, path.parent, options, report)
        else:
            report(Problem("failed", str(path), "no such file or folder"))


def _raise_or_log(problem: Problem) -> None:
    if problem.kind == "failed":
        raise ReadError(problem.describe())
    logger.warning(problem.describe())


def _walk(root: Path) -> Iterator[Path]:
    for folder, dirs, files in os.walk(root):
        if EdgeStore.is_index_dir(folder):  # an Edge index folder, not documents
            dirs.clear()
            continue
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            if not name.startswith(".") and Path(name).suffix.lower() in SUFFIXES:
                yield Path(folder) / name


def _read_file(
    path: Path, root: Path, options: ReadOptions, report: OnProblem
) -> Iterator[Document]:
    source = path.relative_to(root).as_posix()
    suffix = path.suffix.lower()
    try:
        records = READERS[suffix](path, source, options)
        for where, item in records:
            label = f"{path} ({where})" if where else str(path)
            if isinstance(item, Problem):
                report(Problem(item.kind, label, item.reason, item.doc_id))
            elif not item.text.strip():
                hint = " (a scanned PDF needs OCR first)" if suffix == ".pdf" else ""
                report(Problem("empty", label, "no text" + hint, item.id))
            else:
                yield item
    except (OSError, ReadError, ImportError) as e:
        report(Problem("failed", str(path), _reason(e)))


def _reason(error: Exception) -> str:
    if isinstance(error, OSError):
        return f"cannot read: {error.strerror or error}"
    return str(error)


def _text_document(text: str, source: str, suffix: str) -> Document:
    metadata: dict[str, Any] = {"source": source}
    if suffix == ".md":
        title = next(
            (line.lstrip("#").strip() for line in text.splitlines() if line.startswith("# ")),
            None,
        )
        if title:
            metadata["title"] = title
    return Document(id=source, text=text, metadata=metadata)


RecordItem = tuple[str, "Document | Problem"]


_INT = re.compile(r"[+-]?(0|[1-9][0-9]*)")
_FLOAT = re.compile(
    r"[+-]?(0|[1-9][0-9]*)?\.[0-9]+([eE][+-]?[0-9]+)?"  # 1.5, .5, 1.5e3
    r"|[+-]?(0|[1-9][0-9]*)[eE][+-]?[0-9]+"  # 1e3
)
_BOOLS = {"true": True, "false": False}


def typed_value(value: object) -> object:
    """A CSV cell as the value it spells: `42` -> 42, `-1.5` -> -1.5, `1e3` -> 1000.0,
    `true`/`False` -> bool; anything else (`007`, `1,000`, `nan`, an empty cell) unchanged.

    Example:
        >>> [typed_value(v) for v in ["4", "4.5", "TRUE", "007", "4 stars"]]
        [4, 4.5, True, '007', '4 stars']
    """
    if not isinstance(value, str):
        return value
    text = value.strip()
    if _INT.fullmatch(text):
        return int(text)
    if _FLOAT.fullmatch(text):
        return float(text)
    return _BOOLS.get(text.lower(), value)


def _record(
    record: object, source: str, n: int, options: ReadOptions, *, typed: bool = False
) -> Document | Problem:
    """Record `n` (JSON object or CSV row) as a document, or the problem with it; `typed`:
    metadata strings become the numbers and booleans they spell (CSV)."""
    where = ""  # the caller adds the file and line
    if not isinstance(record, dict):
        return Problem("failed", where, f"expected a JSON object, got {type(record).__name__}")
    fallback_id = f"{source}#{n}"
    raw_id = record.get(options.id_field)
    doc_id = fallback_id if raw_id in (None, "") else str(raw_id)
    if options.text_field not in record:
        fields = ", ".join(sorted(map(str, record))) or "none"
        return Problem(
            "failed",
            where,
            f"no {options.text_field!r} field (fields: {fields}); set --text-field",
            doc_id,
        )
    text = record[options.text_field]
    if text is None:
        text = ""
    if not isinstance(text, str):
        return Problem(
            "failed",
            where,
            f"field {options.text_field!r} must be a string, got {type(text).__name__}",
            doc_id,
        )
    skip = {options.id_field, options.text_field}
    keys = options.metadata_fields or [k for k in record if k not in skip]
    metadata = {k: record[k] for k in keys if k in record and k not in skip}
    if typed:
        metadata = {k: typed_value(v) for k, v in metadata.items()}
    metadata.setdefault("source", source)
    return Document(id=doc_id, text=text, metadata=metadata)


def _jsonl_records(text: str, source: str, options: ReadOptions) -> Iterator[RecordItem]:
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        where = f"line {n}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            yield where, Problem("failed", "", f"invalid JSON: {e.msg} (column {e.colno})")
            continue
        yield where, _record(record, source, n, options)


def _csv_records(text: str, source: str, options: ReadOptions) -> Iterator[RecordItem]:
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""))
        for n, row in enumerate(reader, start=1):
            where = f"row {n}"
            if None in row:  # more cells than header columns
                yield where, Problem("failed", "", "more cells than header columns")
                continue
            yield where, _record(row, source, n, options, typed=options.infer_types)
    except csv.Error as e:
        raise ReadError(f"invalid CSV: {e}") from e


def _json_records(text: str, source: str, options: ReadOptions) -> Iterator[RecordItem]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ReadError(f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})") from e
    if isinstance(data, list):  # a list of records, like JSON Lines
        for n, record in enumerate(data):
            yield f"item {n}", _record(record, source, n, options)
        return
    try:
        items = squad_items(data, with_questions=False)
        for item in items:
            if isinstance(item, SquadProblem):
                yield item.where, Problem("failed", "", item.message)
                continue
            metadata = {"title": item.title, "source": source}
            yield item.id, Document(id=f"{source}#{item.id}", text=item.text, metadata=metadata)
    except ValueError as e:
        raise ReadError(f"{e}, or a list of records") from e


# -- one reader per file suffix ---------------------------------------------------------------
FileReader = Callable[[Path, str, ReadOptions], Iterable[RecordItem]]


def _text_file(path: Path, source: str, options: ReadOptions) -> Iterable[RecordItem]:
    text = decode_text(path.read_bytes(), options.encoding)
    return [("", _text_document(text, source, path.suffix.lower()))]


def _decoded(
    records: Callable[[str, str, ReadOptions], Iterator[RecordItem]],
) -> FileReader:
    def read(path: Path, source: str, options: ReadOptions) -> Iterable[RecordItem]:
        return records(decode_text(path.read_bytes(), options.encoding), source, options)

    return read


def _pdf_file(path: Path, source: str, options: ReadOptions) -> Iterable[RecordItem]:
    return [("", read_pdf(path, source))]


def _docx_file(path: Path, source: str, options: ReadOptions) -> Iterable[RecordItem]:
    return [("", read_docx(path, source))]


def _html_file(path: Path, source: str, options: ReadOptions) -> Iterable[RecordItem]:
    return [("", read_html(path.read_bytes(), source, options.encoding))]


READERS: dict[str, FileReader] = {
    ".txt": _text_file,
    ".md": _text_file,
    ".jsonl": _decoded(_jsonl_records),
    ".csv": _decoded(_csv_records),
    ".json": _decoded(_json_records),
    ".pdf": _pdf_file,
    ".docx": _docx_file,
    **dict.fromkeys(HTML_SUFFIXES, _html_file),
}
SUFFIXES = tuple(READERS)

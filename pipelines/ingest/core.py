"""`ingest`: read inputs, skip what the index already holds, write the rest in committed batches.

Every stored document carries `metadata["content_hash"]` (SHA-256 of its text and
metadata). A document is unchanged when the index holds it complete (every chunk it
was cut into, as `HybridIndex.documents` reports) with the same hash; anything else
(new, edited, or a write cut short) is written again. Batches are committed as they
go, so an interrupted run loses nothing already written and a rerun resumes where it
stopped. Each document is chunked once: the chunks that size a batch are the ones added
(a PDF page by page, so that no chunk crosses a page). A dry run makes the same decisions
and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_splade import Document, HybridIndex
from rag_splade.checks import check_positive_int
from rag_splade.documents import CONTENT_HASH
from rag_splade.index import DocumentInfo
from rag_splade.text.chunking import Chunk

from .pdf import page_chunks, page_metadata
from .readers import OnProblem, Problem, ReadOptions, read_documents

logger = logging.getLogger(__name__)


@dataclass
class IngestReport:
    """What a run did. `problems` lists every input skipped (failed or empty)."""

    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    deleted: int = 0
    chunks: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    deletion_skipped: bool = False
    interrupted: bool = False
    dry_run: bool = False
    # Document ids by what happened (or, in a dry run, would happen) to them.
    ids: dict[str, list[str]] = field(
        default_factory=lambda: {"added": [], "replaced": [], "deleted": []}
    )

    @property
    def failed(self) -> int:
        return sum(p.kind == "failed" for p in self.problems)

    @property
    def empty(self) -> int:
        return sum(p.kind == "empty" for p in self.problems)

    @property
    def ok(self) -> bool:
        """True when no input failed and the run finished (empty inputs are fine)."""
        return self.failed == 0 and not self.interrupted

    def summary(self, *, list_ids: int = 20) -> str:
        """What the run did, in a few lines; a dry run also lists the ids it would add,
        replace and delete (the first `list_ids` of each)."""
        if self.dry_run:
            lines = [
                "dry run: nothing written",
                f"documents: {self.added} to add, {self.replaced} to replace, "
                f"{self.unchanged} unchanged, {self.deleted} to delete, "
                f"{self.failed} failed, {self.empty} empty",
            ]
            for kind, verb in (("added", "add"), ("replaced", "replace"), ("deleted", "delete")):
                ids = self.ids[kind]
                if ids:
                    more = f" ... and {len(ids) - list_ids} more" if len(ids) > list_ids else ""
                    lines.append(f"would {verb}: " + ", ".join(ids[:list_ids]) + more)
        else:
            rate = self.chunks / self.seconds if self.seconds > 0 else 0.0
            lines = [
                f"documents: {self.added} added, {self.replaced} replaced, "
                f"{self.unchanged} unchanged (skipped), {self.deleted} deleted, "
                f"{self.failed} failed, {self.empty} empty",
                f"chunks written: {self.chunks} in {self.seconds:.1f} s ({rate:.1f} chunks/s)",
            ]
        if self.deletion_skipped:
            lines.append(
                f"--delete-missing not applied: {plural(self.failed, 'input')} failed to read"
            )
        if self.interrupted:
            lines.append("interrupted: what was written is kept; run again to resume")
        failures = [p for p in self.problems if p.kind == "failed"]
        if failures:
            lines.append(f"{plural(len(failures), 'failed input')}:")
            lines += [f"  {p.where}: {p.reason}" for p in failures]
        return "\n".join(lines)


def plural(n: int, noun: str) -> str:
    """`1 input`, `2 inputs`."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


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


def ingest(
    paths: Iterable[str | Path],
    index: HybridIndex | None,
    *,
    options: ReadOptions | None = None,
    batch_size: int = 64,
    delete_missing: bool = False,
    force: bool = False,
    optimize: bool = True,
    progress: bool = False,
    on_problem: OnProblem | None = None,
    report: IngestReport | None = None,
    dry_run: bool = False,
) -> IngestReport:
    """Add the documents of `paths` to `index`, skipping unchanged ones.

    Args:
        index: the index to fill; None only with `dry_run` (no index yet: every
            document would be added).
        batch_size: chunks encoded and committed together (a longer document is
            committed on its own).
        delete_missing: delete stored documents that the inputs no longer hold. The
            inputs are taken as the whole corpus; nothing is deleted if any input failed
            (`report.deletion_skipped` says so).
        force: write every document, changed or not.
        optimize: end with `index.optimize()` when anything was written.
        progress: show a tqdm bar (documents, chunks, chunks/s) on stderr.
        on_problem: called for every skipped input (default: logged as a warning).
        report: filled in as the run goes (useful when it is interrupted).
        dry_run: decide what would be added, replaced and deleted (`report.ids`), and
            write nothing: no chunking, no encoding, no optimize.

    Example:
        >>> report = ingest(["./docs"], HybridIndex.from_settings())  # doctest: +SKIP
        >>> print(report.summary())  # doctest: +SKIP
    """
    check_positive_int("batch_size", batch_size)
    if index is None and not dry_run:
        raise ValueError("ingest() needs an index to write to (None is only for dry_run=True)")
    report = report if report is not None else IngestReport()
    report.dry_run = dry_run
    started = time.perf_counter()
    bar = _progress_bar(progress and not dry_run)

    def note(problem: Problem) -> None:
        report.problems.append(problem)
        (on_problem or _log_problem)(problem)

    existing = index.documents() if index is not None else {}
    seen: dict[str, str] = {}
    group: list[tuple[Document, list[Chunk], bool]] = []  # (doc, its chunks, replaces one)

    def commit() -> None:
        if not group or index is None:
            return
        chunks = sum(len(c) for _, c, _ in group)
        index.add(
            [doc for doc, _, _ in group],
            batch_size=chunks,
            chunk_metadata=page_metadata,
            chunks=[c for _, c, _ in group],
        )
        for doc, _, replaces in group:
            _count(report, doc.id, replaces)
        report.chunks += chunks
        group.clear()
        bar.update(chunks)
        _show(bar, report)

    try:
        for doc in read_documents(paths, options, on_problem=note):
            where = str(doc.metadata.get("source", ""))
            if doc.id in seen:
                note(
                    Problem(
                        "failed",
                        where,
                        f"duplicate document id {doc.id!r} (first read from {seen[doc.id]})",
                        doc.id,
                    )
                )
                continue
            seen[doc.id] = where
            digest = content_hash(doc)
            info = existing.get(doc.id)
            if not force and is_current(info, digest):
                report.unchanged += 1
                _show(bar, report)
                continue
            if dry_run:
                _count(report, doc.id, info is not None)
                continue
            assert index is not None  # checked above
            chunks = page_chunks(doc, index.chunk)
            if not chunks:  # whitespace only after chunking
                note(Problem("empty", where, "no text", doc.id))
                del seen[doc.id]
                continue
            metadata = {**doc.metadata, CONTENT_HASH: digest}
            group.append((Document(doc.id, doc.text, metadata), chunks, info is not None))
            if sum(len(c) for _, c, _ in group) >= batch_size:
                commit()
        commit()
        if delete_missing:
            if report.failed:
                report.deletion_skipped = True  # the summary says so (once)
            else:
                for doc_id in sorted(set(existing) - set(seen)):
                    if index is not None and not dry_run:
                        index.delete(doc_id)
                    report.deleted += 1
                    report.ids["deleted"].append(doc_id)
                _show(bar, report)
        if optimize and report.chunks and index is not None:
            index.optimize()
    except BaseException:
        report.interrupted = True
        raise
    finally:
        report.seconds = time.perf_counter() - started
        bar.close()
    return report


def _count(report: IngestReport, doc_id: str, replaces: bool) -> None:
    kind = "replaced" if replaces else "added"
    setattr(report, kind, getattr(report, kind) + 1)
    report.ids[kind].append(doc_id)


def _log_problem(problem: Problem) -> None:
    logger.warning(problem.describe())


def _progress_bar(enabled: bool) -> Any:
    from tqdm import tqdm

    return tqdm(desc="ingest", unit=" chunks", disable=not enabled, dynamic_ncols=True)


def _show(bar: Any, report: IngestReport) -> None:
    bar.set_postfix(
        docs=report.added + report.replaced,
        unchanged=report.unchanged,
        failed=report.failed,
        refresh=False,
    )

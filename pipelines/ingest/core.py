"""`ingest`: plan (read inputs, skip what the index already holds), then write the rest in
committed batches.

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

import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rag_splade import HybridIndex
from rag_splade.checks import check_positive_int
from rag_splade.documents import CONTENT_HASH
from rag_splade.text.chunking import Chunk

from .pdf import page_chunks, page_metadata
from .plan import IngestPlan, Planned, content_hash, is_current
from .readers import OnProblem, Problem, ReadOptions

__all__ = ["CONTENT_HASH", "IngestReport", "content_hash", "ingest", "is_current", "plural"]

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

    def unchanged(doc_id: str) -> None:
        report.unchanged += 1
        _show(bar, report)

    existing = index.documents() if index is not None else {}
    plan = IngestPlan(
        paths, existing, note=note, on_unchanged=unchanged, options=options, force=force
    )
    try:
        if index is None or dry_run:
            for planned in plan:
                _count(report, planned.document.id, planned.replaces)
        else:
            _write(plan, index, report, batch_size, bar, note)
        if delete_missing:
            _delete_missing(plan, None if dry_run else index, report)
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


def _write(
    plan: IngestPlan,
    index: HybridIndex,
    report: IngestReport,
    batch_size: int,
    bar: Any,
    note: OnProblem,
) -> None:
    """Chunk each planned document once and commit them `batch_size` chunks at a time."""
    group: list[tuple[Planned, list[Chunk]]] = []

    def commit() -> None:
        if not group:
            return
        chunks = sum(len(c) for _, c in group)
        index.add(
            [planned.document for planned, _ in group],
            batch_size=chunks,
            chunk_metadata=page_metadata,
            chunks=[c for _, c in group],
        )
        for planned, _ in group:
            _count(report, planned.document.id, planned.replaces)
        report.chunks += chunks
        group.clear()
        bar.update(chunks)
        _show(bar, report)

    for planned in plan:
        doc = planned.document
        chunks = page_chunks(doc, index.chunk)
        if not chunks:  # whitespace only after chunking
            note(Problem("empty", str(doc.metadata.get("source", "")), "no text", doc.id))
            plan.forget(doc.id)
            continue
        group.append((planned, chunks))
        if sum(len(c) for _, c in group) >= batch_size:
            commit()
    commit()


def _delete_missing(plan: IngestPlan, index: HybridIndex | None, report: IngestReport) -> None:
    """Delete what the inputs no longer hold (`index` None: only count it), unless an input
    failed: then the inputs are not the whole corpus and nothing is deleted."""
    if report.failed:
        report.deletion_skipped = True  # the summary says so (once)
        return
    for doc_id in plan.deletions():
        if index is not None:
            index.delete(doc_id)
        report.deleted += 1
        report.ids["deleted"].append(doc_id)


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

"""`rag-splade ingest`: the command-line face of `ingest`."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..index_options import (
    add_index_arguments,
    add_tenant_argument,
    index_overrides,
    open_tenant,
    settings_problem,
)
from .readers import SUFFIXES, Problem, ReadOptions

if TYPE_CHECKING:
    from rag_splade import Settings

    from .core import IngestReport

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = f"""\
Add files and folders (recursively) to the index: {", ".join(SUFFIXES)}.
Unchanged documents are skipped (content hash), changed ones replaced. Models, device
and index come from RAG_SPLADE_* settings; the flags below override them. Exit status:
0 done, 1 some inputs failed (the rest was ingested), 2 bad settings or a missing input
path (checked before any model loads), 130 interrupted (what was written is kept; run
again to resume)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the `ingest` arguments to `parser` (a sub-command parser)."""
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("paths", nargs="+", metavar="PATH", help="files or folders to ingest")
    records = parser.add_argument_group("records (.jsonl, .csv, a JSON list)")
    records.add_argument("--id-field", default="id", help="field with the document id")
    records.add_argument("--text-field", default="text", help="field with the text")
    records.add_argument(
        "--metadata-fields",
        type=_field_list,
        default=None,
        metavar="A,B",
        help="comma-separated fields kept as metadata (default: all other fields)",
    )
    records.add_argument(
        "--no-infer-types",
        action="store_true",
        help="keep every CSV value a string (default: numbers and true/false are typed, "
        "per value, so range filters work)",
    )
    parser.add_argument(
        "--encoding", default="utf-8", help="encoding of text files (default utf-8)"
    )
    store = add_index_arguments(parser)
    add_tenant_argument(store)
    store.add_argument("--sparse-model", help="SPLADE model: hub id or local folder")
    store.add_argument("--dense-model", help="dense model: hub id or local folder")
    store.add_argument(
        "--batch-size",
        type=_positive_int,
        help="chunks encoded and committed together (default RAG_SPLADE_BATCH_SIZE)",
    )
    store.add_argument(
        "--tokenizer-workers",
        type=_non_negative_int,
        help="processes that tokenize ahead of the model, for GPUs "
        "(default RAG_SPLADE_TOKENIZER_WORKERS, 0)",
    )
    parser.add_argument(
        "--delete-missing",
        action="store_true",
        help="delete stored documents the inputs no longer hold (the inputs are the whole "
        "corpus; skipped when an input fails)",
    )
    parser.add_argument(
        "--force", action="store_true", help="re-encode every document, changed or not"
    )
    parser.add_argument(
        "--no-optimize", action="store_true", help="do not optimise the Edge index at the end"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="say what would be added, replaced and deleted; write nothing (no index is "
        "created; an existing one is opened to compare, which loads the models)",
    )
    parser.add_argument(
        "--reindex",
        action="store_true",
        help="delete the index and rebuild it from the inputs with the configured models "
        "(for an index built with other models); the inputs are read first and nothing is "
        "deleted if one fails",
    )


def run(args: argparse.Namespace) -> int:
    """Run `ingest` with parsed arguments; print problems (stderr) and a summary (stdout)."""
    from pydantic import ValidationError

    from rag_splade import Settings

    missing = input_problems(args.paths)
    if missing:  # before any model loads
        for line in missing:
            print(f"rag-splade ingest: {line}", file=sys.stderr)
        return EXIT_USAGE
    try:
        settings = Settings(
            **index_overrides(
                args, "batch_size", "tokenizer_workers", "sparse_model", "dense_model"
            )
        )
    except ValidationError as e:
        print(f"rag-splade ingest: {settings_problem(e)}", file=sys.stderr)
        return EXIT_USAGE
    options = ReadOptions(
        id_field=args.id_field,
        text_field=args.text_field,
        metadata_fields=args.metadata_fields,
        encoding=args.encoding,
        infer_types=not args.no_infer_types,
    )
    try:
        return _run(args, settings, options)
    except (ValueError, ImportError, OSError, RuntimeError) as e:
        print(f"rag-splade ingest: {e}", file=sys.stderr)
        return EXIT_USAGE


def input_problems(paths: Sequence[str]) -> list[str]:
    """What is wrong with the input paths themselves (missing, or a file of a type that
    cannot be read), one line each; folders are walked later."""
    problems = []
    for raw in paths:
        path = Path(raw)
        if not (path.exists() or path.is_symlink()):
            problems.append(f"no such file or folder: {path.absolute()}")
        elif not path.is_dir() and path.suffix.lower() not in SUFFIXES:
            problems.append(f"{path}: unsupported file type (supported: {', '.join(SUFFIXES)})")
    return problems


def _run(args: argparse.Namespace, settings: Settings, options: ReadOptions) -> int:
    from tqdm import tqdm

    from rag_splade import HybridIndex
    from rag_splade.factories import drop_index, index_exists

    from .core import IngestReport, ingest, plural
    from .readers import read_documents

    where = settings.qdrant_url or str(settings.index_path)
    models = f"sparse={settings.sparse_model}, dense={settings.dense_model}"

    def show(problem: Problem) -> None:
        tqdm.write(problem.describe(), file=sys.stderr)

    if args.reindex and getattr(args, "tenant", None):
        raise ValueError(
            "--reindex rebuilds the whole index, every tenant's documents: run it without "
            "--tenant (and re-ingest each tenant after)"
        )
    exists = index_exists(settings)
    if args.reindex and exists:
        # Read everything before deleting anything: a failed input leaves the index as it is.
        readable = IngestReport()
        count = sum(1 for _ in read_documents(args.paths, options, on_problem=show_into(readable)))
        if readable.failed:
            print(
                f"--reindex not applied: {plural(readable.failed, 'input')} failed to read; "
                f"nothing deleted, the index at {where} is unchanged",
                file=sys.stderr,
            )
            return EXIT_FAILED
        what = f"{plural(count, 'document')} in the inputs with {models}"
        if args.dry_run:
            print(f"--reindex: would delete the index at {where} and rebuild it from {what}")
        else:  # said before anything is deleted
            print(f"--reindex: deleting the index at {where}, then rebuilding it from {what}")
            drop_index(settings)
            exists = False
    if args.dry_run:
        report = IngestReport()
        if exists and not args.reindex:
            print(f"Comparing with {where} ({models})")
            with HybridIndex.from_settings(settings, load_reranker=False) as index:
                ingest(
                    args.paths,
                    open_tenant(index, args),
                    options=options,
                    dry_run=True,
                    on_problem=show,
                    delete_missing=args.delete_missing,
                    force=args.force,
                    report=report,
                )
        else:  # no index (or one that would be rebuilt): every document is new
            if not args.reindex:
                print(f"No index at {where} yet: every document would be added")
            ingest(args.paths, None, options=options, dry_run=True, on_problem=show, report=report)
        print(report.summary())
        return EXIT_FAILED if report.failed else EXIT_OK

    index = HybridIndex.from_settings(settings, load_reranker=False)
    try:
        view = open_tenant(index, args)
    except ValueError:
        index.close()
        raise
    tenant = f", tenant {view.tenant_id}" if view is not index else ""
    print(f"Ingesting into {where} ({models}{tenant})")
    report = IngestReport()
    code = EXIT_OK
    try:
        ingest(
            args.paths,
            view,
            options=options,
            batch_size=settings.batch_size,
            delete_missing=args.delete_missing,
            force=args.force,
            optimize=not args.no_optimize,
            progress=not args.no_progress,
            on_problem=show,
            report=report,
        )
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
    except BaseException:
        print(report.summary(), file=sys.stderr)
        raise
    finally:
        index.close()
    print(report.summary())
    if code == EXIT_OK and report.failed:
        code = EXIT_FAILED
    return code


def show_into(report: IngestReport) -> Callable[[Problem], None]:
    """A problem callback that prints the problem and keeps it in `report`."""

    def show(problem: Problem) -> None:
        report.problems.append(problem)
        print(problem.describe(), file=sys.stderr)

    return show


def _field_list(value: str) -> tuple[str, ...]:
    fields = tuple(f.strip() for f in value.split(",") if f.strip())
    if not fields:
        raise argparse.ArgumentTypeError(f"expected comma-separated field names, got {value!r}")
    return fields


def _positive_int(value: str) -> int:
    return _int_from(value, 1, "a positive integer")


def _non_negative_int(value: str) -> int:
    return _int_from(value, 0, "an integer >= 0")


def _int_from(value: str, lowest: int, what: str) -> int:
    try:
        n = int(value)
    except ValueError:
        n = lowest - 1
    if n < lowest:
        raise argparse.ArgumentTypeError(f"must be {what}, got {value!r}")
    return n

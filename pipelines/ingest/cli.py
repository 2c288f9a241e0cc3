"""`rag-splade ingest`: the command-line face of `ingest`."""

from __future__ import annotations

import argparse
import sys

from ..index_options import add_index_arguments, index_overrides
from .readers import SUFFIXES, Problem, ReadOptions

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

DESCRIPTION = f"""\
Add files and folders (recursively) to the index: {", ".join(SUFFIXES)}.
Unchanged documents are skipped (content hash), changed ones replaced. Models, device
and index come from RAG_SPLADE_* settings; the flags below override them. Exit status:
0 done, 1 some inputs failed (the rest was ingested), 2 bad settings, 130 interrupted
(what was written is kept; run again to resume)."""


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
    parser.add_argument(
        "--encoding", default="utf-8", help="encoding of text files (default utf-8)"
    )
    store = add_index_arguments(parser)
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


def run(args: argparse.Namespace) -> int:
    """Run `ingest` with parsed arguments; print problems (stderr) and a summary (stdout)."""
    from pydantic import ValidationError
    from tqdm import tqdm

    from rag_splade import HybridIndex, Settings

    from .core import IngestReport, ingest

    try:
        settings = Settings(**index_overrides(args, "batch_size", "tokenizer_workers"))
        index = HybridIndex.from_settings(settings)
    except (ValidationError, ValueError, ImportError, OSError, RuntimeError) as e:
        print(f"rag-splade ingest: {e}", file=sys.stderr)
        return EXIT_USAGE
    where = settings.qdrant_url or str(settings.index_path)
    print(f"Ingesting into {where} (sparse={settings.sparse_model}, dense={settings.dense_model})")

    def show(problem: Problem) -> None:
        tqdm.write(problem.describe(), file=sys.stderr)

    options = ReadOptions(
        id_field=args.id_field,
        text_field=args.text_field,
        metadata_fields=args.metadata_fields,
        encoding=args.encoding,
    )
    report = IngestReport()
    code = EXIT_OK
    try:
        ingest(
            args.paths,
            index,
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

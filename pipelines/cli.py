"""`rag-splade`: the command-line entry point (ingest, search, eval, train, bench, serve, demo,
tiny-models)."""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import logging
import sys
from collections.abc import Sequence
from typing import NoReturn, Protocol, cast

# subcommand -> (module with add_arguments(parser) and run(args) -> int, help)
COMMANDS = {
    "ingest": (".ingest", "add or update files and folders in the index, with progress"),
    "search": (".search", "ask the index; explained hits, optionally as JSON"),
    "eval": (".evaluate", "evaluate sparse, dense, hybrid and BM25 runs on a dataset"),
    "train": (".train", "fine-tune the SPLADE model on your question-passage pairs, measured"),
    "bench": (".benchmark", "measure speed, memory and size against the peer paths"),
    "serve": (".serve", "run the HTTP service (uvicorn) on the index"),
    "demo": (
        ".demo",
        "index the bundled JSQuAD sample in an embedded Qdrant Edge index and search it",
    ),
    "snapshot": (".snapshot", "create, list, verify or restore snapshots of the index"),
    "mcp": (".mcp", "serve the search tools to LLM agents over MCP (stdio)"),
    "keys": (".keys", "add, list or revoke the service's scoped API keys (RAG_SPLADE_KEYS_FILE)"),
    "tiny-models": (
        ".tiny_models",
        "build tiny offline Japanese models (for trying the demo without the model hub)",
    ),
}
# Commands that load or write models (and so import transformers anyway).
MODEL_COMMANDS = (
    "ingest",
    "search",
    "eval",
    "train",
    "bench",
    "serve",
    "demo",
    "mcp",
    "tiny-models",
)
# Commands that only read an index: they must not create one where none exists.
READING_COMMANDS = ("search",)
SETTINGS_HELP = (
    "Models, device and index come from RAG_SPLADE_* settings (RAG_SPLADE_SPARSE_MODEL, "
    "RAG_SPLADE_DENSE_MODEL, RAG_SPLADE_INDEX_PATH, RAG_SPLADE_QDRANT_URL, ...)."
)


class Parser(argparse.ArgumentParser):
    """argparse with usage errors in the form of every other error of the command line:
    one line, `rag-splade <command>: <message>` (after the usage)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: {message}\n")


class Command(Protocol):
    """What a subcommand module provides."""

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def load_command(name: str) -> Command:
    """Import the module of subcommand `name` (one of `COMMANDS`)."""
    if name not in COMMANDS:
        raise ValueError(f"unknown command {name!r}; choose from {sorted(COMMANDS)}")
    return cast(Command, importlib.import_module(COMMANDS[name][0], __package__))


def version() -> str:
    """The installed distribution's version."""
    try:
        return importlib.metadata.version("rag-splade")
    except importlib.metadata.PackageNotFoundError:
        # Run from a source tree that was never installed: there is no distribution metadata,
        # so fall back to the package's own constant (which a release could forget to bump).
        from rag_splade import __version__

        return __version__


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser, with the arguments of the command named in `argv` (only that one)."""
    parser = Parser(prog="rag-splade", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name, (_, help_text) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text)
        # Only the chosen command's module is imported (some pull in heavy libraries).
        if name == chosen:
            load_command(name).add_arguments(command)
        if not command.description:  # a module may describe its command itself
            command.description = SETTINGS_HELP
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` (default `sys.argv[1:]`), run the chosen command, return its exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    if args.command in MODEL_COMMANDS:
        _quiet_transformers()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from pydantic import ValidationError

    from rag_splade.errors import (
        IndexMismatchError,
        RemoteEncoderError,
        RemoteModelMismatchError,
    )
    from rag_splade.factories import IndexNotFoundError, ModelUnavailableError
    from rag_splade.store.edge import DiskFullError, IndexDamagedError, IndexInUseError

    from .index_options import settings_problem

    # Configuration problems are one line each (the message names the fix), not a traceback.
    try:
        if args.command in READING_COMMANDS:
            _require_index(args)
        return load_command(args.command).run(args)
    except (
        ModelUnavailableError,
        IndexNotFoundError,
        IndexInUseError,
        IndexDamagedError,
        IndexMismatchError,
        DiskFullError,
        RemoteEncoderError,
        RemoteModelMismatchError,
    ) as e:
        print(f"rag-splade {args.command}: {e}", file=sys.stderr)
    except ValidationError as e:
        if e.title != "Settings":
            raise
        print(f"rag-splade {args.command}: {settings_problem(e)}", file=sys.stderr)
    return 2


def _quiet_transformers() -> None:
    """No transformers progress bars ("Loading weights" on every model load): the commands
    show their own progress. The model hub's download bars stay (a first download takes
    minutes); HF_HUB_DISABLE_PROGRESS_BARS=1 turns those off too."""
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()


def _require_index(args: argparse.Namespace) -> None:
    from rag_splade import Settings
    from rag_splade.factories import require_index

    from .index_options import index_overrides

    require_index(Settings(**index_overrides(args)))


if __name__ == "__main__":
    sys.exit(main())

"""Benchmarks of rag_splade against its peers: `add_arguments(parser)` and `run(args)`."""

from .cli import add_arguments, run

__all__ = ["add_arguments", "run"]

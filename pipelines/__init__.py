"""Command-line jobs over rag_splade: demo (and, in time, ingest / eval / bench)."""

"""The command line and its jobs over rag_splade: demo, ingest, search, eval, bench, train,
serve, snapshots and the tiny models (one module or package per job)."""

"""`python -m pipelines.ingest PATH...`: the same as `rag-splade ingest`."""

import sys

from .cli import main

sys.exit(main())

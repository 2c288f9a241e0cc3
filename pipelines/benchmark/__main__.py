"""`python -m pipelines.benchmark ...` (the same as `rag-splade bench ...`)."""

import sys

from pipelines.benchmark.cli import main

sys.exit(main())

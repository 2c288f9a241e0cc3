"""`python -m pipelines.benchmark ...` (the same as `rag-splade bench ...`)."""

import sys

from .cli import main

sys.exit(main())

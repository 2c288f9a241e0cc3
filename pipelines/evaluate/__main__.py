"""`python -m pipelines.evaluate DATASET [flags]`."""

import sys

from .cli import main

sys.exit(main())

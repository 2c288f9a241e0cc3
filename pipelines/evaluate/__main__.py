"""`python -m pipelines.evaluate DATASET [flags]`."""

import sys

from pipelines.evaluate.cli import main

sys.exit(main())

"""Entry point of `python -m logo`: the same command line as the `logo` console script."""

import sys

from .cli import main

sys.exit(main())

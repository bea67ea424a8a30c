"""`python -m diffsrc ...`: the same command line as the `diffsrc` console script."""
import sys

from .cli import main

sys.exit(main())

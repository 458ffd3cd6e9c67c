"""`python -m amdsim` runs the amdsim command line (the same as the `amdsim` console script)."""

import sys

from engine.cli import main

sys.exit(main())

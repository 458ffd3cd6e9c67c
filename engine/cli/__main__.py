"""`python -m engine.cli` runs the amdsim command line."""

import sys

from engine.cli import main

sys.exit(main())

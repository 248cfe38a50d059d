"""`python -m hvr.sim ...` runs `hvr simulate ...`."""

import sys

from hvr.sim.cli import main

sys.exit(main())

"""`python -m router.sim ...` runs `hvr simulate ...`."""

import sys

from router.sim.cli import main

sys.exit(main())

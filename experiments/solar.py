"""``python -m experiments.solar``: the SOLAR command line from a checkout.

The code lives in `jaxplanet.cli.solar` (installed as ``jaxplanet-solar``).
"""

import sys

from jaxplanet.cli.solar import *  # noqa: F403 — the same names, for existing imports
from jaxplanet.cli.solar import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m experiments.solar"))

"""``python -m experiments.planet``: the PlaNet command line from a checkout.

The code lives in `jaxplanet.cli.planet` (installed as ``jaxplanet-planet``); see ``--help``.
"""

import sys

from jaxplanet.cli.planet import *  # noqa: F403 — the same names, for existing imports
from jaxplanet.cli.planet import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m experiments.planet"))

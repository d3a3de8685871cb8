"""``python -m experiments.plot``: the learning-curve plots command line from a checkout.

The code lives in `jaxplanet.cli.plot` (installed as ``jaxplanet-plot``); see ``--help``.
"""

import sys

from jaxplanet.cli.plot import *  # noqa: F403 — the same names, for existing imports
from jaxplanet.cli.plot import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m experiments.plot"))

"""``python -m experiments.world_models``: the World Models command line from a checkout.

The code lives in `jaxplanet.cli.world_models` (installed as ``jaxplanet-world-models``).
"""

import sys

from jaxplanet.cli.world_models import *  # noqa: F403 — the same names, for existing imports
from jaxplanet.cli.world_models import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m experiments.world_models"))

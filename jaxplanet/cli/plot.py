"""Draw learning curves of runs to a PNG (returns and every loss term over env steps).

    jaxplanet-plot --logdir runs/quick
    jaxplanet-plot --logdir runs/s0 runs/s1 runs/s2 --out curves.png   # mean ± std

A ``--logdir`` may also be a folder whose sub-directories are runs (seeds).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxplanet import cli

__all__ = ["main"]


def main(argv: Sequence[str] | None = None, prog: str = "jaxplanet-plot") -> int:
    """Parse flags, write the PNG and print its path; 2 with a one-line error on bad input."""
    parser = cli.Parser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_version_flag(parser)
    parser.add_argument(
        "--logdir", nargs="+", required=True, help="run directories (several: mean ± std)"
    )
    parser.add_argument(
        "--out", default=None, help="PNG path (default: learning_curves.png in the run directory)"
    )
    args = parser.parse_args(argv)
    from jaxplanet.core import plot

    try:
        path = plot.write_learning_curves(args.logdir, args.out)
    except (FileNotFoundError, ValueError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

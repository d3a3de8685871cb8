"""Draw learning curves of runs to a PNG (returns and every loss term over env steps).

    jaxplanet-plot --logdir runs/quick
    jaxplanet-plot --logdir runs/s0 runs/s1 runs/s2 --out curves.png   # mean ± std
    jaxplanet-plot --compare --logdir runs/solar_s0 runs/solar_s1 runs/vae_s0 runs/vae_s1 \
        --out compare.png     # one curve per config, a table of final evaluations

A ``--logdir`` may also be a folder whose sub-directories are runs (seeds).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from jaxplanet import cli

__all__ = ["compare_table", "main"]


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
    parser.add_argument(
        "--compare",
        action="store_true",
        help="runs of different configs: one curve (mean ± std over seeds) per config, labelled "
        "by the fields that differ, and a table of final evaluations (needs --out)",
    )
    parser.add_argument(
        "--key", default="eval_return", help="with --compare: the logged value to compare"
    )
    args = parser.parse_args(argv)
    if args.compare and not args.out:
        parser.error("--compare: give --out, the PNG to write")
    from jaxplanet.core import compare, plot

    try:
        if args.compare:
            path, rows = compare.write_comparison(args.logdir, args.out, args.key)
            print(compare_table(rows, args.key))
        else:
            path = plot.write_learning_curves(args.logdir, args.out)
    except (FileNotFoundError, ValueError, IsADirectoryError, PermissionError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(path)
    return 0


def compare_table(rows: list[dict], key: str) -> str:
    """`compare.summary_rows` as a Markdown table."""
    lines = [
        f"| config | runs | env steps | last {key} | mean of the last two |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['label']} | {r['runs']} | {r['env_steps']:,.0f} | "
            f"{r['final_mean']:.2f} ± {r['final_std']:.2f} | "
            f"{r['last_two_mean']:.2f} ± {r['last_two_std']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

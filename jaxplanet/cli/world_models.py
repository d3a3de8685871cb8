"""Train and evaluate World Models (Ha & Schmidhuber 2018) from the command line.

    jaxplanet-world-models --env=doom_take_cover --preset=paper --logdir=runs/doom
    jaxplanet-world-models --env=car_racing --preset=quick --logdir=runs/car \\
        --stage=collect
    jaxplanet-world-models --env=point_reach --preset=tiny --logdir=/tmp/wm

Stages run in order: collect (random rollouts), vae (V), mdn (M), calibrate (the dream's
survival of random and constant policies against the real task's, with a warning when they
disagree), controller (CMA-ES on C, in the dream with --in_dream=true), evaluate (real episodes,
the random baseline and a real-vs-dream video); --stage=all runs every one. A stage whose
artifact exists is skipped, so rerunning resumes. Every config field is a flag (--help lists
them); a --logdir holding another config is refused.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from jaxplanet import cli

__all__ = ["main", "parse_args"]


def parse_args(
    argv: Sequence[str] | None = None, prog: str = "jaxplanet-world-models"
) -> tuple[argparse.Namespace, dict[str, str]]:
    """Parse flags; returns the namespace and the config-field overrides as strings."""
    from jaxplanet.agents import world_models, world_models_config

    parser = cli.Parser(
        prog=prog,
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cli.add_run_flags(
        parser,
        world_models_config.PRESETS,
        "doom_take_cover, car_racing or point_reach",
        "runs/wm-<env>-<preset>-s<seed>",
        mode=False,
    )
    parser.add_argument(
        "--stage",
        default="all",
        choices=("all", *world_models.STAGES),
        help="what to run (default: all)",
    )
    names = cli.field_flags(parser, world_models_config.paper())
    args = parser.parse_args(argv)
    return args, cli.config_overrides(args, names)


def main(argv: Sequence[str] | None = None, prog: str = "jaxplanet-world-models") -> int:
    """Runs the command line; returns the exit status (0 ok, 2 bad input, 3 non-finite,
    130 Ctrl-C)."""
    args, overrides = parse_args(argv, prog)
    from jaxplanet import config as config_lib
    from jaxplanet.agents import world_models, world_models_config

    def run() -> None:
        if args.logdir:
            cli.check_logdir(args.logdir)
        base, preset = cli.base_config(
            world_models_config.WorldModelsConfig,
            world_models_config.preset,
            args.logdir,
            args.preset,
        )
        cfg = config_lib.override(base, overrides)
        cfg.validate()
        logdir = args.logdir or os.path.join("runs", f"wm-{cfg.env}-{preset}-s{cfg.seed}")
        print(f"World Models ({preset}, {cfg.env}, stage {args.stage}) -> {logdir}")
        summary = world_models.train_and_evaluate(cfg, logdir, args.stage)
        print(cli.summary_line(summary))

    return cli.run_command(run)


if __name__ == "__main__":
    sys.exit(main())

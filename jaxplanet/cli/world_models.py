"""Train and evaluate World Models (Ha & Schmidhuber 2018) from the command line.

    jaxplanet-world-models --env=doom_take_cover --preset=paper --logdir=runs/doom
    jaxplanet-world-models --env=car_racing --preset=quick --logdir=runs/car \\
        --stage=collect
    jaxplanet-world-models --env=point_reach --preset=tiny --logdir=/tmp/wm
    jaxplanet-world-models --logdir=/tmp/wm --mode=eval --eval_episodes=20

Stages run in order: collect (random rollouts), vae (V), mdn (M), calibrate (the dream's
survival of random and constant policies against the real task's, with a warning when they
disagree), controller (CMA-ES on C, in the dream with --in_dream=true), evaluate (real episodes,
the random baseline and a real-vs-dream video); --stage=all runs every one. A stage whose
artifact exists is skipped, so rerunning resumes. Every config field is a flag (--help lists
them); a --logdir holding another config is refused. The run starts with a banner (what runs,
its budget, where the outputs go) and ends with a table (wall time, C against random, where the
outputs are); Ctrl-C stops at the next safe point (exit status 130; rerunning resumes).
--mode=eval scores the final C of a finished run again on --eval_episodes real episodes beside
the random policy, under <logdir>/eval/ (the run's evaluate.json stays).
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
    from jaxplanet.worldmodels import agent as world_models
    from jaxplanet.worldmodels import config as world_models_config

    parser = cli.run_parser(
        prog,
        __doc__,
        world_models_config.PRESETS,
        "doom_take_cover, car_racing or point_reach",
        "runs/wm-<env>-<preset>-s<seed>",
    )
    parser.add_argument(
        "--stage",
        default="all",
        choices=("all", *world_models.STAGES),
        help="which stages to run with --mode=train (default: all)",
    )
    return cli.parse_run_args(parser, world_models_config.paper(), argv)


def main(argv: Sequence[str] | None = None, prog: str = "jaxplanet-world-models") -> int:
    """Runs the command line; returns the exit status (0 ok, 2 bad input, 3 non-finite,
    130 Ctrl-C)."""
    args, overrides = parse_args(argv, prog)
    from jaxplanet.core import config as config_lib
    from jaxplanet.core import console
    from jaxplanet.worldmodels import agent as world_models
    from jaxplanet.worldmodels import config as world_models_config

    if args.list_envs:
        print("\n".join(world_models_config.ENV_SETTINGS))
        return 0

    def run() -> None:
        cli.check_run_args(args)
        if args.mode == "eval":
            if args.stage != "all":
                raise config_lib.ConfigError("--stage: --mode=eval runs no stage")
            summary = world_models.evaluate_run(args.logdir, overrides)
            title = f"World Models evaluation finished: {summary['directory']}"
        else:
            base, preset = cli.base_config(
                world_models_config.WorldModelsConfig,
                lambda name: world_models_config.preset(name, overrides.get("env")),
                args.logdir,
                args.preset,
            )
            cfg = config_lib.override(base, overrides)
            cfg.validate()
            logdir = args.logdir or os.path.join("runs", f"wm-{cfg.env}-{preset}-s{cfg.seed}")
            summary = world_models.train_and_evaluate(cfg, logdir, args.stage, preset=preset)
            what = "run" if args.stage == "all" else f"stage {args.stage}"
            title = f"World Models {what} finished: {summary['logdir']}"
        print(console.summary_table(title, world_models.summary_rows(summary, prog)))

    return cli.run_command(run)


if __name__ == "__main__":
    sys.exit(main())

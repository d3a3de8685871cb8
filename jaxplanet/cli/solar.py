"""Train or evaluate SOLAR (Zhang et al., ICML 2019) from the command line.

    jaxplanet-solar --env=reacher_easy                      # released-code settings
    jaxplanet-solar --env=nav2d --preset=quick --logdir=runs/nav
    jaxplanet-solar --env=nav2d --preset=quick --policy=mpc  # MPC baseline
    jaxplanet-solar --env=nav2d --preset=quick --model.variant=vae  # VAE ablation
    jaxplanet-solar --logdir=runs/nav --mode=eval --eval_episodes=10

Every config field is a flag (``--help`` lists them with the paper defaults). A ``--logdir``
that already holds a run is resumed; a different config there is refused with the difference.
The run starts with a banner (what runs, its budget, where the outputs go) and ends with a table
(wall time, the evaluation beside random actions, where the outputs are); Ctrl-C stops at the
next safe point (exit status 130; rerunning resumes).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from jaxplanet import cli

__all__ = ["parse_args", "main"]

# Headless rendering for dm_control unless the user chose a backend.
os.environ.setdefault("MUJOCO_GL", "egl")


def parse_args(
    argv: Sequence[str] | None = None, prog: str = "jaxplanet-solar"
) -> tuple[argparse.Namespace, dict[str, str]]:
    """Parse flags; returns the namespace and the config-field overrides as strings."""
    from jaxplanet.solar import config as solar_config

    parser = cli.run_parser(
        prog,
        __doc__,
        solar_config.PRESETS,
        "task name; see --list_envs (default: reacher_easy)",
        "runs/solar-<env>-<preset>-s<seed>",
    )
    return cli.parse_run_args(parser, solar_config.paper(), argv)


def main(argv: Sequence[str] | None = None, prog: str = "jaxplanet-solar") -> int:
    """Run the command line; returns the exit status (0 ok, 2 bad input, 3 non-finite, 130 ^C)."""
    args, overrides = parse_args(argv, prog)
    from jaxplanet import envs
    from jaxplanet.core import config as config_lib
    from jaxplanet.core import console
    from jaxplanet.solar import agent as solar
    from jaxplanet.solar import config as solar_config

    if args.list_envs:
        print("\n".join(envs.names()))
        return 0

    def run() -> None:
        cli.check_run_args(args)
        if args.mode == "eval":
            summary = solar.evaluate_run(args.logdir, overrides)
            title = f"SOLAR evaluation finished: {summary['directory']}"
        else:
            base, preset = cli.base_config(
                solar_config.SolarConfig,
                lambda name: solar_config.preset(name, overrides.get("env")),
                args.logdir,
                args.preset,
            )
            cfg = config_lib.override(base, overrides)
            logdir = args.logdir or os.path.join("runs", f"solar-{cfg.env}-{preset}-s{cfg.seed}")
            summary = solar.train_and_evaluate(cfg, logdir, preset=preset)
            title = f"SOLAR run finished: {summary['logdir']}"
        print(console.summary_table(title, solar.summary_rows(summary, prog)))

    return cli.run_command(run)


if __name__ == "__main__":
    sys.exit(main())

"""Train and evaluate World Models (Ha & Schmidhuber 2018) from the command line.

    jaxplanet-world-models --env=doom_take_cover --preset=paper --logdir=runs/doom
    jaxplanet-world-models --env=car_racing --preset=quick --logdir=runs/car \\
        --stage=collect
    jaxplanet-world-models --env=point_reach --preset=tiny --logdir=/tmp/wm

Stages run in order: collect (random rollouts), vae (V), mdn (M), controller (CMA-ES on C, in
the dream with --in_dream=true), evaluate (real episodes + a real-vs-dream video); --stage=all
runs every one. A stage whose artifact exists is skipped, so rerunning resumes. Every config
field is a flag (--help lists them); a --logdir holding another config is refused.
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
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--env", default=None, help="doom_take_cover, car_racing or point_reach")
    parser.add_argument(
        "--preset", default="paper", choices=sorted(world_models_config.PRESETS), help="config"
    )
    parser.add_argument("--logdir", default=None, help="run directory (default: runs/wm-...)")
    parser.add_argument("--seed", default=None, help="random seed (default: 0)")
    parser.add_argument(
        "--stage", default="all", choices=("all", *world_models.STAGES), help="what to run"
    )
    names = cli.field_flags(parser, world_models_config.paper())
    args = parser.parse_args(argv)
    overrides = {
        n: getattr(args, f"field:{n}") for n in names if getattr(args, f"field:{n}") is not None
    }
    for name in ("env", "seed"):
        if getattr(args, name) is not None:
            overrides[name] = getattr(args, name)
    return args, overrides


def main(argv: Sequence[str] | None = None, prog: str = "jaxplanet-world-models") -> int:
    """Runs the command line; returns the exit status (2: a bad flag, config or input)."""
    args, overrides = parse_args(argv, prog)
    from jaxplanet import config as config_lib
    from jaxplanet.agents import world_models, world_models_config
    from jaxplanet.checkpoint import ConfigMismatchError

    try:
        cfg = config_lib.override(world_models_config.preset(args.preset), overrides)
        cfg.validate()
        logdir = args.logdir or os.path.join("runs", f"wm-{cfg.env}-{args.preset}-s{cfg.seed}")
        print(f"World Models ({args.preset}, {cfg.env}, stage {args.stage}) -> {logdir}")
        summary = world_models.train_and_evaluate(cfg, logdir, args.stage)
    except (config_lib.ConfigError, ConfigMismatchError, ImportError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: rerun with the same --logdir to resume.")
        return 130
    print(
        " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in summary.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

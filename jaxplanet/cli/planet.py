"""Train or evaluate PlaNet from the command line (``jaxplanet-planet``, or
``python -m experiments.planet`` from a checkout).

    jaxplanet-planet --env=walker_walk                     # paper settings
    jaxplanet-planet --env=point_reach --preset=quick --logdir=runs/pr
    jaxplanet-planet --logdir=runs/pr --mode=eval --eval_episodes=5
    jaxplanet-planet --env=cartpole_swingup --model.deter=100 --planner.candidates=500

Every config field is a flag (``--help`` lists them with the paper defaults). A ``--logdir``
that already holds a run is resumed; a different config there is refused with the difference.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from jaxplanet import cli
from jaxplanet.cli import check_logdir

__all__ = ["EXAMPLES", "SECTIONS", "check_logdir", "main", "parse_args"]

# Headless rendering for dm_control unless the user chose a backend.
os.environ.setdefault("MUJOCO_GL", "egl")


EXAMPLES = """examples:
  jaxplanet-planet --env=point_reach --preset=quick          # ~10-25 min on 2 CPU cores
  jaxplanet-planet --env=walker_walk                         # paper settings (GPU/TPU)
  jaxplanet-planet --logdir=runs/quick --episodes=80         # extend a finished run
  jaxplanet-planet --logdir=runs/quick --mode=eval --eval_episodes=5
  jaxplanet-planet --env=cheetah_run --model.free_nats=2 --planner.horizon=15
  jaxplanet-planet --env=point_reach --preset=quick --num_envs=4 --episodes=60 --seed_episodes=8
  jaxplanet-planet --env=walker_walk --num_seeds=3          # 3 seeds in one vmapped program

Defaults are the paper preset's; where the quick or tiny preset differs, its value follows.
A --logdir that holds a run resumes it (Ctrl-C stops cleanly; only --episodes, --eval_every,
--eval_episodes, --video, --progress, --debug_nans, --keep_checkpoints and --devices may
change)."""

SECTIONS = {
    "collection and training": (
        "action_repeat",
        "episode_length",
        "episodes",
        "seed_episodes",
        "train_steps",
        "batch_size",
        "seq_length",
        "exploration_noise",
    ),
    "evaluation and output": (
        "eval_every",
        "eval_episodes",
        "video",
        "video_context",
        "video_length",
        "progress",
    ),
    "replay, checkpoints and runtime": (
        "replay_bytes",
        "replay_device",
        "checkpoint_every",
        "keep_checkpoints",
        "debug_nans",
        "prng_impl",
    ),
    "scale: environments, seeds and devices": ("num_envs", "num_seeds", "devices", "collect"),
}


def parse_args(
    argv: Sequence[str] | None = None, prog: str = "jaxplanet-planet"
) -> tuple[argparse.Namespace, dict[str, str]]:
    """Parse flags; returns the namespace and the config-field overrides as strings."""
    from jaxplanet.planet import config as planet_config

    parser = cli.run_parser(
        prog,
        __doc__,
        planet_config.PRESETS,
        "task name; see --list_envs (default: walker_walk)",
        "runs/<env>-<preset>-s<seed>",
        usage="%(prog)s [--env ENV] [--preset {paper,quick,tiny}] [--logdir DIR] "
        "[--mode {train,eval}] [--seed N] [--<field>=VALUE ...]",
        epilog=EXAMPLES,
    )
    shown = {"quick": planet_config.quick(), "tiny": planet_config.tiny()}
    return cli.parse_run_args(parser, planet_config.paper(), argv, SECTIONS, shown)


def main(argv: Sequence[str] | None = None, prog: str = "jaxplanet-planet") -> int:
    """Runs the command line; returns the exit status (0 ok, 2 bad input, 3 NaN, 130 Ctrl-C)."""
    args, overrides = parse_args(argv, prog)
    from jaxplanet import envs
    from jaxplanet.core import config as config_lib
    from jaxplanet.core import console
    from jaxplanet.planet import agent as planet
    from jaxplanet.planet import config as planet_config

    if args.list_envs:
        print("\n".join(envs.names()))
        return 0

    def run() -> None:
        cli.check_run_args(args)
        if args.mode == "eval":
            summary = planet.evaluate_run(args.logdir, overrides)
            title = f"PlaNet evaluation finished: {summary['directory']}"
        else:
            base, preset = cli.base_config(
                planet_config.PlanetConfig, planet_config.preset, args.logdir, args.preset
            )
            cfg = config_lib.override(base, planet_config.prng_for_seeds(base, overrides))
            logdir = args.logdir or os.path.join("runs", f"{cfg.env}-{preset}-s{cfg.seed}")
            summary = planet.train_and_evaluate(cfg, logdir, preset=preset)
            title = f"PlaNet run finished: {summary['logdir']}"
        print(console.summary_table(title, planet.summary_rows(summary, prog)))

    return cli.run_command(run)


if __name__ == "__main__":
    sys.exit(main())

"""Real-environment rollouts/s of World Models' host tasks with 1 vs more worker processes.

World Models runs the real task (VizDoom take_cover, CarRacing) in worker processes through
`gymnasium.vector.AsyncVectorEnv` (`jaxplanet.envs.vector.vector_episodes`), e.g. to collect
random rollouts or to score controllers. This times `--episodes` random-action episodes
(64x64 frames, the frame resize included) for each worker count and reports episodes/s and
env steps/s; each worker count uses the same episode seeds, so the work is identical.

    python -m benchmarks.wm_rollouts                              # take_cover, 1 and 2 workers
    python -m benchmarks.wm_rollouts --env=car_racing --episode_length=200 --episodes=8
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks import common
from jaxplanet.core import timing

__all__ = ["RandomActions", "main", "run"]


class RandomActions:
    """Uniform actions in [-1, 1]^A, seeded per episode id (the `vector_episodes` policy API)."""

    def __init__(self, action_dim: int, seed: int = 0):
        self.action_dim, self.seed = action_dim, seed

    def start(self, ids: list[int]) -> None:
        """Begins a wave of episodes ``ids`` (-1 for idle slots of the last wave).

        An idle slot's actions are discarded; it gets a generator of its own (``SeedSequence``
        refuses negative entropy, so -1 cannot seed it directly).
        """
        self.rngs = [np.random.default_rng([self.seed, i] if i >= 0 else [self.seed]) for i in ids]

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs uint8 [W, 64, 64, 3] -> f32 [W, A]."""
        return np.stack([g.uniform(-1, 1, self.action_dim) for g in self.rngs]).astype(np.float32)


def _factory(env: str) -> tuple[Any, int]:
    if env == "doom_take_cover":
        from jaxplanet.envs import doom

        return doom.make_gym, 1
    from jaxplanet.envs import car_racing

    return car_racing.make_gym, 3


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Times the episodes per worker count; returns the JSON record."""
    from jaxplanet.envs.vector import vector_episodes

    make_gym, action_dim = _factory(args.env)
    options = {"action_repeat": args.action_repeat, "episode_length": args.episode_length}
    seeds = list(range(args.seed, args.seed + args.episodes))
    record: dict[str, Any] = {
        "benchmark": "wm_rollouts",
        "env": args.env,
        "episodes": args.episodes,
        **options,
        **common.environment(),
    }
    for workers in args.workers:
        wall, cpu = time.perf_counter(), timing.cpu_seconds()
        eps = vector_episodes(
            make_gym, options, seeds, RandomActions(action_dim, args.seed), workers, False, False
        )
        wall, cpu = time.perf_counter() - wall, timing.cpu_seconds() - cpu
        steps = int(sum(ep["length"] for ep in eps)) * args.action_repeat
        record[f"w{workers}_seconds"] = wall
        record[f"w{workers}_cpu_seconds"] = cpu
        record[f"w{workers}_env_steps"] = steps
        record[f"w{workers}_episodes_per_second"] = len(eps) / wall
        record[f"w{workers}_env_steps_per_second"] = steps / wall
    first, last = args.workers[0], args.workers[-1]
    record["speedup"] = record[f"w{first}_seconds"] / record[f"w{last}_seconds"]
    return record


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; returns the JSON record (also written to --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write the result record to this path")
    parser.add_argument(
        "--env", default="doom_take_cover", choices=("doom_take_cover", "car_racing")
    )
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--action_repeat", type=int, default=1)
    parser.add_argument("--episode_length", type=int, default=2100, help="env steps per episode")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(None if argv is None else list(argv))
    record = run(args)
    common.write_json(args.json, record)
    keys = [f"w{w}_{k}" for w in args.workers for k in ("env_steps_per_second", "seconds")]
    common.summary_line("wm_rollouts", record, [*keys, "speedup"])
    return record


if __name__ == "__main__":
    main()

"""Env steps/s of N environments stepped in this process vs in N worker processes.

PlaNet's ``--num_envs=N`` steps N episodes in lock step through `jaxplanet.envs.vector`:
`InProcessEnvs` (one after another here) or `WorkerEnvs` (one `gymnasium.vector.AsyncVectorEnv`
worker process per env). This times ``--steps`` lock-step agent steps of uniform random actions
(after ``--warmup`` untimed ones: JIT compilation, first GL frames) for each task, N and mode,
and reports env steps/s (agent steps x action repeat x N; the best of ``--repeats`` windows,
and their median) and the start-up seconds (building the envs and, for workers, spawning the
processes). Rendering and IPC are not FLOP-bound, so the figures are plain rates; they depend
on free cores (``cpu_count`` and ``load_average`` are in the record).

    python -m benchmarks.vector_envs                                    # both tasks, N = 1 2 4
    python -m benchmarks.vector_envs --envs point_reach --num_envs 1 2 --steps 20 --json OUT
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks import common

__all__ = ["main", "run", "time_batched"]

MODES = {"in_process": False, "workers": True}


def time_batched(
    name: str,
    num_envs: int,
    workers: bool,
    steps: int,
    warmup: int,
    repeats: int = 3,
    seed: int = 0,
    **options: Any,
) -> dict[str, float]:
    """Start-up seconds and env steps/s (best and median of `repeats` windows of `steps`
    lock-step agent steps)."""
    from jaxplanet.envs import vector

    start = time.perf_counter()
    batch = vector.make_batched(name, num_envs, seed, workers=workers, **options)
    try:
        spec = batch.spec
        rng = np.random.default_rng(seed)
        batch.reset([seed + 1000 + i for i in range(num_envs)])
        shape = (warmup + repeats * steps, num_envs, spec.action_dim)
        actions = rng.uniform(-1, 1, shape).astype(np.float32)
        for a in actions[:warmup]:
            batch.step(a)
        setup = time.perf_counter() - start
        seconds = []
        for r in range(repeats):
            start = time.perf_counter()
            for a in actions[warmup + r * steps : warmup + (r + 1) * steps]:
                _, _, terminated, truncated = batch.step(a)
                if (terminated | truncated).any():
                    raise RuntimeError("an episode ended while timing: raise --episode_length")
            seconds.append(time.perf_counter() - start)
    finally:
        batch.close()
    env_steps = steps * spec.action_repeat * num_envs
    return {
        "setup_seconds": setup,
        "seconds": seconds,
        "env_steps": env_steps,
        "env_steps_per_second": env_steps / min(seconds),
        "env_steps_per_second_median": env_steps / statistics.median(seconds),
        "agent_steps_per_second": steps * num_envs / min(seconds),
    }


def _available(name: str, workers: bool) -> str | None:
    """None if `name` can run here (in that mode), else why not."""
    from jaxplanet import envs
    from jaxplanet.envs.optional import available

    if workers and not available("gymnasium"):
        return "gymnasium is not installed"
    try:
        envs.make(name, episode_length=8 * 8).close()
    except Exception as e:  # e.g. dm_control missing, no GL
        return f"{type(e).__name__}: {e}"
    return None


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Times every (task, N, mode); returns the JSON record."""
    record: dict[str, Any] = {
        "benchmark": "vector_envs",
        "steps": args.steps,
        "warmup": args.warmup,
        "episode_length": args.episode_length,
        "load_average": os.getloadavg(),
        **common.environment(),
    }
    # Env stepping is rendering and IPC, not FLOPs: the fp32 matmul peak, measured in this run
    # before and after, says how much of the machine the figures had (a loaded CPU shows less).
    record["matmul_peak_gflops_before"] = common.matmul_peak()
    print(f"fp32 matmul peak {record['matmul_peak_gflops_before']:.1f} GFLOP/s", flush=True)
    for name in args.envs:
        for mode, workers in MODES.items():
            why = _available(name, workers)
            if why is not None:
                record[f"{name}_{mode}_skipped"] = why
                print(f"{name} {mode}: skipped ({why})", flush=True)
                continue
            for n in args.num_envs:
                fields = time_batched(
                    name,
                    n,
                    workers,
                    args.steps,
                    args.warmup,
                    args.repeats,
                    episode_length=args.episode_length,
                )
                for key, value in fields.items():
                    record[f"{name}_{mode}_n{n}_{key}"] = value
                print(
                    f"{name:>16} {mode:>10} N={n}: {fields['env_steps_per_second']:8.1f} env "
                    f"steps/s best (median {fields['env_steps_per_second_median']:8.1f}), "
                    f"start-up {fields['setup_seconds']:.1f} s",
                    flush=True,
                )
    record["matmul_peak_gflops_after"] = common.matmul_peak()
    print(f"fp32 matmul peak {record['matmul_peak_gflops_after']:.1f} GFLOP/s (after)", flush=True)
    return record


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; returns the JSON record (also written to --json)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", default=None, help="write the result record to this path")
    parser.add_argument("--envs", nargs="+", default=["cartpole_swingup", "point_reach"])
    parser.add_argument("--num_envs", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--steps", type=int, default=50, help="timed agent steps per window")
    parser.add_argument("--warmup", type=int, default=3, help="untimed agent steps first")
    parser.add_argument("--repeats", type=int, default=3, help="timed windows (best reported)")
    parser.add_argument(
        "--episode_length", type=int, default=10_000, help="env steps (no reset while timing)"
    )
    args = parser.parse_args(None if argv is None else list(argv))
    record = run(args)
    common.write_json(args.json, record)
    keys = [
        f"{name}_{mode}_n{n}_env_steps_per_second"
        for name in args.envs
        for mode in MODES
        for n in args.num_envs
    ]
    common.summary_line("vector_envs", record, [k for k in keys if k in record])
    return record


if __name__ == "__main__":
    main()

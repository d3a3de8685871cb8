"""Frames per second of an environment: 64x64 rendering + physics, as the agents see it.

Times `env.step` (action repeat inside, one rendered frame per call) on uniform random actions,
and separately the physics alone and the rendering alone, and prints the GL backend in use.
GL rendering is not FLOP-bound, so the figures are plain rates (no ratio to the matmul peak).

    python -m benchmarks.render --env walker_walk --frames 200 [--json OUT]
    python -m benchmarks.render --env point_reach --frames 200 --batch 256
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.common import environment, write_json
from jaxplanet import envs


def _rate(n: int, fn: Any) -> float:
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - start)


def _batched_jax_fps(name: str, batch: int, repeats: int = 5) -> float:
    """Frames/s of one jitted, vmapped step (physics + render) over `batch` pure-JAX envs."""
    import jax

    jenv = envs.make_jax(name)
    keys = jax.random.split(jax.random.PRNGKey(0), batch)
    state, _ = jax.vmap(jenv.reset)(keys)
    actions = jax.random.uniform(keys[0], (batch, jenv.spec.action_dim), minval=-1, maxval=1)
    step = jax.jit(jax.vmap(jenv.step))
    jax.block_until_ready(step(state, actions))
    start = time.perf_counter()
    for _ in range(repeats):
        jax.block_until_ready(step(state, actions))
    return batch * repeats / (time.perf_counter() - start)


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark; returns (and prints) the record."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--env", default="walker_walk", help="name from jaxplanet.envs.names()")
    p.add_argument("--frames", type=int, default=200, help="env.step calls (one frame each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch", type=int, default=0, help="pure-JAX envs: also time a vmapped step")
    p.add_argument("--json", default=None, help="write the result record to this path")
    args = p.parse_args(None if argv is None else list(argv))

    env = envs.make(args.env, seed=args.seed)
    spec = env.spec
    rng = np.random.default_rng(args.seed)
    actions = rng.uniform(-1, 1, (args.frames, spec.action_dim)).astype(np.float32)
    env.reset()
    env.step(actions[0])  # warm-up: GL context, jit compilation

    it = iter(actions)

    def step() -> None:
        _, _, terminated, truncated, _ = env.step(next(it))
        if terminated or truncated:
            env.reset()

    step_fps = _rate(args.frames, step)
    record: dict[str, Any] = {
        "env": spec.name,
        "frames": args.frames,
        "action_repeat": spec.action_repeat,
        "size": spec.obs_shape[0],
        "step_fps": step_fps,  # agent steps (= rendered frames) per second
        "env_steps_per_s": step_fps * spec.action_repeat,
        "render_fps": _rate(args.frames, env.render),
    }
    if hasattr(env, "physics"):  # dm_control: physics alone, and the GL backend
        physics_env = env._env
        zero = np.zeros(spec.action_dim)
        physics_env.reset()
        record["physics_env_steps_per_s"] = _rate(args.frames, lambda: physics_env.step(zero))
        record["render_fps"] = _rate(args.frames, env.render)
        record["gl_backend"] = env.backend
    else:
        record["gl_backend"] = "none (pure JAX)"
        if hasattr(env, "jax_env"):  # the adapter caches frames: time the jitted render
            import jax

            render = jax.jit(env.jax_env.render)
            state = env.state
            jax.block_until_ready(render(state))
            record["render_fps"] = _rate(args.frames, lambda: render(state).block_until_ready())
        if args.batch:
            record["batch"] = args.batch
            record["batched_step_fps"] = _batched_jax_fps(args.env, args.batch)
    env.close()
    record["environment"] = environment()

    print(
        f"{spec.name}: {record['step_fps']:.1f} frames/s with physics "
        f"(repeat {spec.action_repeat}: {record['env_steps_per_s']:.1f} env steps/s), "
        f"render alone {record['render_fps']:.1f} frames/s, GL backend {record['gl_backend']}",
        flush=True,
    )
    if "physics_env_steps_per_s" in record:
        print(f"physics alone: {record['physics_env_steps_per_s']:.1f} env steps/s", flush=True)
    if "batched_step_fps" in record:
        print(f"vmapped jitted step x{args.batch}: {record['batched_step_fps']:.1f} frames/s")
    write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()

"""Seeds, environments and devices of a PlaNet run: K seeds x N envs per collection round.

The training loop (`jaxplanet.planet.agent`) collects episodes in rounds. A round covers the
episode indices ``i .. i + N - 1`` (``N = --num_envs``) of each of ``K = --num_seeds`` agents:

* seed ``k`` is the run of ``seed + k`` alone: its `Lane` has that seed's config, its envs, its
  folder (``logdir/seed_k`` when K > 1, else ``logdir``) and logger; its keys are those of a
  single-seed run with that seed, so its numbers equal that run's (CPU, threefry keys);
* episode ``i`` of seed ``k`` resets its env with seed ``seeding.episode_seed(seed + k, i)``
  and plans step ``t`` with ``fold_in(fold_in(fold_in(root_k, COLLECT), i), t)``: the keys the
  one-env loop uses, so N envs give the episodes N single-env rounds would (up to float
  reassociation of the batched matmuls);
* the K x N beliefs are planned for in one jitted call per agent step (`make_act`), split over
  the devices of ``--devices`` when there are several; host envs step in worker processes
  (`jaxplanet.envs.vector`), pure-JAX ones either in-process or, with ``--collect=device``,
  as one ``lax.scan`` on the device (`jaxplanet.planet.collect.device_episodes`).

Arrays of K seeds carry a leading seed axis [K, ...] (train state, replay, root keys), a single
run included (K = 1; `seeds.over_axis` keeps its numbers those of the functions without the
axis). One seed with one env collects in this process with the lane's own env.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet import envs
from jaxplanet.core import compile as compile_lib
from jaxplanet.core import config as config_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.core import parallel, replay, seeding
from jaxplanet.planet import acting, collect, seeds
from jaxplanet.planet.config import PlanetConfig

__all__ = [
    "Lane",
    "add_lane",
    "collect_round",
    "env_options",
    "lane_config",
    "lane_dir",
    "make_act",
    "make_env",
    "make_mesh",
]


def env_options(cfg: PlanetConfig) -> dict[str, Any]:
    """The task options a run sets (action repeat, episode length; 0 = the task's default)."""
    options: dict[str, Any] = {}
    if cfg.action_repeat:
        options["action_repeat"] = cfg.action_repeat
    if cfg.episode_length:
        options["episode_length"] = cfg.episode_length
    return options


def make_env(cfg: PlanetConfig, seed: int) -> envs.HostEnv:
    """The task of ``cfg.env``; action repeat / episode length default to the task's."""
    return envs.make(cfg.env, seed=seed, **env_options(cfg))


def lane_config(cfg: PlanetConfig, k: int) -> PlanetConfig:
    """Seed ``k``'s config: the single-seed run with ``seed + k``."""
    return dataclasses.replace(cfg, seed=cfg.seed + k, num_seeds=1)


def lane_dir(logdir: Path, cfg: PlanetConfig, k: int) -> Path:
    """Seed ``k``'s folder: ``logdir`` for one seed, ``logdir/seed_k`` for several."""
    return logdir if cfg.num_seeds == 1 else logdir / f"seed_{k}"


class Lane:
    """One seed's host-side handles: its config, train and eval envs, folder and logger."""

    def __init__(self, cfg: PlanetConfig, logdir: Path):
        self.cfg = cfg
        self.logdir = logdir
        self.env = make_env(cfg, seed=cfg.seed)
        self.eval_env = make_env(cfg, seed=cfg.seed + seeding.EVAL_ENV_OFFSET)
        self.episode_dir = logdir / "episodes"
        self.logger: logging_lib.Logger | None = None
        self.returns: list[float] = []
        self.env_steps = 0

    def close(self) -> None:
        for obj in (self.env, self.eval_env, self.logger):
            if obj is not None:
                obj.close()


def make_mesh(cfg: PlanetConfig) -> jax.sharding.Mesh | None:
    """The device mesh of ``--devices`` (None for one device); checks what must divide."""
    if cfg.devices == 1:
        return None
    try:
        mesh = parallel.make_mesh(cfg.devices or None)
    except ValueError as err:
        raise config_lib.ConfigError(str(err)) from None
    n = mesh.devices.size
    if cfg.batch_size % n:
        raise config_lib.ConfigError(
            f"--batch_size: must divide by the {n} devices of --devices (the batch is split "
            f"over them), got {cfg.batch_size}"
        )
    if cfg.num_envs > 1 and cfg.num_envs % n:
        raise config_lib.ConfigError(
            f"--num_envs: must divide by the {n} devices of --devices (the beliefs are split "
            f"over them), got {cfg.num_envs}"
        )
    return mesh


@functools.lru_cache(maxsize=8)
def make_act(cfg: PlanetConfig, action_dim: int, mesh: jax.sharding.Mesh | None = None) -> Any:
    """The planner for all K x N beliefs of a round, one jitted call per agent step.

    ``fn(params, belief [K*N], prev_action [K*N, A], obs [K*N, 64, 64, 3], is_first [K*N],
    keys [K*N], noise) -> (actions [K*N, A], belief [K*N])``, rows ordered seed-major
    (row ``k * N + j`` is env j of seed k); ``params`` has a leading seed axis when K > 1.
    With a mesh (one seed) the N rows are split over its devices. One seed with one env
    computes exactly `acting.act` (no size-1 ``vmap``; `seeds.over_axis`).
    """
    options = compile_lib.compiler_options("act")  # as the one-env agent's act
    mcfg, pcfg, k = cfg.model, cfg.planner, cfg.num_seeds
    fn = acting.make_act_batch(mcfg, pcfg, action_dim, options, jit=False)
    if k == 1 and cfg.num_envs == 1:  # one env: exactly the one-env `acting.act`, one row

        def one_env(params, belief, prev, obs, first, key, noise):
            return acting.act(params, mcfg, pcfg, action_dim, belief, prev, obs, first, key, noise)

        fn = seeds.over_axis(one_env, 1, (None, 0, 0, 0, 0, 0, None))
        return jax.jit(fn, compiler_options=options or None)
    if k == 1:
        if mesh is None:
            return jax.jit(fn, compiler_options=options or None)
        return parallel.shard_batched(fn, mesh, acting.ACT_BATCHED, options)

    def per_seed(params, belief, prev, obs, first, keys, noise):
        split = lambda x: x.reshape((k, -1) + x.shape[1:])  # noqa: E731
        merge = lambda x: x.reshape((-1,) + x.shape[2:])  # noqa: E731
        args = jax.tree.map(split, (belief, prev, obs, first, keys))
        actions, belief = jax.vmap(fn, in_axes=(0, 0, 0, 0, 0, 0, None))(params, *args, noise)
        return merge(actions), jax.tree.map(merge, belief)

    return jax.jit(per_seed, compiler_options=options or None)


def _random_batch_policy(action_dim: int, reset_seeds: list[int]) -> acting.BatchPolicy:
    """One seeded uniform-random policy per row (as the one-env loop's seed episodes)."""
    policies = [episodes_lib.random_policy(action_dim, seed=s) for s in reset_seeds]

    def policy(obs: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        return np.stack([p(o, f) for p, o, f in zip(policies, obs, is_first, strict=True)])

    return policy


def collect_round(
    cfg: PlanetConfig,
    lanes: list[Lane],
    batched_env: Any,
    act_fn: Any,
    params: Any,
    roots: jax.Array,
    index: int,
    random: bool,
    collect_key: int,
    wrap: Any = None,
) -> list[list[dict[str, Any]]]:
    """Collects episodes ``index .. index + N - 1`` of every seed.

    Args:
      cfg: the run's config (K = num_seeds, N = num_envs).
      lanes: the K seeds' lanes.
      batched_env: a `jaxplanet.envs.vector` env of K * N rows (seed-major) for host
        collection; unused with ``--collect=device``.
      act_fn: `make_act`'s function (unused for random rounds).
      params: world-model variables with a seed axis [K, ...].
      roots: root keys [K].
      index: the round's first episode index.
      random: uniform random actions (seed episodes) instead of planning.
      collect_key: the stream folded into the root keys for collection.
      wrap: decorates the batch policy (progress display, Ctrl-C checks).

    Returns:
      ``episodes[k][j]``: episode ``index + j`` of seed k, as ``episodes.run_episode`` returns.
    """
    k, n = cfg.num_seeds, cfg.num_envs
    indices = list(range(index, index + n))
    reset_seeds = [seeding.episode_seed(lane.cfg.seed, i) for lane in lanes for i in indices]
    if cfg.collect == "device":
        flat = _device_round(cfg, lanes, params, roots, indices, reset_seeds, random, collect_key)
    else:
        action_dim = lanes[0].env.spec.action_dim
        if random:
            policy = _random_batch_policy(action_dim, reset_seeds)
        else:
            keys = seeds.fold(roots, collect_key)
            keys = jnp.stack([seeds.fold(keys, i) for i in indices], axis=-1).reshape(-1)  # [K*N]
            act_params = params if k > 1 else seeds.index(params, 0)  # make_act's convention
            policy = acting.batch_policy(
                act_fn, act_params, cfg.model, action_dim, keys, cfg.exploration_noise
            )
        policy = wrap(policy) if wrap is not None else policy
        flat = collect.host_episodes(batched_env, policy, reset_seeds)
    return [flat[s * n : (s + 1) * n] for s in range(k)]


def _device_round(
    cfg: PlanetConfig,
    lanes: list[Lane],
    params: Any,
    roots: jax.Array,
    indices: list[int],
    reset_seeds: list[int],
    random: bool,
    collect_key: int,
) -> list[dict[str, Any]]:
    """`collect.device_episodes` for every seed (vmapped over K), split into episodes."""
    env = lanes[0].env  # a JaxHostAdapter (checked when the run starts)
    k, n = cfg.num_seeds, cfg.num_envs
    reset_keys = jnp.stack([env.episode_key(s, 0) for s in reset_seeds])
    reset_keys = reset_keys.reshape((k, n) + reset_keys.shape[1:])  # raw keys: [K, N, 2]
    keys = seeds.fold(roots, collect_key)
    keys = jnp.stack([seeds.fold(keys, i) for i in indices], axis=-1).reshape(k, n)
    run = _device_collector(env.jax_env, cfg.model, cfg.planner, random)
    out = run(params, reset_keys, keys, jnp.float32(cfg.exploration_noise))
    out = jax.tree.map(lambda x: x.reshape((k * n,) + x.shape[2:]), out)
    return collect.split_episodes(out)


@functools.lru_cache(maxsize=8)
def _device_collector(env: Any, mcfg: Any, pcfg: Any, random: bool) -> Any:
    def one_seed(params, reset_keys, keys, noise):
        return collect.device_episodes(env, params, mcfg, pcfg, reset_keys, keys, noise, random)

    options = compile_lib.compiler_options("act") or None  # it plans, as the agent's act
    return jax.jit(jax.vmap(one_seed, in_axes=(0, 0, 0, None)), compiler_options=options)


@functools.partial(jax.jit, donate_argnums=0, static_argnums=2)
def add_lane(state: replay.ReplayState, episode: dict, k: int) -> replay.ReplayState:
    """Adds one episode to seed ``k``'s buffer of a stacked replay [K, ...] (in place)."""
    if jax.tree.leaves(state)[0].shape[0] == 1:  # one seed: exactly `replay.add_episode`
        return seeds.over_axis(replay.add_episode, 1, (0, None))(state, episode)
    lane = replay.add_episode(jax.tree.map(lambda x: x[k], state), episode)
    return jax.tree.map(lambda full, new: full.at[k].set(new), state, lane)

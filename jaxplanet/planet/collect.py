"""Collecting N episodes at once: host environments stepped together with one batched planner
call per agent step, and pure-JAX tasks collected entirely on the device.

Both return episodes in the record convention of `jaxplanet.core.episodes` and
`jaxplanet.core.replay`: record t = (obs_t, action_t that led to it, reward_t for it,
is_first_t), so an episode of T agent steps has T + 1 records (obs uint8 [T+1, 64, 64, 3],
action f32 [T+1, A], reward f32 [T+1], is_first bool [T+1]).

* `host_episodes(envs, policy, seeds)`: N host envs (a `jaxplanet.envs.vector` batched env,
  e.g. worker processes, or a list of `HostEnv`s) reset with their seeds and stepped in lock
  step; ``policy`` (e.g. `acting.batch_policy`) is called once per step for all of them.
* `device_episodes(env, params, ...)`: for a `JaxEnv` (``point_reach``), the whole collection
  of N episodes (env step + belief update + CEM + exploration noise) is one ``lax.scan`` inside
  ``jit``: no host round trip between steps. `add_episodes` writes them into a replay buffer
  inside the same program if wanted.

Keys: episode i resets with ``reset_keys[i]`` and plans step t with
``fold_in(policy_keys[i], t)``, as the single-env host loop does with a `JaxHostAdapter`
(``reset_keys[i] = adapter.episode_key(seed, 0)``) and the agent's policy (``fold_in(key, t)``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.core import replay
from jaxplanet.envs.base import HostEnv, JaxEnv
from jaxplanet.planet import rssm
from jaxplanet.planet.acting import BatchPolicy, act_batch, step_keys
from jaxplanet.planet.model import ModelConfig
from jaxplanet.planners import cem

if TYPE_CHECKING:
    from jaxplanet.envs.vector import BatchedEnv

__all__ = ["add_episodes", "device_episodes", "host_episodes", "split_episodes"]


def host_episodes(
    envs: BatchedEnv | Sequence[HostEnv], policy: BatchPolicy, seeds: Sequence[int]
) -> list[dict[str, Any]]:
    """Runs one episode in each of N host environments, stepping them together.

    An environment that ends before the others is no longer recorded (its later outputs are
    ignored). Episodes of different lengths are fine.

    Args:
      envs: a batched env of N rows (`jaxplanet.envs.vector`, e.g. worker processes), or N
        `HostEnv`s of one task (stepped one after another in this process).
      policy: ``policy(obs uint8 [N, 64, 64, 3], is_first bool [N]) -> actions [N, A]``.
      seeds: N reset seeds.

    Returns:
      N episode dicts as ``episodes.run_episode`` returns them: ``obs`` [T+1, 64, 64, 3],
      ``action`` [T+1, A], ``reward`` [T+1], ``is_first`` [T+1], ``return``, ``length``.
    """
    if not hasattr(envs, "num_envs"):
        from jaxplanet.envs import vector

        envs = vector.InProcessEnvs(list(envs))
    if envs.num_envs != len(seeds) or not len(seeds):
        raise ValueError(f"need one seed per env, got {envs.num_envs} envs and {len(seeds)} seeds")
    action_dim = envs.spec.action_dim
    obs = envs.reset([int(s) for s in seeds])
    records = [
        {"obs": [o], "action": [np.zeros(action_dim, np.float32)], "reward": [0.0]} for o in obs
    ]
    active = np.ones(len(seeds), bool)
    first = True
    while active.any():
        actions = np.asarray(policy(obs, np.full(len(seeds), first)), np.float32)
        first = False
        obs, reward, terminated, truncated = envs.step(actions)
        for i in np.flatnonzero(active):
            records[i]["obs"].append(obs[i])
            records[i]["action"].append(np.clip(actions[i], -1.0, 1.0))
            records[i]["reward"].append(float(reward[i]))
            active[i] = not (terminated[i] or truncated[i])
    out = []
    for rec in records:
        rewards = np.asarray(rec["reward"], np.float32)
        episode = {
            "obs": np.stack(rec["obs"]).astype(np.uint8),
            "action": np.stack(rec["action"]).astype(np.float32),
            "reward": rewards,
            "is_first": np.arange(len(rewards)) == 0,
        }
        out.append({**episode, "return": float(np.sum(rec["reward"])), "length": len(rewards) - 1})
    return out


def device_episodes(
    env: JaxEnv,
    params: dict,
    mcfg: ModelConfig,
    pcfg: cem.CEMConfig,
    reset_keys: jax.Array,
    policy_keys: jax.Array,
    noise: jax.Array | float,
    random_actions: bool = False,
) -> dict[str, jax.Array]:
    """N full episodes of a pure-JAX task with the planner, as one ``lax.scan`` (jit it with
    ``static_argnames=("env", "mcfg", "pcfg", "random_actions")``, or use `jax.jit` on a closure).

    Per agent step: belief update from the new observations, CEM from a belief sample, action =
    first planned action + ``noise`` x N(0, 1), clipped to [-1, 1] (`acting.act_batch`); then
    ``env.step`` of every episode. With ``random_actions`` the actions are uniform in [-1, 1]
    (drawn from the step keys) and nothing is planned: the seed episodes.

    Args:
      env: the task; every episode lasts ``T = episode_length // action_repeat`` agent steps.
      params: world-model variables (unused with ``random_actions``).
      mcfg, pcfg: model and planner configs.
      reset_keys: [N] reset keys.
      policy_keys: [N] planning keys (step t uses ``fold_in(policy_keys[i], t)``).
      noise: exploration noise std.
      random_actions: uniform random actions instead of planning.

    Returns:
      dict ``obs`` uint8 [N, T+1, 64, 64, 3], ``action`` f32 [N, T+1, A], ``reward`` f32
      [N, T+1], ``is_first`` bool [N, T+1].
    """
    spec = env.spec
    n, a = reset_keys.shape[0], spec.action_dim
    steps = spec.agent_steps
    env_state, obs0 = jax.vmap(env.reset)(reset_keys)

    def body(carry, t):
        env_state, belief, prev, obs = carry
        keys = step_keys(policy_keys, t)
        if random_actions:
            action = jax.vmap(lambda k: jax.random.uniform(k, (a,), jnp.float32, -1.0, 1.0))(keys)
        else:
            first = jnp.full((n,), t == 0)
            action, belief = act_batch(params, mcfg, pcfg, a, belief, prev, obs, first, keys, noise)
        env_state, obs, reward, _ = jax.vmap(env.step)(env_state, action)
        return (env_state, belief, action, obs), (obs, action, reward)

    init = (env_state, rssm.initial_state(mcfg, (n,)), jnp.zeros((n, a), jnp.float32), obs0)
    _, (obs, action, reward) = jax.lax.scan(body, init, jnp.arange(steps))
    swap = lambda x: jnp.swapaxes(x, 0, 1)  # [T, N, ...] -> [N, T, ...]
    return {
        "obs": jnp.concatenate([obs0[:, None], swap(obs)], axis=1),
        "action": jnp.concatenate([jnp.zeros((n, 1, a), jnp.float32), swap(action)], axis=1),
        "reward": jnp.concatenate([jnp.zeros((n, 1), jnp.float32), swap(reward)], axis=1),
        "is_first": jnp.broadcast_to(jnp.arange(steps + 1) == 0, (n, steps + 1)),
    }


def add_episodes(state: replay.ReplayState, episodes: dict[str, jax.Array]) -> replay.ReplayState:
    """Writes N stacked episodes (dict of [N, T+1, ...]) into the buffer in order (jittable;
    ``jax.jit(add_episodes, donate_argnums=0)`` updates it in place)."""

    def body(st, episode):
        return replay.add_episode(st, episode), None

    state, _ = jax.lax.scan(body, state, {k: episodes[k] for k in replay.KEYS})
    return state


def split_episodes(episodes: dict[str, Any]) -> list[dict[str, np.ndarray]]:
    """Stacked episodes (dict of [N, T+1, ...]) -> N dicts of numpy arrays [T+1, ...] with
    ``return`` and ``length`` added (what ``replay.save_episode`` and the logger take)."""
    host = {k: np.asarray(episodes[k]) for k in replay.KEYS}
    out = []
    for i in range(host["obs"].shape[0]):
        one = {k: v[i] for k, v in host.items()}
        one.update({"return": float(one["reward"].sum()), "length": len(one["reward"]) - 1})
        out.append(one)
    return out

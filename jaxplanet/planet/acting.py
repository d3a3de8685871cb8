"""PlaNet acting for one or many environments: belief update + CEM planning + exploration noise.

Hafner et al. 2019, Alg. 1 (data collection): at every agent step the belief is updated with the
new observation (posterior step), CEM plans over the learned model from one sample of that
belief, and the first planned action plus Gaussian exploration noise is executed.

`act` is that step for one environment; `act_batch` is its ``jax.vmap`` over N environments
(one call, every dense layer of the planner a ``[N * candidates, K] x [K, N']`` matmul), each with
its own key, so N = 1 gives the action `act` gives for the same key. `make_act_batch` jits it;
`parallel.shard_batched(act_batch_fn, mesh, ACT_BATCHED)` splits the N environments over devices.
`batch_policy` keeps the beliefs of N host environments between steps.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.planet import rssm
from jaxplanet.planet.model import ModelConfig, posterior_step
from jaxplanet.planet.planning import latent_step, plan_start
from jaxplanet.planners import cem

# Which arguments of an act_batch function (params, belief, prev_action, obs, is_first, keys,
# noise) carry the env axis N; for parallel.shard_batched.
ACT_BATCHED = (False, True, True, True, True, True, False)

# policy(obs uint8 [N, 64, 64, 3], is_first bool [N]) -> actions float32 [N, A]
BatchPolicy = Callable[[np.ndarray, np.ndarray], np.ndarray]

__all__ = [
    "ACT_BATCHED",
    "BatchPolicy",
    "act",
    "act_batch",
    "batch_policy",
    "make_act_batch",
    "step_keys",
]


def act(
    params: dict,
    mcfg: ModelConfig,
    pcfg: cem.CEMConfig,
    action_dim: int,
    belief: rssm.State,
    prev_action: jax.Array,
    obs: jax.Array,
    is_first: jax.Array,
    key: jax.Array,
    noise: jax.Array | float,
) -> tuple[jax.Array, rssm.State]:
    """One agent step for one environment (the agent's ``act``).

    Args:
      params: world-model variables.
      mcfg: model config.
      pcfg: CEM settings; a ``sample`` attribute (default True) samples the belief and prior.
      action_dim: A.
      belief: previous belief State[].
      prev_action: [A] the action that led to ``obs``.
      obs: uint8 [64, 64, 3].
      is_first: bool []; resets the belief.
      key: this step's key (split into belief sample, plan and noise keys).
      noise: std of the Gaussian exploration noise (0 for evaluation).

    Returns:
      (action f32 [A] in [-1, 1], the belief sample planning started from, State[]).
    """
    sample = bool(getattr(pcfg, "sample", True))
    k_belief, k_plan, k_noise = jax.random.split(key, 3)
    belief = posterior_step(params, mcfg, belief, prev_action, obs, is_first)
    start = plan_start(belief, k_belief, sample)
    step = latent_step(params, mcfg, sample)
    plan = cem.plan_with(pcfg, step, start, k_plan, action_dim)
    action = plan[0] + noise * jax.random.normal(k_noise, (action_dim,))
    return jnp.clip(action, -1.0, 1.0), start


def act_batch(
    params: dict,
    mcfg: ModelConfig,
    pcfg: cem.CEMConfig,
    action_dim: int,
    belief: rssm.State,
    prev_action: jax.Array,
    obs: jax.Array,
    is_first: jax.Array,
    keys: jax.Array,
    noise: jax.Array | float,
) -> tuple[jax.Array, rssm.State]:
    """`act` for N environments in one vmapped call (params and noise shared).

    Args:
      belief: State[N]; prev_action: [N, A]; obs: uint8 [N, 64, 64, 3]; is_first: bool [N];
      keys: [N] one key per environment; the rest as `act`.

    Returns:
      (actions f32 [N, A], beliefs State[N]).
    """
    one = functools.partial(act, params, mcfg, pcfg, action_dim)
    return jax.vmap(one, in_axes=(0, 0, 0, 0, 0, None))(
        belief, prev_action, obs, is_first, keys, noise
    )


def make_act_batch(
    mcfg: ModelConfig,
    pcfg: cem.CEMConfig,
    action_dim: int,
    compiler_options: dict[str, Any] | None = None,
    jit: bool = True,
) -> Callable[..., tuple[jax.Array, rssm.State]]:
    """``fn(params, belief [N], prev_action [N, A], obs [N, 64, 64, 3], is_first [N], keys [N],
    noise) -> (actions [N, A], belief [N])``; jitted unless ``jit`` is False (e.g. to pass it
    to ``parallel.shard_batched(fn, mesh, ACT_BATCHED)``)."""

    def fn(params, belief, prev_action, obs, is_first, keys, noise):
        return act_batch(
            params, mcfg, pcfg, action_dim, belief, prev_action, obs, is_first, keys, noise
        )

    return jax.jit(fn, compiler_options=compiler_options or None) if jit else fn


def step_keys(keys: jax.Array, t: int | jax.Array) -> jax.Array:
    """Per-environment keys of agent step ``t``: ``fold_in(keys[i], t)``. [N] -> [N].

    The agent's single-env policy uses ``fold_in(episode_key, step)``, so env i with
    ``keys[i]`` = its episode key gets the keys it would get alone."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, t)


def batch_policy(
    act_fn: Callable[..., tuple[jax.Array, rssm.State]],
    params: dict,
    mcfg: ModelConfig,
    action_dim: int,
    keys: jax.Array,
    noise: float,
) -> BatchPolicy:
    """Host policy for N environments stepped together: keeps beliefs and previous actions.

    Args:
      act_fn: a `make_act_batch` function (jitted or sharded).
      params: world-model variables.
      mcfg: model config (for the initial belief).
      action_dim: A.
      keys: [N] episode keys; step t of env i plans with ``fold_in(keys[i], t)``.
      noise: exploration noise std.

    Returns:
      ``policy(obs uint8 [N, 64, 64, 3], is_first bool [N]) -> actions f32 [N, A]``.
    """
    n = keys.shape[0]
    state = {
        "belief": rssm.initial_state(mcfg, (n,)),
        "prev": jnp.zeros((n, action_dim), jnp.float32),
        "t": 0,
    }

    def policy(obs: np.ndarray, is_first: np.ndarray) -> np.ndarray:
        action, state["belief"] = act_fn(
            params,
            state["belief"],
            state["prev"],
            jnp.asarray(obs),
            jnp.asarray(is_first, bool),
            step_keys(keys, state["t"]),
            noise,
        )
        state["prev"], state["t"] = action, state["t"] + 1
        return np.asarray(action, np.float32)

    return policy

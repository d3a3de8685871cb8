"""K independent PlaNet agents in one program: ``jax.vmap`` over a leading seed axis.

Every seed has its own parameters, optimiser state, replay and keys; stacking them along a new
leading axis [K, ...] and vmapping the pure init / update functions trains all K at once (one
compiled program, K times larger matmuls), while each seed's numbers equal those of a run
with that seed alone (up to float reassociation; same batches and keys).

    keys = seeds.root_keys(seed=0, num_seeds=3, impl="threefry2x32")       # [3]
    init = jax.jit(seeds.init_train_states, static_argnums=(0, 2))
    states = init(cfg, seeds.fold_in(keys, INIT), A)                     # TrainState[3, ...]
    update = jax.jit(seeds.vmap_seeds(update_fn))     # (state[K], replay[K], key[K])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.planet.model import ModelConfig
from jaxplanet.planet.train import TrainState, init_train_state, train_step

__all__ = [
    "fold_in",
    "index",
    "init_train_states",
    "root_keys",
    "summarize",
    "train_step_seeds",
    "vmap_seeds",
]


def root_keys(seed: int, num_seeds: int, impl: str | None = None) -> jax.Array:
    """Keys [K] of seeds ``seed, seed + 1, ..., seed + K - 1``: key k equals
    ``jax.random.key(seed + k, impl=impl)``, the root key of a single-seed run with that seed."""
    if num_seeds < 1:
        raise ValueError(f"--num_seeds: must be >= 1, got {num_seeds}")
    return jnp.stack([jax.random.key(seed + k, impl=impl) for k in range(num_seeds)])


def fold_in(keys: jax.Array, data: int | jax.Array) -> jax.Array:
    """``jax.random.fold_in`` of every key of [K] with the same ``data``. [K] -> [K]."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, data)


def vmap_seeds(fn: Callable[..., Any], in_axes: Any = 0) -> Callable[..., Any]:
    """``fn`` over a leading seed axis of its arguments (``jax.vmap``; ``in_axes=None``
    for shared ones), e.g. the agent's ``update(train_state, replay_state, key)``."""
    return jax.vmap(fn, in_axes=in_axes)


def init_train_states(cfg: ModelConfig, keys: jax.Array, action_dim: int) -> TrainState:
    """K fresh train states: ``init_train_state(cfg, keys[k], action_dim)`` stacked [K, ...].

    Pure; jit with ``static_argnums=(0, 2)`` (eager init compiles op by op)."""
    return jax.vmap(init_train_state, in_axes=(None, 0, None))(cfg, keys, action_dim)


def train_step_seeds(
    states: TrainState, cfg: ModelConfig, batches: dict, keys: jax.Array
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One update of every seed on its own batch (pure; jit with ``static_argnums=1``).

    Args:
      states: TrainState with leading axis [K].
      cfg: model config (shared).
      batches: dict of [K, B, T, ...] (one batch per seed, from its own replay).
      keys: [K] loss keys.

    Returns:
      (states [K, ...], metrics: each [K]).
    """
    return jax.vmap(train_step, in_axes=(0, None, 0, 0))(states, cfg, batches, keys)


def index(tree: Any, k: int) -> Any:
    """Seed ``k``'s slice of a stacked pytree ([K, ...] -> [...])."""
    return jax.tree.map(lambda x: x[k], tree)


def summarize(metrics: dict[str, Any]) -> dict[str, float]:
    """Per-seed metrics {name: [K] or [K, steps]} -> {name/seed_k, name/mean, name/std}.

    Each seed's value is its mean over any trailing axes (e.g. the updates of an episode); the
    summary is the mean and (population) std over seeds.
    """
    out: dict[str, float] = {}
    for name, value in metrics.items():
        per_seed = np.asarray(value, np.float64)
        per_seed = per_seed.reshape(per_seed.shape[0], -1).mean(axis=1)
        for k, v in enumerate(per_seed):
            out[f"{name}/seed_{k}"] = float(v)
        out[f"{name}/mean"] = float(per_seed.mean())
        out[f"{name}/std"] = float(per_seed.std())
    return out

"""K independent PlaNet agents in one program: ``jax.vmap`` over a leading seed axis.

Every seed has its own parameters, optimiser state, replay and keys; stacking them along a new
leading axis [K, ...] and vmapping the pure init / update functions trains all K at once (one
compiled program, K times larger matmuls), while each seed's numbers equal those of a run
with that seed alone (up to float reassociation; same batches and keys).

    keys = seeds.root_keys(seed=0, num_seeds=3, impl="threefry2x32")       # [3]
    init = jax.jit(seeds.init_train_states, static_argnums=(0, 2))
    states = init(cfg, seeds.fold_in(keys, INIT), A)                     # TrainState[3, ...]
    update = jax.jit(seeds.over_axis(update_fn, 3))   # (state[K], replay[K], key[K])

The training loop always carries the seed axis; a single run is K = 1. `over_axis` maps a
function over the axis: ``jax.vmap`` for K > 1, and for K = 1 one call of the function on the
arrays without their axis, so a single run computes exactly what the unbatched function does
(a size-1 ``vmap`` reassociates some float sums: 3e-8 apart in the parameters after 4 updates
of the tiny model, measured).

Every key of a run is a ``fold_in`` of its root key with one of the streams `TRAIN`, `COLLECT`,
`EVAL`, `INIT` and then the episode index.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.planet.model import ModelConfig
from jaxplanet.planet.train import TrainState, init_train_state, train_step

__all__ = [
    "COLLECT",
    "EVAL",
    "INIT",
    "TRAIN",
    "fold",
    "fold_in",
    "index",
    "init_train_states",
    "over_axis",
    "root_keys",
    "split",
    "stack",
    "summarize",
    "train_step_seeds",
]

# Independent random streams, folded into a seed's root key (then the episode index).
TRAIN, COLLECT, EVAL, INIT = 0, 1, 2, 3


def root_keys(seed: int, num_seeds: int, impl: str | None = None) -> jax.Array:
    """Keys [K] of seeds ``seed, seed + 1, ..., seed + K - 1``: key k equals
    ``jax.random.key(seed + k, impl=impl)``, the root key of a single-seed run with that seed."""
    if num_seeds < 1:
        raise ValueError(f"--num_seeds: must be >= 1, got {num_seeds}")
    return jnp.stack([jax.random.key(seed + k, impl=impl) for k in range(num_seeds)])


def fold_in(keys: jax.Array, data: int | jax.Array) -> jax.Array:
    """``jax.random.fold_in`` of every key of [K] with the same ``data``. [K] -> [K]."""
    return jax.vmap(jax.random.fold_in, in_axes=(0, None))(keys, data)


def fold(keys: jax.Array, *data: int) -> jax.Array:
    """``fold_in`` of a key [] or of every key of [K] with each of ``data`` in turn."""
    for d in data:
        keys = jax.random.fold_in(keys, d) if keys.ndim == 0 else fold_in(keys, d)
    return keys


def split(keys: jax.Array, num: int) -> jax.Array:
    """``jax.random.split`` of a key [] -> [num], or of each key of [K] -> [K, num]."""
    if keys.ndim == 0:
        return jax.random.split(keys, num)
    return jax.vmap(lambda k: jax.random.split(k, num))(keys)


def over_axis(fn: Callable[..., Any], size: int, in_axes: Any = 0) -> Callable[..., Any]:
    """``fn`` over a leading axis of ``size`` (seeds, or a planner's rows) of its arguments
    (``in_axes`` as ``jax.vmap``'s: 0, or a tuple of 0 / None per argument), every output
    [size, ...].

    size > 1: ``jax.vmap``. size = 1: the axis is dropped, ``fn`` called once and the axis put
    back, so the numbers are exactly ``fn``'s (trace-time reshapes; free inside ``jit``).
    """
    if size > 1:
        return jax.vmap(fn, in_axes=in_axes)

    def one(*args: Any) -> Any:
        axes = in_axes if isinstance(in_axes, tuple) else (in_axes,) * len(args)
        args = tuple(
            a if axis is None else jax.tree.map(lambda x: x[0], a)
            for a, axis in zip(args, axes, strict=True)
        )
        return jax.tree.map(lambda x: x[None], fn(*args))

    return one


@functools.partial(jax.jit, donate_argnums=0)
def _with_seed_axis(tree: Any) -> Any:
    return jax.tree.map(lambda x: x[None], tree)


def stack(trees: list[Any]) -> Any:
    """K pytrees stacked along a new seed axis [K, ...]. One tree gets the axis in place (its
    buffers are donated: a replay buffer is not copied)."""
    if len(trees) == 1:
        return _with_seed_axis(trees[0])
    return jax.tree.map(lambda *x: jnp.stack(x), *trees)


def init_train_states(cfg: ModelConfig, keys: jax.Array, action_dim: int) -> TrainState:
    """K fresh train states: ``init_train_state(cfg, keys[k], action_dim)`` stacked [K, ...]
    (`over_axis`: for K = 1 exactly `init_train_state` with the axis added).

    Pure; jit with ``static_argnums=(0, 2)`` (eager init compiles op by op)."""
    return over_axis(lambda key: init_train_state(cfg, key, action_dim), keys.shape[0])(keys)


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
    step = lambda s, b, k: train_step(s, cfg, b, k)  # noqa: E731
    return over_axis(step, keys.shape[0])(states, batches, keys)


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

"""The jitted pieces of a PlaNet agent and the update loop over them.

* `make_functions(cfg, A)`: act / update / sample / add_episode / open_loop, jitted with the
  options of `jaxplanet.core.compile` (the benchmarks time these very functions);
* `train(fns, train_state, replay_state, key, steps)`: ``steps`` updates, dispatched from the
  host one after another;
* `init_train_state` / `init_train_states`: fresh parameters and optimiser state for one
  seed, or K stacked [K, ...];
* `replay_device`: where the replay lives.

The training loop (`jaxplanet.planet.agent`) always works with a seed axis [K, ...] (K = 1 for a
single run, see `seeds.over_axis`); the functions without one are here for single-seed use.
"""

from __future__ import annotations

import concurrent.futures
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxplanet import planet
from jaxplanet.core import compile as compile_lib
from jaxplanet.core import parallel, replay
from jaxplanet.planet import acting, seeds
from jaxplanet.planet.config import PlanetConfig

__all__ = [
    "Functions",
    "init_train_state",
    "init_train_states",
    "make_functions",
    "replay_device",
    "root_key",
    "train",
]


class Functions(NamedTuple):
    """The jitted pieces of a PlaNet agent for one config and action size."""

    act: Any  # (params, belief, prev_action, obs, is_first, key, noise) -> (action, belief)
    update: Any  # (train_state, replay_state, key) -> (train_state, metrics); None if sharded
    sample: Any  # (replay_state, key) -> batch, on the replay's device
    update_batch: Any  # (train_state, batch, key) -> (train_state, metrics)
    add_episode: Any  # (replay_state, episode) -> replay_state (donates the buffer)
    open_loop: Any  # (params, batch, key) -> uint8 [B, T, 64, 64, 3]
    batch_sharding: Any = None  # where batches go for a sharded update (None: with params)


def make_functions(
    cfg: PlanetConfig,
    action_dim: int,
    mesh: jax.sharding.Mesh | None = None,
    seed_axis: bool | None = None,
) -> Functions:
    """Builds the jitted act / update / replay functions (compiled on first call).

    With a seed axis (``seed_axis``; by default when ``cfg.num_seeds`` = K > 1) the update,
    sample and update_batch functions take train state, replay and keys with a leading axis
    [K, ...] (`seeds.over_axis`: vmapped, or for K = 1 exactly the one-seed function, as the
    training loop uses them); ``act`` and ``open_loop`` stay per seed. With a device ``mesh``
    the update is the data-parallel ``update_batch`` (batch split over the devices; ``update``
    is None). Cached on the fields they depend on, so runs in one process share compilations.
    XLA options: ``jaxplanet.core.compile.compiler_options("act")`` for ``act``, ``("update")``
    for the update functions and ``open_loop``.
    """
    return _make_functions(
        cfg.model,
        cfg.planner,
        cfg.batch_size,
        cfg.seq_length,
        cfg.video_context,
        action_dim,
        cfg.num_seeds,
        mesh,
        cfg.num_seeds > 1 if seed_axis is None else seed_axis,
    )


@functools.lru_cache(maxsize=8)
def _make_functions(
    mcfg,
    pcfg,
    batch_size: int,
    seq_length: int,
    context: int,
    action_dim: int,
    num_seeds: int = 1,
    mesh: jax.sharding.Mesh | None = None,
    seed_axis: bool = False,
) -> Functions:

    # XLA options per kind of function (jaxplanet.core.compile; the benchmarks time these
    # functions).
    act_options = compile_lib.compiler_options("act") or None
    update_options = compile_lib.compiler_options("update") or None

    @functools.partial(jax.jit, compiler_options=act_options)
    def act(params, belief, prev_action, obs, is_first, key, noise):  # one definition: acting
        return acting.act(
            params, mcfg, pcfg, action_dim, belief, prev_action, obs, is_first, key, noise
        )

    def sample_batch(replay_state, key):
        return replay.sample(replay_state, key, batch_size, seq_length)

    def update_batch(train_state, batch, key):
        return planet.train_step(train_state, mcfg, batch, key)

    def update(train_state, replay_state, key):
        k_batch, k_loss = jax.random.split(key)
        return update_batch(train_state, sample_batch(replay_state, k_batch), k_loss)

    @functools.partial(jax.jit, compiler_options=update_options)  # conv-heavy, as the update
    def open_loop(params, batch, key):
        return planet.open_loop_predictions(params, mcfg, batch, context, key)

    if seed_axis:  # new names: update must call the per-seed functions inside the map
        sample_fn, update_batch_fn, update_fn = (
            seeds.over_axis(fn, num_seeds) for fn in (sample_batch, update_batch, update)
        )
    else:
        sample_fn, update_batch_fn, update_fn = sample_batch, update_batch, update
    if mesh is not None:
        fused = None
        batch_axis = 1 if seed_axis else 0  # the batch's B axis, split over the devices
        step = parallel.shard_train_step(
            update_batch_fn, mesh, True, update_options, batch_axis=batch_axis
        )
        target = parallel.batch_sharding(mesh, batch_axis)
    else:
        fused = jax.jit(update_fn, donate_argnums=0, compiler_options=update_options)
        step = jax.jit(update_batch_fn, donate_argnums=0, compiler_options=update_options)
        target = None
    add_episode = jax.jit(replay.add_episode, donate_argnums=0)
    return Functions(act, fused, jax.jit(sample_fn), step, add_episode, open_loop, target)


def replay_device(cfg: PlanetConfig) -> jax.Device | None:
    """Where the replay lives: the host CPU for host replay, None for the compute device."""
    mode = cfg.replay_device
    if mode == "auto":
        mode = "device" if jax.default_backend() == "cpu" else "host"
    return jax.local_devices(backend="cpu")[0] if mode == "host" else None


def train(
    fns: Functions,
    train_state: planet.TrainState,
    replay_state: replay.ReplayState,
    key: jax.Array,
    steps: int,
    host_replay: bool = False,
    on_update: Callable[[int], None] | None = None,
) -> tuple[planet.TrainState, dict[str, jax.Array]]:
    """``steps`` gradient updates on batches sampled from replay; metrics stacked [steps]
    ([K, steps] for K seeds).

    A host loop over one jitted update: on XLA:CPU a lax.scan over the conv train step ran ~50x
    slower per step than the step alone (jax 0.10.2). Dispatch is asynchronous, so the host does
    not wait between steps. ``key`` is [] or, for K seeds, [K] (every array then carries the
    seed axis and ``fns`` are K seeds' `make_functions`). With ``host_replay`` (or a sharded
    update) the batch is sampled where the replay lives and the next batch is sent to the
    device(s) while the current update runs (same keys, same batches as device replay).

    At most two updates are in flight: after dispatching update ``i`` the host waits for update
    ``i - 1`` and calls ``on_update(i)`` (progress display, Ctrl-C check), so an interrupt is
    honoured within about one update rather than after all queued ones.
    """
    metrics: list[dict[str, jax.Array]] = []
    keys = seeds.split(key, steps)  # [steps], or [K, steps] for a key per seed
    step_key = lambda i: keys[..., i]  # noqa: E731

    def dispatched(i: int, m: dict[str, jax.Array]) -> None:
        metrics.append(m)
        if i > 0:
            jax.block_until_ready(metrics[i - 1])
        if on_update is not None:
            on_update(i)

    if not host_replay and fns.update is not None:
        for i in range(steps):
            train_state, m = fns.update(train_state, replay_state, step_key(i))
            dispatched(i, m)
    else:  # the keys the fused update splits inside: (batch key, loss key) per step
        pairs = [seeds.split(step_key(i), 2) for i in range(steps)]
        pairs = [(p[..., 0], p[..., 1]) for p in pairs]
        target = fns.batch_sharding or jax.tree.leaves(train_state.params)[0].sharding

        def fetch(k: jax.Array) -> dict:  # in a worker thread: sample on the host, transfer
            return jax.block_until_ready(jax.device_put(fns.sample(replay_state, k), target))

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(fetch, pairs[0][0])
            for i in range(steps):
                batch = pending.result()
                if i + 1 < steps:  # the next batch is prepared while this update runs
                    pending = pool.submit(fetch, pairs[i + 1][0])
                train_state, m = fns.update_batch(train_state, batch, pairs[i][1])
                dispatched(i, m)
    return train_state, jax.tree.map(lambda *xs: jnp.stack(xs, axis=-1), *metrics)


def root_key(cfg: PlanetConfig) -> jax.Array:
    """The run's root PRNG key; every other key is a ``fold_in`` of it."""
    return jax.random.key(cfg.seed, impl=cfg.prng_impl)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_train_state(mcfg: planet.ModelConfig, key: jax.Array, action_dim: int) -> Any:
    return planet.init_train_state(mcfg, key, action_dim)


def init_train_state(cfg: PlanetConfig, key: jax.Array, action_dim: int) -> planet.TrainState:
    """Fresh parameters and optimiser state (one jitted call: eager init compiles per op)."""
    return _init_train_state(cfg.model, key, action_dim)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_train_states(mcfg: planet.ModelConfig, keys: jax.Array, action_dim: int) -> Any:
    return seeds.init_train_states(mcfg, keys, action_dim)


def init_train_states(cfg: PlanetConfig, keys: jax.Array, action_dim: int) -> planet.TrainState:
    """K fresh train states [K, ...] from keys [K] (`seeds.over_axis`: for K = 1 exactly
    `init_train_state` with a seed axis)."""
    return _init_train_states(cfg.model, keys, action_dim)

"""The policies World Models plays in host tasks (batched, one episode per worker slot).

Each has ``start(ids)`` (a wave of episodes; ids index the call's seeds, -1 for idle slots) and
``act(obs uint8 [W, 64, 64, 3]) -> actions f32 [W, A]``, what `jaxplanet.envs.vector`'s
`vector_episodes` drives: `RandomPolicy` (uniform actions, held), `RandomWeightsPolicy` (the
released CarRacing data policy), `SequencePolicy` (given action sequences: the calibrate stage's
open-loop policies, `open_loop_episodes`) and `ControllerPolicy` (V, M and C: the agent).
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.worldmodels import controllers, dream, mdn_rnn, vae
from jaxplanet.worldmodels.run import COLLECT, Run

__all__ = [
    "ControllerPolicy",
    "RandomPolicy",
    "RandomWeightsPolicy",
    "SequencePolicy",
    "open_loop_episodes",
]


class RandomPolicy:
    """Uniform actions in [-1, 1]^A, then the action map (with ``m_action="raw"`` the raw action:
    the env applies the map itself, and the recorded action is the one M reads). Each action is
    held `random_hold` steps, or with `random_hold_max` > 0 for k ~ U{1..random_hold_max} steps,
    k drawn after each new action (the released ``doomrnn/extract.py``).

    Episode ``i`` (its position in ``seeds``, the env seeds of the call) draws from its own
    generator seeded by ``seeds[i]``, so a rollout does not depend on which call, wave or worker
    ran it: a resumed collect equals an uninterrupted one.
    """

    def __init__(self, run: Run, seeds: list[int]):
        self.run, self.seeds, self.rngs, self.t = run, seeds, [], 0

    def start(self, ids: list[int]) -> None:
        """Begins a wave of episodes ``ids`` (-1 for idle slots)."""
        self.rngs = [np.random.default_rng(self.seeds[i] + 7 if i >= 0 else 0) for i in ids]
        self.t, self.left = 0, np.zeros(len(ids), np.int64)
        self.a = np.zeros((len(ids), self.run.spec.action_dim), np.float32)

    def _draw(self, g: np.random.Generator) -> np.ndarray:
        a = g.uniform(-1.0, 1.0, self.run.spec.action_dim)
        if self.run.cfg.m_action == "mapped":
            a = controllers.map_action(self.run.r.action_map, a)
        return np.asarray(a, np.float32)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs uint8 [W, 64, 64, 3] -> actions f32 [W, A]."""
        hold_max = self.run.r.random_hold_max
        if hold_max:
            for j, g in enumerate(self.rngs):
                if self.left[j] == 0:
                    self.a[j], self.left[j] = self._draw(g), g.integers(1, hold_max + 1)
                self.left[j] -= 1
        elif self.t % self.run.r.random_hold == 0:
            self.a = np.stack([self._draw(g) for g in self.rngs])
        self.t += 1
        return self.a.copy()


class SequencePolicy:
    """Open-loop actions: episode ``i`` (its position in the call's seeds) plays ``actions[i, t]``
    at agent step t (the last one past the end). The actions are C-like outputs in [-1, 1]; the
    host env applies the task's action map itself (ViZDoom's thresholds, CarRacing's gas/brake).

    Args:
      actions: f32 [E, T, A].
    """

    def __init__(self, actions: np.ndarray):
        self.actions, self.t = np.asarray(actions, np.float32), 0

    def start(self, ids: list[int]) -> None:
        """Begins a wave of episodes ``ids`` (-1 for idle slots)."""
        self.ids, self.t = np.maximum(np.asarray(ids), 0), 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs uint8 [W, 64, 64, 3] -> actions f32 [W, A]."""
        a = self.actions[self.ids, min(self.t, self.actions.shape[1] - 1)]
        self.t += 1
        return a


def open_loop_episodes(
    run: Run, actions: np.ndarray, seeds: list[int], keys: jax.Array, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Real episodes that play fixed action sequences (random or constant policies).

    Args:
      run: the run; actions: f32 [E, T, A] in [-1, 1] (T = `spec.agent_steps`); seeds: E env
      seeds (host tasks); keys: [E] PRNG keys of the resets (pure-JAX tasks); desc: progress.

    Returns:
      (returns f32 [E], lengths int [E] in agent steps until the episode ended).
    """
    if run.jax_env is None:
        eps = run.host_episodes(seeds, SequencePolicy(actions), record=False, desc=desc)
        return (
            np.asarray([e["return"] for e in eps], np.float32),
            np.asarray([e["length"] for e in eps], np.int64),
        )
    returns, lengths = _jax_open_loop(run.jax_env, jnp.asarray(actions), keys)
    return np.asarray(returns, np.float32), np.asarray(lengths, np.int64)


@functools.partial(jax.jit, static_argnums=0)
def _jax_open_loop(env: Any, actions: jax.Array, keys: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(returns f32 [E], steps until done int32 [E]) of actions [E, T, A] on a pure-JAX task."""

    def one(acts, key):
        state, _ = env.reset(key)

        def body(c, a):
            s, total, steps, done = c
            s, _, r, d = env.step(s, a)
            total = total + jnp.where(done, 0.0, r)
            return (s, total, steps + (~done).astype(steps.dtype), done | d), None

        zero = jnp.zeros((), jnp.float32)
        init = (state, zero, jnp.zeros((), jnp.int32), jnp.zeros((), bool))
        (_, total, steps, _), _ = jax.lax.scan(body, init, acts)
        return total, steps

    return jax.vmap(one)(actions, keys)


class ControllerPolicy:
    """Batched world-model agent on host frames: one controller (flat [N]) per episode id.

    Args:
      run: the run; params: {"vae", "mdn", ...}; flats: f32 [E, N] one controller per episode;
      unflatten: flat [N] -> controller pytree; key: PRNG key of V's posterior samples.
      noise: None (evaluation: the mapped action), or the std of Gaussian noise on C's raw
        action when C collects M's data (`dream.exploring_policy_step`: the action M reads is
        what the env gets and the rollout records).
    """

    def __init__(
        self,
        run: Run,
        params: Any,
        flats: np.ndarray,
        unflatten: Any,
        key: jax.Array,
        noise: float | None = None,
    ):
        self.run, self.params, self.flats, self.key = run, params, flats, key
        self.unflatten, self.t = unflatten, 0
        self._wave_t: dict[tuple[int, ...], int] = {}  # wave ids -> its first step's key index
        if noise is None:
            step = functools.partial(dream.world_model_policy_step, cfg=run.dcfg)
        else:
            step = functools.partial(dream.exploring_policy_step, cfg=run.dcfg, noise=noise)

        def act(params, flats, carry, obs, keys):
            return jax.vmap(
                lambda f, c, o, k: step(params, ctrl=unflatten(f), carry=c, obs=o, key=k)[:2]
            )(flats, carry, obs, keys)

        self._act = jax.jit(act)

    def start(self, ids: list[int]) -> None:
        """Begins a wave of episodes ``ids`` (-1 for idle slots): M's state is reset; a wave run
        again (after a worker died) draws V's samples from the same keys."""
        self.ids = np.maximum(np.asarray(ids), 0)
        self.carry = mdn_rnn.initial_state(self.run.dcfg.mdn, (len(ids),))
        self.t = self._wave_t.setdefault(tuple(int(i) for i in ids), self.t)

    def _keys(self, width: int) -> jax.Array:
        """The wave's keys of step ``self.t`` ([W]: V's posterior samples, C's noise)."""
        return jax.random.split(jax.random.fold_in(self.key, self.t), width)

    def act(self, obs: np.ndarray) -> np.ndarray:
        """obs uint8 [W, 64, 64, 3] -> actions f32 [W, A] (after the action map)."""
        self.t += 1
        keys = self._keys(obs.shape[0])
        a, self.carry = self._act(self.params, self.flats[self.ids], self.carry, obs, keys)
        return np.asarray(a)


class RandomWeightsPolicy(ControllerPolicy):
    """The released CarRacing data policy (``carracing/extract.py``): episode ``i``'s C has
    weights Cauchy(0, 1) * s, s ~ U(0, 0.01) (from ``default_rng(seeds[i] + 7)``), on [z, h] (or
    the task's C input) of an untrained V and M. Released, V's and M's weights are Cauchy too,
    times the episode's s: such a V gives z ~ N(0, 1) noise whatever the frame (mean ~ 0,
    log-variance ~ 0) and such an M a small h. Here V's weights are zero (z ~ N(0, 1) exactly:
    Cauchy tails through V's five layers overflow its log-variance) and M's Cauchy(0, 1) * 0.005
    (the mean s), one V and M per run from its `COLLECT` key. So tanh(W [z, h] + b) is a small
    jitter around 0: steer ~ 0, gas ~ 0.5, no brake. The car drives and M sees the track
    (uniform actions brake half the time, and the car barely leaves the start).

    Episode ``i``'s weights and keys come from ``seeds[i]`` alone, so a rollout does not depend on
    which call, wave or worker plays it (a resumed collect equals an uninterrupted one).
    """

    MODEL_SCALE = 0.005

    def __init__(self, run: Run, seeds: list[int]):
        r, a_dim = run.r, run.spec.action_dim
        k_v, k_m, k_c, k_w = jax.random.split(run.key(COLLECT), 4)
        m_leaves, m_tree = jax.tree.flatten(mdn_rnn.init(r.mdn, k_m, a_dim))
        keys = jax.random.split(k_w, len(m_leaves))
        m_leaves = [
            self.MODEL_SCALE * jax.random.cauchy(k, x.shape, x.dtype)
            for k, x in zip(keys, m_leaves, strict=True)
        ]
        params = {
            "vae": jax.tree.map(jnp.zeros_like, vae.init(r.vae, k_v)),
            "mdn": jax.tree.unflatten(m_tree, m_leaves),
        }
        z, hidden, _, cell, bias = run.controller_dims()
        template = controllers.init(k_c, z, hidden, a_dim, cell=cell, bias=bias)
        flat, unflatten = controllers.flatten(template)
        flats = []
        for seed in seeds:
            g = np.random.default_rng(seed + 7)
            scale = g.uniform(0.0, 0.01)
            flats.append(g.standard_cauchy(flat.shape[0]) * scale)
        super().__init__(run, params, np.asarray(flats, np.float32), unflatten, k_c, noise=0.0)
        self.episode_keys = jnp.stack([jax.random.key(s, impl="threefry2x32") for s in seeds])

    def start(self, ids: list[int]) -> None:
        """Begins a wave of episodes ``ids``: M's state reset, each episode at its step 0."""
        super().start(ids)
        self.t = 0

    def _keys(self, width: int) -> jax.Array:
        return jax.vmap(jax.random.fold_in, (0, None))(self.episode_keys[self.ids], self.t)

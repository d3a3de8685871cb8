"""Batched environments stepped in this process (no worker processes).

* `InProcessEnvs`: a list of `HostEnv`s stepped one after another (host simulators with N = 1,
  or where processes would only add overhead);
* `JaxEnvs`: N episodes of a pure-JAX task (such as ``point_reach``) stepped by one jitted,
  ``vmap``-ed call.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxplanet.envs.base import EnvSpec, HostEnv
from jaxplanet.envs.vector.base import StepResult, _Batched, _Episode

__all__ = ["InProcessEnvs", "JaxEnvs"]


class InProcessEnvs(_Batched):
    """N `HostEnv`s of one task stepped one after another in this process.

    Args:
      envs: the environments (all with the same `spec`); `close()` closes them.

    Raises:
      ValueError: no envs, or envs with different specs.
    """

    def __init__(self, envs: Sequence[HostEnv]):
        envs = list(envs)
        if not envs:
            raise ValueError("InProcessEnvs needs at least one environment")
        specs = {env.spec for env in envs}
        if len(specs) != 1:
            raise ValueError(f"environments of one task expected, got specs {sorted(specs)}")
        self.envs = envs
        self.spec: EnvSpec = envs[0].spec
        self.num_envs = len(envs)
        self._episodes = [_Episode(env) for env in envs]
        self._closed = False

    def _each(self, what: str, fn: Callable[[int, _Episode], Any]) -> list[Any]:
        if self._closed:
            raise RuntimeError(f"InProcessEnvs of {self.spec.name!r} is closed")
        out = []
        for i, episode in enumerate(self._episodes):
            try:
                out.append(fn(i, episode))
            except Exception as e:
                e.add_note(f"in {what} of env {i} of {self.num_envs} ({self.spec.name!r})")
                raise
        return out

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Resets env i with ``seeds[i]``: obs uint8 [N, 64, 64, 3]."""
        seeds = self._seeds(seeds)
        obs = self._each("reset", lambda i, ep: ep.reset(seeds[i]))
        return np.stack(obs).astype(np.uint8, copy=False)

    def step(self, actions: np.ndarray) -> StepResult:
        """actions f32 [N, A] -> (obs uint8 [N, 64, 64, 3], reward f32 [N], terminated bool [N],
        truncated bool [N]); finished envs are not stepped (outputs meaningless)."""
        a = self._actions(actions)
        return self._batch(self._each("step", lambda i, ep: ep.step(a[i])))

    def close(self) -> None:
        """Closes every env (idempotent)."""
        if not self._closed:
            self._closed = True
            for env in self.envs:
                env.close()


class JaxEnvs(_Batched):
    """N episodes of a pure-JAX task (`JaxEnv`) stepped by one jitted, ``vmap``-ed call.

    Env i reset with seed s gives the numbers of a `JaxHostAdapter` reset with s (episode key
    ``fold_in(PRNGKey(s), 0)``): every step of every env is one call instead of N. After an
    env's episode ends its rows repeat the final frame with reward 0 (meaningless, as in
    `BatchedEnv`).

    Args:
      jax_env: the task's pure functions (``envs.make_jax(name, **options)``).
      num_envs: N.
    """

    def __init__(self, jax_env: Any, num_envs: int):
        import jax

        self.jax_env = jax_env
        self.spec: EnvSpec = jax_env.spec
        self.num_envs = operator.index(num_envs)
        self._reset = jax.jit(jax.vmap(jax_env.reset))
        self._step = jax.jit(jax.vmap(jax_env.step))
        self._state: Any = None
        self._obs: np.ndarray | None = None
        self._done = np.ones(self.num_envs, bool)
        self._closed = False

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"JaxEnvs of {self.spec.name!r} is closed")

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Resets env i with ``seeds[i]``: obs uint8 [N, 64, 64, 3]."""
        import jax
        import jax.numpy as jnp

        self._check_open()
        keys = jnp.stack([jax.random.fold_in(jax.random.PRNGKey(s), 0) for s in self._seeds(seeds)])
        self._state, obs = self._reset(keys)
        self._obs = np.asarray(obs)
        self._done[:] = False
        return self._obs

    def step(self, actions: np.ndarray) -> StepResult:
        """actions f32 [N, A] -> (obs uint8 [N, 64, 64, 3], reward f32 [N], terminated bool [N]
        (always False: pure-JAX tasks end by time), truncated bool [N])."""
        self._check_open()
        if self._obs is None:
            raise RuntimeError("call reset(seeds) before step(actions)")
        a = np.clip(self._actions(actions), -1.0, 1.0)
        state, obs, reward, done = self._step(self._state, a)
        ended = self._done.copy()
        obs, reward = np.array(obs), np.array(reward, np.float32)  # writable copies
        obs[ended], reward[ended] = self._obs[ended], 0.0
        self._state, self._obs = state, obs
        self._done |= np.asarray(done, bool)
        return obs, reward, np.zeros(self.num_envs, bool), self._done.copy()

    def close(self) -> None:
        """Drops the episode state (idempotent); later calls raise."""
        self._closed, self._state = True, None

"""Environment interfaces shared by every task in `jaxplanet.envs`.

Two kinds of environment live here:

* `HostEnv`: a gymnasium-style object stepped from Python (dm_control, gymnasium, or a
  pure-JAX task behind `JaxHostAdapter`). Observations are uint8 [64, 64, 3], actions are
  float32 in [-1, 1]^A, action repeat is applied inside `step`, and `truncated` becomes True
  after `episode_length // action_repeat` agent steps.
* `JaxEnv`: a frozen container of pure, jittable, vmappable functions (`reset`, `step`,
  `transition`, `render`) plus its `EnvSpec`. The "true simulator" for planners: `transition`
  is the shared transition protocol `step(state, action, key) -> (state, reward)` that every
  planner takes (deterministic tasks ignore the key).

Step convention (PlaNet, Hafner et al. 2019): "env steps" count simulator steps after action
repeat, so one agent step is `action_repeat` env steps and `episode_length` is in env steps.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, Protocol, runtime_checkable

import flax.struct
import jax
import numpy as np

__all__ = [
    "EnvSpec",
    "HostEnv",
    "JaxEnv",
    "JaxHostAdapter",
    "UnknownEnvError",
    "check_episode",
    "check_options",
    "clip_action",
    "rescale_action",
]


class UnknownEnvError(ValueError):
    """Raised by `make`/`make_jax` for a name that is not registered."""


class EnvSpec(NamedTuple):
    """Static description of an environment.

    Attributes:
      name: registry name, e.g. "walker_walk" or "point_reach".
      obs_shape: observation shape, (64, 64, 3) uint8 pixels.
      action_dim: A, the length of the action vector (actions live in [-1, 1]^A).
      action_repeat: simulator steps per agent step.
      episode_length: episode length in env steps (after action repeat is counted);
        an episode has `episode_length // action_repeat` agent steps.
    """

    name: str
    obs_shape: tuple[int, ...] = (64, 64, 3)
    action_dim: int = 1
    action_repeat: int = 1
    episode_length: int = 1000

    @property
    def agent_steps(self) -> int:
        """Agent steps per episode (`episode_length // action_repeat`)."""
        return self.episode_length // self.action_repeat


@runtime_checkable
class HostEnv(Protocol):
    """Gymnasium-style environment stepped from the host.

    `reset(seed)` with an int seed restarts the environment's random stream from that seed;
    `reset()` (seed None) continues it, so a run is reproducible from the seed given to `make`.
    """

    spec: EnvSpec

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode. Returns (obs uint8 [64, 64, 3], info)."""
        ...

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies `action` f32 [A] in [-1, 1] for `action_repeat` env steps.

        Returns (obs uint8 [64, 64, 3], reward summed over repeats, terminated, truncated, info).
        """
        ...

    def render(self) -> np.ndarray:
        """Current frame, uint8 [64, 64, 3]."""
        ...

    def close(self) -> None:
        """Releases simulator and rendering resources."""
        ...


@flax.struct.dataclass
class JaxEnv:
    """Frozen container of the pure functions of a pure-JAX task.

    Every field is static (not a pytree leaf), so a `JaxEnv` can be closed over or passed
    straight through `jax.jit` as an argument without becoming traced.

    Attributes:
      spec: `EnvSpec` of the task.
      reset: `reset(key) -> (state, obs uint8 [64, 64, 3])`.
      step: `step(state, action f32 [A]) -> (state, obs, reward f32 [], done bool [])`;
        action repeat inside, reward summed over the repeats.
      transition: `transition(state, action, key) -> (state, reward f32 [])`: the same dynamics
        and reward as `step` without rendering (cheap; the true simulator for planners, in the
        planners' `step(state, action, key)` protocol; deterministic tasks ignore `key`).
      render: `render(state) -> uint8 [64, 64, 3]`.
    """

    spec: EnvSpec = flax.struct.field(pytree_node=False)
    reset: Callable[..., Any] = flax.struct.field(pytree_node=False)
    step: Callable[..., Any] = flax.struct.field(pytree_node=False)
    transition: Callable[..., Any] = flax.struct.field(pytree_node=False)
    render: Callable[..., Any] = flax.struct.field(pytree_node=False)


def clip_action(action: Any, action_dim: int) -> np.ndarray:
    """Validates an agent action and clips it to [-1, 1].

    Args:
      action: array-like of shape [A] (a scalar is accepted when A == 1).
      action_dim: A.

    Returns:
      float32 [A] in [-1, 1].

    Raises:
      ValueError: wrong shape, or any NaN / infinite entry.
    """
    a = np.asarray(action, dtype=np.float32)
    if a.ndim == 0 and action_dim == 1:
        a = a.reshape(1)
    if a.shape != (action_dim,):
        raise ValueError(f"action must have shape ({action_dim},), got {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"action contains NaN or inf: {a.tolist()}")
    return np.clip(a, -1.0, 1.0)


def rescale_action(action: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Maps an action in [-1, 1]^A affinely onto the box [low, high]^A (float64 [A])."""
    low = np.asarray(low, dtype=np.float64)
    high = np.asarray(high, dtype=np.float64)
    return low + (np.asarray(action, dtype=np.float64) + 1.0) * 0.5 * (high - low)


def check_options(name: str, options: dict[str, Any], allowed: dict[str, Any]) -> dict[str, Any]:
    """Merges `options` over `allowed` defaults; raises TypeError naming any unknown option."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(
            f"unknown option(s) {unknown} for environment {name!r}; "
            f"valid options: {sorted(allowed)}"
        )
    return {**allowed, **options}


def check_episode(action_repeat: int, episode_length: int) -> None:
    """Validates action repeat and episode length (env steps)."""
    if int(action_repeat) != action_repeat or action_repeat < 1:
        raise ValueError(f"action_repeat must be a positive int, got {action_repeat!r}")
    if int(episode_length) != episode_length or episode_length < action_repeat:
        raise ValueError(
            f"episode_length (env steps) must be an int >= action_repeat={action_repeat}, "
            f"got {episode_length!r}"
        )


class JaxHostAdapter:
    """Runs a `JaxEnv` as a `HostEnv` with jitted functions.

    Episode keys are `fold_in(PRNGKey(seed), episode_index)`: `reset(seed)` sets the seed and
    restarts the episode index at 0, `reset()` moves to the next episode of the current seed.
    Results equal the pure functions called with the same keys.
    """

    def __init__(self, jax_env: JaxEnv, seed: int = 0):
        self.jax_env = jax_env
        self.spec: EnvSpec = jax_env.spec
        self._seed = int(seed)
        self._episode = 0
        self._reset = jax.jit(jax_env.reset)
        self._step = jax.jit(jax_env.step)
        self._state: Any = None
        self._obs: np.ndarray | None = None
        self._done = False

    def episode_key(self, seed: int, episode: int) -> jax.Array:
        """Key used by `reset` for episode `episode` of `seed`."""
        return jax.random.fold_in(jax.random.PRNGKey(seed), episode)

    @property
    def state(self) -> Any:
        """Current pure-JAX state (None before the first reset)."""
        return self._state

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._seed = int(seed)
            self._episode = 0
        key = self.episode_key(self._seed, self._episode)
        self._episode += 1
        self._state, obs = self._reset(key)
        self._obs = np.asarray(obs)
        self._done = False
        return self._obs, {"seed": self._seed, "episode": self._episode - 1}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._state is None:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("episode is over (truncated); call reset() before step()")
        a = clip_action(action, self.spec.action_dim)
        self._state, obs, reward, done = self._step(self._state, a)
        self._obs = np.asarray(obs)
        self._done = bool(done)
        return self._obs, float(reward), False, self._done, {}

    def render(self) -> np.ndarray:
        if self._obs is None:
            raise RuntimeError("call reset() before render()")
        return self._obs

    def close(self) -> None:
        self._state = None
        self._obs = None

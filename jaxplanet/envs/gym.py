"""The gymnasium pixel adapter: gymnasium environments as pixel `HostEnv`s.

Two ways in, for any gymnasium env and for World Models' tasks (Ha & Schmidhuber 2018):

* `GymnasiumEnv` takes an env created with `render_mode="rgb_array"`, observes the frames of
  `env.render()` area-resized to size x size (numpy only), rescales actions in [-1, 1]^A to the
  env's Box action space, applies action repeat (reward summed) and keeps gymnasium's
  `terminated`/`truncated` split (`make_gymnasium` builds one from a gymnasium id: the
  ``gym:<id>`` names of `jaxplanet.envs.make`);
* `pixel_wrapper_class()` is a `gymnasium.Wrapper` whose observations are already 64x64 frames
  (CarRacing, VizDoom: `jaxplanet.envs.car_racing`, `jaxplanet.envs.doom`), what worker
  processes run; `PixelHostEnv` (built by `host_factory` or `pixel_host`) is its `HostEnv`.

`resize_area` is the frame resize of both, and `single_threaded_blas` the setting for processes
that run it side by side. gymnasium itself is optional (`jaxplanet.envs.optional`, the
`worldmodels` extra) and imported only inside the functions that need it; `GymnasiumEnv` works
with any object following the gymnasium API.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from jaxplanet.envs.base import (
    EnvSpec,
    check_episode,
    check_options,
    clip_action,
    rescale_action,
)
from jaxplanet.envs.optional import require

DEFAULT_EPISODE_LENGTH = 1000

__all__ = [
    "DEFAULT_EPISODE_LENGTH",
    "OPTIONS",
    "GymnasiumEnv",
    "PixelHostEnv",
    "host_factory",
    "make_gymnasium",
    "pixel_host",
    "pixel_wrapper_class",
    "resize_area",
    "single_threaded_blas",
]


@functools.lru_cache(maxsize=64)
def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """f32 [n_out, n_in] matrix averaging input cells over each output cell's span (box filter).

    Cached per (n_in, n_out) and read-only: frames of one env share one matrix.
    """
    edges = np.arange(n_out + 1) * (n_in / n_out)
    lo, hi = edges[:-1, None], edges[1:, None]
    cells = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, cells + 1) - np.maximum(lo, cells), 0.0, None)
    weights = (overlap / overlap.sum(axis=1, keepdims=True)).astype(np.float32)
    weights.setflags(write=False)
    return weights


def resize_area(image: np.ndarray, size: int) -> np.ndarray:
    """Area (box-filter) resize. image: uint8 [H, W, C] -> uint8 [size, size, C].

    Two 2-D matrix products with the cached weights (rows, then columns). Under several
    processes, limit BLAS to one thread each (``OMP_NUM_THREADS=1``): threaded products of this
    size are slower than one thread when cores are shared.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected an [H, W, C] frame, got shape {image.shape}")
    h, w, c = image.shape
    if (h, w) == (size, size):
        return image.astype(np.uint8, copy=False)
    rows, cols = _area_weights(h, size), _area_weights(w, size)
    out = rows @ image.reshape(h, w * c).astype(np.float32)  # [size, W * C]
    out = out.reshape(size, w, c).transpose(1, 0, 2).reshape(w, size * c)  # [W, size * C]
    out = (cols @ out).reshape(size, size, c).transpose(1, 0, 2)  # [size, size, C]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


_BLAS_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Processes started inside this block use one BLAS thread each (the frame resize's
    matrix products are ~10x slower threaded when processes share the cores)."""
    saved = {k: os.environ.get(k) for k in _BLAS_THREAD_VARS}
    os.environ.update({k: "1" for k in _BLAS_THREAD_VARS})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class GymnasiumEnv:
    """Wraps a gymnasium env (render_mode="rgb_array", Box actions) as a pixel `HostEnv`.

    Args:
      env: the gymnasium environment (or any object with its reset/step/render/close API and a
        Box-like `action_space` with `low`, `high`, `shape`).
      action_repeat: env steps per agent step.
      size: frame height and width after resizing.
      seed: seed of the first `reset()` (later `reset()` calls continue the env's RNG).
      episode_length: env steps per episode; default `env.spec.max_episode_steps` or 1000.
        The wrapped env may truncate earlier (its own TimeLimit).
    """

    def __init__(
        self,
        env: Any,
        action_repeat: int = 1,
        size: int = 64,
        seed: int | None = None,
        episode_length: int | None = None,
    ):
        mode = getattr(env, "render_mode", None)
        if mode != "rgb_array":
            raise ValueError(f"create the env with render_mode='rgb_array' (got {mode!r})")
        space = env.action_space
        if not all(hasattr(space, k) for k in ("low", "high", "shape")) or len(space.shape) != 1:
            raise TypeError(f"GymnasiumEnv needs a 1-D continuous Box action space, got {space}")
        low = np.asarray(space.low, np.float64)
        high = np.asarray(space.high, np.float64)
        if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
            raise ValueError(f"action space bounds must be finite to rescale [-1, 1]: {space}")
        env_spec = getattr(env, "spec", None)
        if episode_length is None:
            episode_length = getattr(env_spec, "max_episode_steps", None) or DEFAULT_EPISODE_LENGTH
        check_episode(action_repeat, episode_length)
        name = getattr(env_spec, "id", None) or type(env).__name__
        self.env = env
        self._low, self._high = low, high
        self._size = int(size)
        self.spec = EnvSpec(
            name,
            (self._size, self._size, 3),
            int(space.shape[0]),
            int(action_repeat),
            int(episode_length),
        )
        self._next_seed = seed
        self._frame: np.ndarray | None = None
        self._t = 0
        self._done = True

    def _grab(self) -> np.ndarray:
        self._frame = resize_area(self.env.render(), self._size)
        return self._frame

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; `seed` (or the constructor's seed on the first call) reseeds."""
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        else:
            self._next_seed = None
        _, info = self.env.reset(seed=seed)
        self._t = 0
        self._done = False
        return self._grab(), dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies the action `action_repeat` times; reward summed over the repeats."""
        if self._done:
            raise RuntimeError("call reset() before step() (no episode running)")
        a = rescale_action(clip_action(action, self.spec.action_dim), self._low, self._high)
        a = a.astype(np.asarray(self.env.action_space.low).dtype)
        reward, terminated, truncated, info = 0.0, False, False, {}
        for _ in range(self.spec.action_repeat):
            _, r, terminated, truncated, info = self.env.step(a)
            reward += float(r)
            if terminated or truncated:
                break
        self._t += 1
        terminated = bool(terminated)
        truncated = not terminated and (bool(truncated) or self._t >= self.spec.agent_steps)
        self._done = terminated or truncated
        return self._grab(), reward, terminated, truncated, dict(info)

    def render(self) -> np.ndarray:
        """Current frame, uint8 [size, size, 3]."""
        if self._frame is None:
            raise RuntimeError("call reset() before render()")
        return self._frame

    def close(self) -> None:
        """Closes the wrapped env."""
        self.env.close()


OPTIONS = ("action_repeat", "size", "episode_length", "env_kwargs")


def make_gymnasium(env_id: str, seed: int = 0, **options: Any) -> GymnasiumEnv:
    """`gymnasium.make(env_id, render_mode="rgb_array", **env_kwargs)` wrapped in `GymnasiumEnv`.

    Raises:
      ImportError: gymnasium is not installed (install the `worldmodels` extra).
      TypeError: an option other than action_repeat, size, episode_length, env_kwargs.
    """
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for gym:{env_id}; valid: {list(OPTIONS)}")
    gymnasium = require("gymnasium", "a 'gym:' environment")
    env_kwargs = dict(options.pop("env_kwargs", None) or {})
    env = gymnasium.make(env_id, render_mode="rgb_array", **env_kwargs)
    return GymnasiumEnv(env, seed=seed, **options)


@functools.lru_cache(maxsize=1)
def pixel_wrapper_class() -> type:
    """`PixelWrapper(env, frame_fn, action_fn, action_dim, action_repeat, max_steps)`.

    A `gymnasium.Wrapper` with uint8 [64, 64, 3] observations, Box [-1, 1]^A actions, action
    repeat (rewards summed) and truncation after `max_steps` agent steps. Built on first use so
    that gymnasium stays optional.
    """
    gymnasium = require("gymnasium", "World Models' real environments")

    class PixelWrapper(gymnasium.Wrapper):
        """uint8 [64, 64, 3] frames, [-1, 1]^A actions, action repeat, `max_steps` limit."""

        def __init__(self, env, frame_fn, action_fn, action_dim, action_repeat, max_steps):
            super().__init__(env)
            self.observation_space = gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)
            self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
            self._frame_fn, self._action_fn = frame_fn, action_fn
            self._repeat, self._max_steps = action_repeat, max_steps
            self._t = 0
            self.last_frame = np.zeros((64, 64, 3), np.uint8)

        def reset(self, *, seed=None, options=None):
            """Starts an episode: (frame uint8 [64, 64, 3], info)."""
            obs, info = self.env.reset(seed=seed, options=options)
            self._t = 0
            self.last_frame = self._frame_fn(obs)
            return self.last_frame, info

        def step(self, action):
            """action f32 [A] in [-1, 1] -> (frame, summed reward, terminated, truncated, info)."""
            env_action = self._action_fn(np.clip(np.asarray(action, np.float32), -1.0, 1.0))
            reward, terminated, truncated, info = 0.0, False, False, {}
            for _ in range(self._repeat):
                obs, r, terminated, truncated, info = self.env.step(env_action)
                reward += float(r)
                if terminated or truncated:
                    break
            self._t += 1
            truncated = not terminated and (truncated or self._t >= self._max_steps)
            self.last_frame = self._frame_fn(obs)
            return self.last_frame, reward, bool(terminated), bool(truncated), info

    return PixelWrapper


class PixelHostEnv:
    """`HostEnv` over a `PixelWrapper` gymnasium env (spec keeps the real action repeat)."""

    def __init__(self, env: Any, spec: EnvSpec, seed: int | None = None):
        self.env, self.spec = env, spec
        self._next_seed = seed
        self._running = False

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode (`seed`, or the constructor's on the first call): (frame, info)."""
        if seed is None:
            seed, self._next_seed = self._next_seed, None
        obs, info = self.env.reset(seed=seed)
        self._running = True
        return obs, dict(info)

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """action [A] in [-1, 1] -> (frame uint8 [64, 64, 3], reward, terminated, truncated,
        info)."""
        if not self._running:
            raise RuntimeError("call reset() before step() (no episode running)")
        obs, reward, terminated, truncated, info = self.env.step(
            clip_action(action, self.spec.action_dim)
        )
        self._running = not (terminated or truncated)
        return obs, float(reward), terminated, truncated, dict(info)

    def render(self) -> np.ndarray:
        """The current frame, uint8 [64, 64, 3]."""
        return self.env.last_frame

    def close(self) -> None:
        """Closes the env."""
        self.env.close()


def host_factory(
    name: str, make_gym_fn: Callable[..., Any], action_dim: int, defaults: dict[str, Any]
) -> Callable[..., PixelHostEnv]:
    """`make(seed=0, **options) -> HostEnv` for a `make_gym`-style factory."""

    def make(seed: int = 0, **options: Any) -> PixelHostEnv:
        """The task as a `HostEnv` (options: action_repeat, episode_length)."""
        opts = check_options(name, options, defaults)
        env = make_gym_fn(**opts)
        spec = EnvSpec(name, (64, 64, 3), action_dim, opts["action_repeat"], opts["episode_length"])
        return PixelHostEnv(env, spec, seed)

    return make


def pixel_host(make_gym_fn: Callable[..., Any], name: str, seed: int = 0, **options: Any) -> Any:
    """`HostEnv` over ``make_gym_fn(**options)``, a `PixelWrapper` env (spec from its spaces).

    The ``make_fn(name, seed=, **options)`` of `jaxplanet.envs.vector.WorkerEnvs` for a
    `make_gym`-style factory: bind it with ``functools.partial(pixel_host, make_gym_fn)``.
    """
    env = make_gym_fn(**options)
    repeat = int(options.get("action_repeat", env.get_wrapper_attr("_repeat")))
    length = int(options.get("episode_length", env.get_wrapper_attr("_max_steps") * repeat))
    spec = EnvSpec(name, (64, 64, 3), int(env.action_space.shape[0]), repeat, length)
    return PixelHostEnv(env, spec, seed)

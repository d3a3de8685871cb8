"""Adapter from any gymnasium environment to the pixel `HostEnv` API (e.g. CarRacing for World
Models, Ha & Schmidhuber 2018).

`GymnasiumEnv` takes an env created with `render_mode="rgb_array"`, observes the frames of
`env.render()` area-resized to size x size (numpy only), rescales actions in [-1, 1]^A to the
env's Box action space, applies action repeat (reward summed) and keeps gymnasium's
`terminated`/`truncated` split. gymnasium itself is optional (`pip install jaxplanet[worldmodels]`)
and only imported by `make_gymnasium`; the adapter works with any object following the API.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from jaxplanet.envs.base import EnvSpec, check_episode, clip_action, rescale_action

DEFAULT_EPISODE_LENGTH = 1000

__all__ = ["DEFAULT_EPISODE_LENGTH", "OPTIONS", "GymnasiumEnv", "make_gymnasium", "resize_area"]


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
    try:
        import gymnasium
    except ImportError as e:
        raise ImportError(
            "gymnasium is needed for 'gym:' environments: pip install 'jaxplanet[worldmodels]'"
        ) from e
    env_kwargs = dict(options.pop("env_kwargs", None) or {})
    env = gymnasium.make(env_id, render_mode="rgb_array", **env_kwargs)
    return GymnasiumEnv(env, seed=seed, **options)

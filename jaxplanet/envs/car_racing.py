"""CarRacing-v3 (gymnasium, Box2D) at 64x64 for World Models (Ha & Schmidhuber 2018, Sec. 3).

Frames: gymnasium's 96x96x3 state pixels with the dashboard (bottom 12 rows) cropped off, as the
authors do (`obs[0:84]`), area-resized to 64x64 uint8. Actions: C's tanh outputs in [-1, 1]^3
mapped as in the authors' code: steer = a0, gas = (a1 + 1) / 2, brake = clip(a2, 0, 1).

Two forms of the same task:
* `make_gym(...)`: a `gymnasium.Env` (64x64 observations, Box [-1, 1] actions, action repeat
  and the episode limit inside), what `gymnasium.vector.AsyncVectorEnv` runs in worker processes;
* `make(seed, ...)`: the `HostEnv` registered as ``car_racing`` in `jaxplanet.envs`.

gymnasium[box2d] is optional: it ships with the `worldmodels` extra and is imported only inside
the factories (`jaxplanet.envs.optional`). The gymnasium plumbing (`PixelWrapper`, the `HostEnv`
over it) is `jaxplanet.envs.gym`'s; running episodes in worker processes is
`jaxplanet.envs.vector.vector_episodes`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxplanet.envs.base import check_episode
from jaxplanet.envs.gym import host_factory, pixel_wrapper_class, resize_area
from jaxplanet.envs.optional import require

DEFAULTS = {"action_repeat": 1, "episode_length": 1000}

__all__ = ["DEFAULTS", "car_racing_action", "car_racing_frame", "make", "make_gym"]


def car_racing_action(a: np.ndarray) -> np.ndarray:
    """[-1, 1]^3 -> (steer, gas, brake) as in the authors' CarRacing controller (float32)."""
    a = np.asarray(a, np.float32)
    return np.array([a[0], (a[1] + 1.0) / 2.0, np.clip(a[2], 0.0, 1.0)], np.float32)


def car_racing_frame(obs: np.ndarray) -> np.ndarray:
    """96x96x3 state pixels -> uint8 [64, 64, 3] (dashboard cropped, area resize)."""
    return resize_area(np.asarray(obs)[:84], 64)


def make_gym(action_repeat: int = 1, episode_length: int = 1000) -> Any:
    """CarRacing-v3 as a `gymnasium.Env` with 64x64 frames and [-1, 1]^3 actions."""
    check_episode(action_repeat, episode_length)
    require("Box2D", "CarRacing (gymnasium[box2d])")
    gymnasium = require("gymnasium", "CarRacing")
    env = gymnasium.make("CarRacing-v3", max_episode_steps=episode_length)
    return pixel_wrapper_class()(
        env, car_racing_frame, car_racing_action, 3, action_repeat, episode_length // action_repeat
    )


make = host_factory("car_racing", make_gym, 3, DEFAULTS)
make.__doc__ = "CarRacing-v3 as a `HostEnv` (64x64 frames, [-1, 1]^3 actions)."

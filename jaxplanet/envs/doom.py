"""VizDoom take_cover at 64x64 for World Models (Ha & Schmidhuber 2018, Sec. 4).

`import vizdoom.gymnasium_wrapper` registers ``VizdoomTakeCover-v1``: observations are a dict
whose ``screen`` is 240x320x3, actions Discrete(3) = (nothing, MOVE_RIGHT, MOVE_LEFT), +1 reward
per frame alive. Here frames are area-resized to 64x64 uint8 and the action is C's single
output in [-1, 1], mapped as in the authors' code: left below -1/3, right above 1/3, else stay
(`controllers.take_cover_action`; the same value M reads). Frame skip is vizdoom's own
(`action_repeat` frames per agent step); episodes are cut at `episode_length` frames (the
authors' 2100).

Two forms: `make_gym(...)` (a `gymnasium.Env` for vector envs) and `make(seed, ...)`, the
`HostEnv` registered as ``doom_take_cover``. vizdoom is optional (`worldmodels` extra) and
imported only inside the factories (`jaxplanet.envs.optional`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jaxplanet.envs.base import check_episode
from jaxplanet.envs.gym import host_factory, pixel_wrapper_class, resize_area
from jaxplanet.envs.optional import require

DEFAULTS = {"action_repeat": 1, "episode_length": 2100}
THRESHOLD = 1.0 / 3.0
_NOOP, _RIGHT, _LEFT = 0, 1, 2  # VizdoomTakeCover-v1's button_map order

__all__ = ["DEFAULTS", "THRESHOLD", "doom_frame", "make", "make_gym", "take_cover_index"]


def take_cover_index(a: np.ndarray) -> int:
    """[-1, 1]^1 -> Discrete(3) index: left below -1/3, right above 1/3, else nothing."""
    value = float(np.asarray(a).reshape(-1)[0])
    if value > THRESHOLD:
        return _RIGHT
    if value < -THRESHOLD:
        return _LEFT
    return _NOOP


def doom_frame(obs: dict[str, np.ndarray]) -> np.ndarray:
    """{"screen": uint8 [240, 320, 3], ...} -> uint8 [64, 64, 3]."""
    return resize_area(obs["screen"], 64)


def make_gym(action_repeat: int = 1, episode_length: int = 2100) -> Any:
    """VizdoomTakeCover-v1 as a `gymnasium.Env` with 64x64 frames and a [-1, 1]^1 action."""
    check_episode(action_repeat, episode_length)
    gymnasium = require("gymnasium", "VizDoom take_cover")
    require("vizdoom.gymnasium_wrapper", "VizDoom take_cover")
    env = gymnasium.make("VizdoomTakeCover-v1", frame_skip=action_repeat, max_episode_steps=None)
    return pixel_wrapper_class()(
        env, doom_frame, take_cover_index, 1, 1, episode_length // action_repeat
    )


make = host_factory("doom_take_cover", make_gym, 1, DEFAULTS)
make.__doc__ = "VizDoom take_cover as a `HostEnv` (64x64 frames, one action in [-1, 1])."

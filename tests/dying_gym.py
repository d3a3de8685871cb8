"""A cheap gymnasium task for worker-process tests whose worker can be made to die.

Kept out of the test modules so that a spawned worker imports only this (and gymnasium), not a
test module's imports.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
from pathlib import Path
from typing import Any

import numpy as np


def make_gym(
    action_repeat: int = 1,
    episode_length: int = 20,
    die_seeds: tuple[int, ...] = (),
    die_step: int = 0,
    marker: str | None = None,
) -> Any:
    """A point moved by 2-D actions, drawn as a flat colour (a `PixelWrapper` env).

    In a worker process, the episode of a seed in ``die_seeds`` kills its worker with SIGSEGV
    at env step ``die_step`` (0: in `reset`): once if ``marker`` names a file (created then),
    every time if it is None.
    """
    import gymnasium

    from jaxplanet.envs.gym import pixel_wrapper_class

    def maybe_die(seed: int | None, step: int) -> None:
        if seed not in die_seeds or step != die_step or multiprocessing.parent_process() is None:
            return
        if marker is not None:
            if Path(marker).exists():
                return
            Path(marker).touch()
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # no core file
        os.kill(os.getpid(), signal.SIGSEGV)

    class Point(gymnasium.Env):
        observation_space = gymnasium.spaces.Box(0, 255, (64, 64, 3), np.uint8)
        action_space = gymnasium.spaces.Box(-1.0, 1.0, (2,), np.float32)

        def reset(self, *, seed: int | None = None, options: Any = None):
            super().reset(seed=seed)
            self.seed_, self.t = seed, 0
            maybe_die(seed, 0)
            self.x = self.np_random.uniform(-1.0, 1.0, 2)
            return self._frame(), {}

        def step(self, action: np.ndarray):
            self.t += 1
            maybe_die(self.seed_, self.t)
            self.x = np.clip(self.x + 0.2 * np.asarray(action), -1.0, 1.0)
            return self._frame(), float(-np.abs(self.x).sum()), False, False, {}

        def _frame(self) -> np.ndarray:
            frame = np.zeros((64, 64, 3), np.uint8)
            frame[..., :2] = np.round(127.5 * (self.x + 1.0)).astype(np.uint8)
            return frame

    steps = episode_length // action_repeat
    return pixel_wrapper_class()(Point(), lambda o: o, lambda a: a, 2, action_repeat, steps)

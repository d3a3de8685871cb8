"""DeepMind Control Suite tasks from pixels, with the PlaNet (Hafner et al., ICML 2019) settings.

Tasks are named `domain_task` (e.g. "walker_walk", "ball_in_cup_catch"); `TASKS` maps every name
to its unambiguous (domain, task) pair without importing dm_control. Observations are 64x64x3
uint8 frames from the suite camera (PlaNet: camera 0, quadruped camera 2), actions in [-1, 1]^A
are rescaled to the task's action_spec bounds, the action repeat defaults to the paper's value
per domain, and episodes last 1000 env steps.

Headless rendering: `MUJOCO_GL` defaults to "egl" before dm_control is imported; if a GL
context cannot be created, OSMesa is tried; `gl_backend()` reports the backend in use.
dm_control is imported lazily (only when a task is made), so pure-JAX tasks need no GL.

Determinism: physics and initial states follow `task_kwargs={'random': seed}`; `reset(seed)`
re-creates that RNG. Frames can differ in the last bits between GL drivers/backends.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from jaxplanet.envs import reacher_solar
from jaxplanet.envs.base import (
    EnvSpec,
    check_episode,
    check_options,
    clip_action,
    rescale_action,
)

__all__ = [
    "ACTION_REPEAT",
    "DmcEnv",
    "TASKS",
    "VARIANTS",
    "choose_backend",
    "default_options",
    "gl_backend",
    "make",
    "split_name",
]

log = logging.getLogger(__name__)

# Tasks of dm_control 1.0.50 `suite.ALL_TASKS` by domain, in its order (checked by a test).
_SUITE: dict[str, tuple[str, ...]] = {
    "acrobot": ("swingup", "swingup_sparse"),
    "ball_in_cup": ("catch",),
    "cartpole": (
        "balance",
        "balance_sparse",
        "swingup",
        "swingup_sparse",
        "two_poles",
        "three_poles",
    ),
    "cheetah": ("run",),
    "dog": ("stand", "walk", "trot", "run", "fetch"),
    "finger": ("spin", "turn_easy", "turn_hard"),
    "fish": ("upright", "swim"),
    "hopper": ("stand", "hop"),
    "humanoid": ("stand", "walk", "run", "run_pure_state"),
    "humanoid_CMU": ("stand", "walk", "run"),
    "lqr": ("lqr_2_1", "lqr_6_2"),
    "manipulator": ("bring_ball", "bring_peg", "insert_ball", "insert_peg"),
    "pendulum": ("swingup",),
    "point_mass": ("easy", "hard"),
    "quadruped": ("walk", "run", "escape", "fetch"),
    "reacher": ("easy", "hard"),
    "stacker": ("stack_2", "stack_4"),
    "swimmer": ("swimmer6", "swimmer15"),
    "walker": ("stand", "walk", "run"),
}
_ALL_TASKS: tuple[tuple[str, str], ...] = tuple((d, t) for d, ts in _SUITE.items() for t in ts)

#: `domain_task` name -> (domain, task); names are unique (a test checks it).
TASKS: dict[str, tuple[str, str]] = {f"{d}_{t}": (d, t) for d, t in _ALL_TASKS}

#: PlaNet paper action repeats; every other domain uses `DEFAULT_ACTION_REPEAT`.
ACTION_REPEAT = {
    "cartpole": 8,
    "reacher": 4,
    "cheetah": 4,
    "finger": 2,
    "ball_in_cup": 4,
    "walker": 2,
}
DEFAULT_ACTION_REPEAT = 2
#: Camera per domain as in the PlaNet code; others use camera 0.
CAMERA = {"quadruped": 2}
EPISODE_LENGTH = 1000

_FIX = (
    "Headless MuJoCo rendering needs EGL (apt-get install libegl1 libgl1-mesa-dri; "
    "MUJOCO_GL=egl) or OSMesa (apt-get install libosmesa6; MUJOCO_GL=osmesa). "
    "Set MUJOCO_GL before the first dm_control import."
)
_backend: str | None = None


@contextlib.contextmanager
def _absl_quiet() -> Iterator[None]:
    """Silences absl's WARNING-level model-compiler notes while a suite task loads."""
    logger = logging.getLogger("absl")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class RenderingError(RuntimeError):
    """No MuJoCo GL backend can render here; the message names the fix."""


def _probe_current() -> None:
    """Imports dm_control's renderer for the current MUJOCO_GL and opens a small GL context."""
    from dm_control import mujoco as dm_mujoco

    # A real frame: some backends (glfw without a display) open a "context" that only fails
    # when MuJoCo first renders into it.
    physics = dm_mujoco.Physics.from_xml_string("<mujoco><worldbody/></mujoco>")
    physics.render(height=8, width=8)
    physics.free()


def _purge_gl_modules() -> None:
    """Forgets dm_control/PyOpenGL modules so that another backend can be imported."""
    for name in list(sys.modules):
        if name.split(".")[0] in ("dm_control", "OpenGL"):
            del sys.modules[name]
    os.environ.pop("PYOPENGL_PLATFORM", None)


def choose_backend(
    requested: str,
    probe: Callable[[str], None],
    can_switch: bool = True,
) -> str:
    """Returns the first backend of (requested, "osmesa" if requested is "egl") that `probe`s.

    Args:
      requested: the backend asked for (MUJOCO_GL).
      probe: `probe(backend)` raises when `backend` cannot render.
      can_switch: False when dm_control is already imported (its backend is then fixed).

    Raises:
      RenderingError: no backend works; the message names the fix.
    """
    candidates = [requested]
    if can_switch and requested == "egl":  # glfw cannot be left once loaded (MuJoCo aborts)
        candidates.append("osmesa")
    errors = []
    for backend in candidates:
        try:
            probe(backend)
        except Exception as e:  # any GL failure means "try the next one"
            errors.append(f"{backend}: {type(e).__name__}: {e}")
            log.warning("MuJoCo GL backend %r failed: %s", backend, e)
            continue
        return backend
    raise RenderingError("No MuJoCo rendering backend works (" + "; ".join(errors) + "). " + _FIX)


def gl_backend() -> str:
    """Selects (once) and returns the working MuJoCo GL backend ("egl", "osmesa", "glfw").

    Raises:
      RuntimeError: neither the requested backend nor OSMesa can create a GL context.
    """
    global _backend
    if _backend is not None:
        return _backend
    requested = os.environ.setdefault("MUJOCO_GL", "egl")
    if requested == "glfw" and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        raise RenderingError(f"MUJOCO_GL=glfw needs a display, and DISPLAY is not set. {_FIX}")
    already = "dm_control._render" in sys.modules

    def probe(backend: str) -> None:
        if backend != os.environ.get("MUJOCO_GL"):
            _purge_gl_modules()
            os.environ["MUJOCO_GL"] = backend
        _probe_current()

    _backend = choose_backend(requested, probe, can_switch=not already)
    log.info("MuJoCo rendering backend: %s", _backend)
    return _backend


#: Tasks of other papers on a suite domain: name -> (domain, loader(seed, **task options) -> a
#: dm_control environment without time limit, their default options (the loader's included)).
#: `reacher_solar`: the SOLAR paper's reacher (`jaxplanet.envs.reacher_solar`).
VARIANTS: dict[str, tuple[str, Callable[..., Any], dict[str, Any]]] = {
    "reacher_solar": ("reacher", reacher_solar.load, reacher_solar.DEFAULTS),
}


def split_name(name: str) -> tuple[str, str]:
    """'ball_in_cup_catch' -> ('ball_in_cup', 'catch'); a variant -> (domain, its name).
    Raises KeyError for unknown names."""
    if name in VARIANTS:
        return VARIANTS[name][0], name
    return TASKS[name]


def default_options(name: str) -> dict[str, Any]:
    """PlaNet defaults for a task: action_repeat, episode_length, camera_id, size."""
    domain, _ = split_name(name)
    return {
        "action_repeat": ACTION_REPEAT.get(domain, DEFAULT_ACTION_REPEAT),
        "episode_length": EPISODE_LENGTH,
        "camera_id": CAMERA.get(domain, 0),
        "size": 64,
        **(VARIANTS[name][2] if name in VARIANTS else {}),
    }


class DmcEnv:
    """A dm_control suite task as a `HostEnv` with pixel observations.

    Args:
      name: `domain_task`, a key of `TASKS`.
      seed: seed of the task RNG (`task_kwargs={'random': seed}`).
      action_repeat: physics control steps per agent step (PlaNet default per domain).
      episode_length: env steps per episode (1000); `truncated` after
        `episode_length // action_repeat` agent steps.
      camera_id: suite camera to render.
      size: frame height and width (64).
      **task_options: options of a `VARIANTS` task's loader (e.g. reacher_solar's
        ``random_start``, ``random_target``).
    """

    def __init__(
        self,
        name: str,
        seed: int = 0,
        *,
        action_repeat: int = DEFAULT_ACTION_REPEAT,
        episode_length: int = EPISODE_LENGTH,
        camera_id: int = 0,
        size: int = 64,
        **task_options: Any,
    ):
        check_episode(action_repeat, episode_length)
        if task_options and name not in VARIANTS:
            raise TypeError(f"unknown option(s) {sorted(task_options)} for environment {name!r}")
        domain, task = split_name(name)
        self.backend = gl_backend()
        from dm_control import suite

        self._seed = int(seed)
        # Our own step counter decides truncation; dm_control's time limit is switched off.
        with _absl_quiet():  # e.g. cheetah's model uses MuJoCo's deprecated 'settotalmass'
            if name in VARIANTS:
                self._env = VARIANTS[name][1](self._seed, **task_options)
            else:
                self._env = suite.load(
                    domain, task, task_kwargs={"random": self._seed, "time_limit": float("inf")}
                )
        spec = self._env.action_spec()
        self._low = np.broadcast_to(spec.minimum, spec.shape).astype(np.float64)
        self._high = np.broadcast_to(spec.maximum, spec.shape).astype(np.float64)
        self._camera_id = int(camera_id)
        self._size = int(size)
        self.spec = EnvSpec(
            name,
            (self._size, self._size, 3),
            int(spec.shape[0]),
            int(action_repeat),
            int(episode_length),
        )
        self._t = 0
        self._started = False
        self._done = True

    @property
    def physics(self) -> Any:
        """The dm_control `Physics` (for inspection)."""
        return self._env.physics

    def render(self) -> np.ndarray:
        """Current frame, uint8 [size, size, 3]."""
        frame = self._env.physics.render(self._size, self._size, camera_id=self._camera_id)
        return np.ascontiguousarray(frame, dtype=np.uint8)

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Starts an episode; an int `seed` re-creates the task RNG from that seed."""
        if seed is not None:
            self._seed = int(seed)
            self._env.task._random = np.random.RandomState(self._seed)
        self._env.reset()
        self._t = 0
        self._started = True
        self._done = False
        return self.render(), {"seed": self._seed}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """Applies the action `action_repeat` times; reward summed over the repeats."""
        if not self._started:
            raise RuntimeError("call reset() before step()")
        if self._done:
            raise RuntimeError("episode is over; call reset() before step()")
        a = rescale_action(clip_action(action, self.spec.action_dim), self._low, self._high)
        reward, terminated, ts = 0.0, False, None
        for _ in range(self.spec.action_repeat):
            ts = self._env.step(a)
            reward += float(ts.reward or 0.0)
            if ts.last():
                terminated = ts.discount is not None and float(ts.discount) == 0.0
                break
        self._t += 1
        truncated = not terminated and (self._t >= self.spec.agent_steps or ts.last())
        self._done = terminated or truncated
        info = {"discount": float(ts.discount), "env_steps": self._t * self.spec.action_repeat}
        return self.render(), reward, terminated, truncated, info

    def close(self) -> None:
        """Frees the physics and its GL context."""
        self._env.close()


def make(name: str, seed: int = 0, **options: Any) -> DmcEnv:
    """Builds a dm_control task with PlaNet defaults overridden by `options`.

    Raises:
      TypeError: an option other than action_repeat, episode_length, camera_id, size (and a
        variant's own, e.g. reacher_solar's random_start, random_target).
    """
    opts = check_options(name, options, default_options(name))
    return DmcEnv(name, seed, **opts)

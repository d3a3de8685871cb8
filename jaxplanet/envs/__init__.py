"""Environments: pure-JAX pixel tasks, dm_control suite from pixels, gymnasium adapter.

    env = jaxplanet.envs.make("walker_walk", seed=0)          # HostEnv (gymnasium-style)
    obs, info = env.reset()                                    # uint8 [64, 64, 3]
    obs, reward, terminated, truncated, info = env.step(a)     # a: f32 [A] in [-1, 1]

    jenv = jaxplanet.envs.make_jax("point_reach")              # JaxEnv of pure functions
    state, obs = jax.vmap(jenv.reset)(keys)                    # batch of episodes

Names: `names()` lists the pure-JAX tasks, every dm_control suite task as `domain_task` and
the suite-domain tasks of other papers (`reacher_solar`: SOLAR's reacher);
"gym:<id>" wraps `gymnasium.make(id, render_mode="rgb_array")` (optional dependency).
Bring your own environment: any object with the `HostEnv` methods works with the agents, and
`GymnasiumEnv(env)` adapts any gymnasium env that renders rgb arrays.

Modules: `base` (`EnvSpec`, `HostEnv`, `JaxEnv`, the pure-JAX host adapter); the tasks
`point_reach`, `nav2d` (pure JAX), `dmc` (dm_control), `car_racing`, `doom` (World Models');
`gym` (the gymnasium pixel adapter they share); `vector` (N envs stepped together: in this
process, vmapped, or in worker processes); `optional` (the optional packages and their install
command).
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable
from typing import Any

from jaxplanet.envs import car_racing, doom, nav2d, point_reach
from jaxplanet.envs.base import (
    EnvSpec,
    HostEnv,
    JaxEnv,
    JaxHostAdapter,
    UnknownEnvError,
    check_options,
    clip_action,
)
from jaxplanet.envs.dmc import TASKS as DMC_TASKS
from jaxplanet.envs.dmc import VARIANTS as DMC_VARIANTS
from jaxplanet.envs.dmc import gl_backend
from jaxplanet.envs.gym import GymnasiumEnv

__all__ = [
    "EnvSpec",
    "GymnasiumEnv",
    "HostEnv",
    "JaxEnv",
    "JaxHostAdapter",
    "UnknownEnvError",
    "clip_action",
    "gl_backend",
    "make",
    "make_jax",
    "names",
    "options",
    "point_reach",
]

GYM_PREFIX = "gym:"

#: Pure-JAX tasks: name -> (factory(**options) -> JaxEnv, default options).
JAX_ENVS: dict[str, tuple[Callable[..., JaxEnv], dict[str, Any]]] = {
    "point_reach": (point_reach.make, point_reach.DEFAULTS),
    "point_reach_uniform": (
        functools.partial(point_reach.make, targets="uniform"),
        point_reach.DEFAULTS,
    ),
    "nav2d": (nav2d.make, nav2d.DEFAULTS),
}


#: Host tasks of World Models (their optional packages are imported by the factory):
#: name -> (factory(seed=, **options) -> HostEnv, default options).
HOST_ENVS: dict[str, tuple[Callable[..., HostEnv], dict[str, Any]]] = {
    "car_racing": (car_racing.make, car_racing.DEFAULTS),
    "doom_take_cover": (doom.make, doom.DEFAULTS),
}


def names() -> list[str]:
    """All registered names: pure-JAX tasks, dm_control `domain_task` names, World Models hosts."""
    return list(JAX_ENVS) + list(DMC_TASKS) + list(DMC_VARIANTS) + list(HOST_ENVS)


def options(name: str) -> dict[str, Any]:
    """A registered task's options and their defaults (what `make` accepts besides ``seed``).

    Raises:
      UnknownEnvError: an unknown name (gymnasium ids have no fixed option list).
    """
    if name in JAX_ENVS:
        return dict(JAX_ENVS[name][1])
    if name in HOST_ENVS:
        return dict(HOST_ENVS[name][1])
    if name in DMC_TASKS or name in DMC_VARIANTS:
        from jaxplanet.envs import dmc

        return dmc.default_options(name)
    raise _unknown(name, names())


def _unknown(name: str, valid: list[str]) -> UnknownEnvError:
    close = difflib.get_close_matches(name, valid, n=3, cutoff=0.6)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UnknownEnvError(
        f"unknown environment {name!r}.{hint} Valid names: {', '.join(valid)} "
        f"(or '{GYM_PREFIX}<gymnasium id>')."
    )


def make_jax(name: str, **options: Any) -> JaxEnv:
    """Builds a pure-JAX task (jittable, vmappable functions).

    Args:
      name: a pure-JAX task name (see `names()`), e.g. "point_reach".
      **options: task options, e.g. action_repeat, episode_length (env steps).

    Raises:
      UnknownEnvError: `name` is not a pure-JAX task.
      TypeError: an unknown option.
    """
    if name not in JAX_ENVS:
        raise _unknown(name, list(JAX_ENVS))
    factory, defaults = JAX_ENVS[name]
    return factory(**check_options(name, options, defaults))


def make(name: str, *, seed: int = 0, **options: Any) -> HostEnv:
    """Builds a gymnasium-style host environment.

    Args:
      name: a name from `names()` or "gym:<gymnasium id>".
      seed: seed of the first `reset()`; later resets without a seed continue its stream.
      **options: task options (action_repeat, episode_length for all tasks; camera_id, size
        for dm_control; size, env_kwargs for gymnasium).

    Returns:
      `HostEnv` with `spec`, `reset`, `step`, `render`, `close`.

    Raises:
      UnknownEnvError: unknown name (the message lists valid names and close matches).
      TypeError: an unknown option.
    """
    if name in JAX_ENVS:
        return JaxHostAdapter(make_jax(name, **options), seed=seed)
    if name in HOST_ENVS:
        return HOST_ENVS[name][0](seed=seed, **options)
    if name in DMC_TASKS or name in DMC_VARIANTS:
        from jaxplanet.envs import dmc

        return dmc.make(name, seed=seed, **options)
    if name.startswith(GYM_PREFIX):
        from jaxplanet.envs.gym import make_gymnasium

        return make_gymnasium(name[len(GYM_PREFIX) :], seed=seed, **options)
    raise _unknown(name, names())

"""CarRacing-v3 (gymnasium, Box2D) at 64x64 for World Models (Ha & Schmidhuber 2018, Sec. 3).

Frames: gymnasium's 96x96x3 state pixels with the dashboard (bottom 12 rows) cropped off, as the
authors do (`obs[0:84]`), area-resized to 64x64 uint8. Actions: C's tanh outputs in [-1, 1]^3
mapped as in the authors' code: steer = a0, gas = (a1 + 1) / 2, brake = clip(a2, 0, 1).

Two forms of the same task:
* `make_gym(...)`: a `gymnasium.Env` (64x64 observations, Box [-1, 1] actions, action repeat
  and the episode limit inside), what `gymnasium.vector.AsyncVectorEnv` runs in worker processes;
* `make(seed, ...)`: the `HostEnv` registered as ``car_racing`` in `jaxplanet.envs`.

gymnasium[box2d] is optional: it ships with the `worldmodels` extra and is imported only here,
inside the factories (`pip install 'jaxplanet[worldmodels]'`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from jaxplanet.envs.base import EnvSpec, check_episode, check_options, clip_action
from jaxplanet.envs.gym import resize_area

DEFAULTS = {"action_repeat": 1, "episode_length": 1000}
EXTRA = "pip install 'jaxplanet[worldmodels]'"

log = logging.getLogger(__name__)

__all__ = [
    "DEFAULTS",
    "EXTRA",
    "WORKER_RETRIES",
    "PixelHostEnv",
    "car_racing_action",
    "car_racing_frame",
    "host_factory",
    "make",
    "make_gym",
    "pixel_host",
    "pixel_wrapper_class",
    "require",
    "single_threaded_blas",
    "vector_episodes",
]


def require(module: str, what: str) -> Any:
    """Imports an optional package or raises ImportError naming the `worldmodels` extra."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{what} needs the optional package {module!r}: {EXTRA}") from err


def car_racing_action(a: np.ndarray) -> np.ndarray:
    """[-1, 1]^3 -> (steer, gas, brake) as in the authors' CarRacing controller (float32)."""
    a = np.asarray(a, np.float32)
    return np.array([a[0], (a[1] + 1.0) / 2.0, np.clip(a[2], 0.0, 1.0)], np.float32)


def car_racing_frame(obs: np.ndarray) -> np.ndarray:
    """96x96x3 state pixels -> uint8 [64, 64, 3] (dashboard cropped, area resize)."""
    return resize_area(np.asarray(obs)[:84], 64)


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


def make_gym(action_repeat: int = 1, episode_length: int = 1000) -> Any:
    """CarRacing-v3 as a `gymnasium.Env` with 64x64 frames and [-1, 1]^3 actions."""
    check_episode(action_repeat, episode_length)
    require("Box2D", "CarRacing (gymnasium[box2d])")
    gymnasium = require("gymnasium", "CarRacing")
    env = gymnasium.make("CarRacing-v3", max_episode_steps=episode_length)
    return pixel_wrapper_class()(
        env, car_racing_frame, car_racing_action, 3, action_repeat, episode_length // action_repeat
    )


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


make = host_factory("car_racing", make_gym, 3, DEFAULTS)
make.__doc__ = "CarRacing-v3 as a `HostEnv` (64x64 frames, [-1, 1]^3 actions)."


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


#: Times the workers are restarted for one episode whose worker died before giving up.
WORKER_RETRIES = 3


def vector_episodes(
    make_gym_fn: Callable[..., Any],
    options: dict[str, Any],
    seeds: list[int],
    policy: Any,
    workers: int,
    record: bool = False,
    progress: bool = True,
    desc: str = "episodes",
    name: str | None = None,
) -> list[dict[str, Any]]:
    """Runs one episode per seed in `workers` processes (`jaxplanet.envs.vector.WorkerEnvs`,
    i.e. `gymnasium.vector.AsyncVectorEnv`).

    Episodes run in waves of `workers`; a finished env idles (it is no longer stepped) until
    its wave ends. An error raised in a worker raises `jaxplanet.envs.vector.WorkerEnvError`.
    A worker that dies (a signal such as SIGSEGV, any exit) is survived: the workers are
    started again and the wave is run again with the same seeds (``policy.start`` begins it
    again), so the episodes equal those of a run without the death; after `WORKER_RETRIES`
    restarts for one episode, `jaxplanet.envs.vector.WorkerDiedError` names its seed, the env
    and the exit codes.

    Args:
      make_gym_fn: picklable `make_gym(**options)` of a `PixelWrapper` env.
      options: its options (action_repeat, episode_length).
      seeds: one reset seed per episode.
      policy: object with `start(episode_ids list[int])` (called per wave, ids padded with -1 for
        idle slots; it must begin the wave afresh, also when called again for a wave run
        again) and `act(obs uint8 [W, 64, 64, 3]) -> actions f32 [W, A]`.
      workers: W, processes.
      record: keep frames, actions and rewards (the shared record convention of
        `jaxplanet.agents.episodes`), else only returns and lengths.
      progress: show a progress bar over episodes.
      desc: the progress bar's and the errors' label.
      name: the task's name in messages (default: the factory's module and name).

    Returns:
      One dict per seed: `return` (sum of the f32 rewards), `length`, `terminated`, and with
      `record` the arrays `obs` uint8 [T + 1, 64, 64, 3], `action` f32 [T + 1, A], `reward` f32
      [T + 1], `is_first`.
    """
    require("gymnasium", "vector rollouts")
    from tqdm.auto import tqdm

    from jaxplanet.envs.vector import WorkerDiedError, WorkerEnvs, exit_status

    workers = max(1, min(workers, len(seeds)))
    module, qualname = (getattr(make_gym_fn, k, "") for k in ("__module__", "__qualname__"))
    name = name or f"{module}.{qualname}"
    make_fn = functools.partial(pixel_host, make_gym_fn)
    vec: WorkerEnvs | None = None
    out: list[dict[str, Any]] = []
    bar = tqdm(total=len(seeds), desc=desc, unit="episode", disable=not progress)
    try:
        for start in range(0, len(seeds), workers):
            ids = list(range(start, min(len(seeds), start + workers)))
            pad = [seeds[ids[-1]] + 1 + j for j in range(workers - len(ids))]  # idle envs
            wave = [seeds[i] for i in ids] + pad
            deaths: dict[int, list[int]] = {}  # env slot -> exit codes of its dead workers
            while True:
                try:
                    if vec is None:
                        vec = WorkerEnvs(name, workers, seeds[0], make_fn=make_fn, **options)
                    out += _wave(vec, wave, ids, policy, record)
                    break
                except WorkerDiedError as err:
                    vec = None  # closed by WorkerEnvs
                    for j, code in err.exitcodes.items():
                        deaths.setdefault(j, []).append(code)
                        who = f"episode {ids[j]}" if j < len(ids) else "an idle env"
                        who += f" (seed {wave[j]})"
                        codes = ", ".join(exit_status(c) for c in deaths[j])
                        if len(deaths[j]) > WORKER_RETRIES:
                            raise WorkerDiedError(
                                f"{desc}: the {name!r} worker running {who} died "
                                f"{len(deaths[j])} times ({codes}); gave up after "
                                f"{WORKER_RETRIES} restarts. Last failure: {err}",
                                err.exitcodes,
                                seed=wave[j],
                            ) from err
                        log.warning(
                            "%s: the %r worker running %s died (%s); restarting the workers "
                            "and running episodes %s again",
                            desc, name, who, codes, ids,
                        )  # fmt: skip
            bar.update(len(ids))
    finally:
        bar.close()
        if vec is not None:
            vec.close()
    return out


def _wave(
    vec: Any, seeds: list[int], ids: list[int], policy: Any, record: bool
) -> list[dict[str, Any]]:
    """One wave of `vector_episodes`: env j plays the episode of ``seeds[j]``; returns the
    episodes of the first ``len(ids)`` envs (the others idle)."""
    obs = vec.reset(seeds)
    policy.start(ids + [-1] * (len(seeds) - len(ids)))
    active = np.arange(len(seeds)) < len(ids)
    eps = [
        {"return": 0.0, "length": 0, "terminated": False, "obs": [o], "action": [], "reward": []}
        for o in obs[: len(ids)]
    ]
    while active.any():
        actions = np.asarray(policy.act(obs), np.float32)
        obs, rewards, terms, truncs = vec.step(actions)
        for j in np.flatnonzero(active):
            ep = eps[j]
            ep["return"] += float(rewards[j])
            ep["length"] += 1
            if record:
                ep["obs"].append(obs[j])
                ep["action"].append(actions[j])
                ep["reward"].append(float(rewards[j]))
            if terms[j] or truncs[j]:
                active[j] = False
                ep["terminated"] = bool(terms[j])
    for ep in eps:
        if record:
            n, dim = ep["length"], vec.spec.action_dim
            ep["obs"] = np.stack(ep["obs"]).astype(np.uint8)
            ep["action"] = np.concatenate([np.zeros((1, dim)), np.stack(ep["action"])])
            ep["action"] = ep["action"].astype(np.float32)
            ep["reward"] = np.asarray([0.0] + ep["reward"], np.float32)
            ep["is_first"] = np.arange(n + 1) == 0
        else:
            for k in ("obs", "action", "reward"):
                del ep[k]
    return eps

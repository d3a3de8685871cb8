"""Batched environments in worker processes: each env built and stepped in its own process.

`WorkerEnvs` drives N `HostEnv`s through `gymnasium.vector.AsyncVectorEnv` (``context="spawn"``),
so that host simulators (dm_control, gymnasium, vizdoom) step in parallel. gymnasium is an
optional dependency (`jaxplanet.envs.optional`). Each worker uses one BLAS thread
(`jaxplanet.envs.gym.single_threaded_blas`) and runs JAX on the CPU (``JAX_PLATFORMS=cpu``).
An error in a worker raises `WorkerEnvError` in the parent naming the env, its seed and the
worker's traceback; a worker that dies outright raises its subclass `WorkerDiedError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import operator
import os
import signal
import time
import traceback
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from jaxplanet.envs.base import EnvSpec, HostEnv
from jaxplanet.envs.gym import single_threaded_blas
from jaxplanet.envs.optional import require
from jaxplanet.envs.vector.base import StepResult, _Batched, _Episode

__all__ = [
    "WorkerDiedError",
    "WorkerEnvError",
    "WorkerEnvs",
    "exit_status",
    "host_gym_env_class",
]

log = logging.getLogger(__name__)


class WorkerEnvError(RuntimeError):
    """An environment failed in its worker process (or the worker died); names the env."""


class WorkerDiedError(WorkerEnvError):
    """A worker process died (killed by a signal such as SIGSEGV, or exited) instead of raising.

    Attributes:
      exitcodes: env index -> its worker's exit code (-N: killed by signal N).
      seed: the episode seed whose worker died, where the raiser knows it (else None).
    """

    def __init__(self, message: str, exitcodes: Mapping[int, int], seed: int | None = None):
        super().__init__(message)
        self.exitcodes, self.seed = dict(exitcodes), seed


def exit_status(code: int) -> str:
    """'exit code 3', or 'exit code -11 (SIGSEGV)' for a process killed by a signal."""
    if code < 0:
        with contextlib.suppress(ValueError):
            return f"exit code {code} ({signal.Signals(-code).name})"
    return f"exit code {code}"


@dataclasses.dataclass(frozen=True)
class _WorkerFactory:
    """Picklable ``env_fn`` of `AsyncVectorEnv`: a lazy `HostGymEnv` (built by its ``build``)."""

    name: str
    seed: int
    index: int
    options: Mapping[str, Any]
    make_fn: Callable[..., HostEnv]
    spec: EnvSpec

    def __call__(self) -> Any:
        return host_gym_env_class()(self)


@functools.lru_cache(maxsize=1)
def host_gym_env_class() -> type:
    """`HostGymEnv(factory)`: a `gymnasium.Env` over a `HostEnv` built inside the worker.

    Observation space Box uint8 ``spec.obs_shape`` (64x64x3), action space Box [-1, 1]^A. The
    `HostEnv` is built by ``build()`` (which returns an error message instead of raising), not
    by the constructor, so that `AsyncVectorEnv`'s space-reading dummy copy in the parent costs
    nothing. ``reset(seed=None)`` (gymnasium's autoreset) keeps the finished episode; errors in
    ``reset``/``step`` are re-raised as `WorkerEnvError` naming the env. Built on first use so
    that gymnasium stays optional.
    """
    gymnasium = require("gymnasium", "worker-process environments")

    class HostGymEnv(gymnasium.Env):
        """A `HostEnv` as a `gymnasium.Env` (see `host_gym_env_class`)."""

        metadata: dict[str, Any] = {"render_modes": []}

        def __init__(self, factory: _WorkerFactory):
            spec = factory.spec
            self.factory = factory
            self.observation_space = gymnasium.spaces.Box(0, 255, spec.obs_shape, np.uint8)
            self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (spec.action_dim,), np.float32)
            self.episode: _Episode | None = None

        def _describe(self, what: str, err: BaseException) -> str:
            f = self.factory
            return (
                f"environment {f.name!r} (env {f.index}, seed {f.seed}) failed in its worker "
                f"process (pid {os.getpid()}) during {what}: {type(err).__name__}: {err}\n"
                f"Worker traceback:\n{''.join(traceback.format_exception(err))}"
            )

        def build(self) -> str | None:
            """Builds the `HostEnv`; returns None, or the error message if that failed."""
            if self.episode is not None:
                return None
            f = self.factory
            try:
                env = f.make_fn(f.name, seed=f.seed, **f.options)
                if env.spec != f.spec:
                    env.close()
                    raise ValueError(f"spec {env.spec} differs from the parent's {f.spec}")
            except Exception as e:
                return self._describe("build", e)
            self.episode = _Episode(env)
            return None

        def reset(self, *, seed: int | None = None, options: Any = None):
            """``reset(seed=int)`` starts an episode; seed None (an autoreset) is a no-op."""
            if self.episode is None:
                error = self.build()
                if error is not None:
                    raise WorkerEnvError(error)
            assert self.episode is not None
            if seed is None:
                if not self.episode.started:
                    raise WorkerEnvError(self._describe("reset", ValueError("no seed given")))
                return self.episode.obs, {}
            try:
                return self.episode.reset(seed), {}
            except Exception as e:
                raise WorkerEnvError(self._describe("reset", e)) from None

        def step(self, action: np.ndarray):
            """action f32 [A] -> (obs, reward, terminated, truncated, {})."""
            if self.episode is None:
                raise WorkerEnvError(self._describe("step", RuntimeError("reset first")))
            try:
                return (*self.episode.step(action), {})
            except Exception as e:
                raise WorkerEnvError(self._describe("step", e)) from None

        def close(self) -> None:
            if self.episode is not None:
                self.episode.env.close()
                self.episode = None

    return HostGymEnv


@contextlib.contextmanager
def _worker_environ() -> Iterator[None]:
    """Processes started inside: one BLAS thread, JAX on the CPU (host simulators only)."""
    saved = os.environ.get("JAX_PLATFORMS")
    os.environ["JAX_PLATFORMS"] = "cpu"
    try:
        with single_threaded_blas():
            yield
    finally:
        if saved is None:
            os.environ.pop("JAX_PLATFORMS", None)
        else:
            os.environ["JAX_PLATFORMS"] = saved


def _default_make() -> Callable[..., HostEnv]:
    from jaxplanet import envs  # lazy: `jaxplanet.envs` may come to import this module

    return envs.make


class WorkerEnvs(_Batched):
    """N `HostEnv`s, each built and stepped in its own worker process.

    Env i is ``make_fn(name, seed=seed + i, **options)`` built inside worker i, driven by
    `gymnasium.vector.AsyncVectorEnv` (``context="spawn"``, shared-memory observations,
    autoreset disabled); `step` sends all N actions at once and waits for the N results, so the
    simulators run in parallel. One env is also built (and closed) in this process first, to
    read the `spec` and to raise configuration errors (unknown name or option) right here.

    Args:
      name: task name, e.g. "cartpole_swingup" (see `jaxplanet.envs.names()`).
      num_envs: N, worker processes.
      seed: env i is built with ``seed + i`` (`reset(seeds)` then sets each episode's seed).
      make_fn: picklable ``make_fn(name, seed=, **options) -> HostEnv`` (default
        `jaxplanet.envs.make`), called in each worker.
      timeout: seconds to wait for the workers in each call (None: no limit); a timeout closes
        the workers and raises `WorkerEnvError`.
      **options: task options, e.g. action_repeat, episode_length.

    Attributes:
      spec, num_envs: as in `BatchedEnv`; name: the task; seeds: the N build seeds;
      processes: the N worker `multiprocessing.Process`es.

    Raises:
      ImportError: gymnasium is not installed (``pip install 'jaxplanet[worldmodels]'``).
      UnknownEnvError, TypeError: from ``make_fn`` in this process.
      WorkerEnvError: an env failed to build in its worker.
    """

    def __init__(
        self,
        name: str,
        num_envs: int,
        seed: int = 0,
        *,
        make_fn: Callable[..., HostEnv] | None = None,
        timeout: float | None = None,
        **options: Any,
    ):
        if operator.index(num_envs) < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        make_fn = make_fn or _default_make()
        # A bad name or option is named first, with or without the optional package.
        probe = make_fn(name, seed=seed, **options)
        try:
            self.spec: EnvSpec = probe.spec
        finally:
            probe.close()
        gymnasium = require("gymnasium", "worker-process environments")
        self.name, self.num_envs, self.timeout = name, int(num_envs), timeout
        self.seeds = [int(seed) + i for i in range(self.num_envs)]
        fns = [
            _WorkerFactory(name, s, i, dict(options), make_fn, self.spec)
            for i, s in enumerate(self.seeds)
        ]
        kwargs: dict[str, Any] = {}
        mode = getattr(gymnasium.vector, "AutoresetMode", None)  # gymnasium >= 1.1
        if mode is not None:
            kwargs["autoreset_mode"] = mode.DISABLED
        with _worker_environ():
            self._vec: Any = gymnasium.vector.AsyncVectorEnv(
                fns, context="spawn", shared_memory=True, copy=True, **kwargs
            )
        self.processes = list(self._vec.processes)

        def build(vec: Any) -> tuple[str | None, ...]:  # all N at once, in the workers
            vec.call_async("build")
            return vec.call_wait(timeout)

        errors = self._call("build", build)
        failed = [e for e in errors if e is not None]
        if failed:
            self._shutdown(graceful=False)
            raise WorkerEnvError(
                f"{len(failed)} of {self.num_envs} {name!r} environments failed to build:\n\n"
                + "\n".join(failed)
            )

    def _call(self, what: str, fn: Callable[[Any], Any]) -> Any:
        """Runs ``fn(vec)``; on any failure closes the workers and raises `WorkerEnvError`
        (`WorkerDiedError` if a worker had died)."""
        if self._vec is None:
            raise RuntimeError(f"WorkerEnvs of {self.name!r} is closed")
        try:
            return fn(self._vec)
        except WorkerEnvError:  # raised in a worker; its message names the env
            self._shutdown(graceful=False)
            raise
        except Exception as e:  # a dead worker (EOFError), a timeout, ...
            dead = self._dead_workers()
            self._shutdown(graceful=False)
            died = ", ".join(
                f"env {i} (seed {self.seeds[i]}): {exit_status(c)}" for i, c in dead.items()
            )
            message = (
                f"{what} of {self.num_envs} {self.name!r} environments (seeds {self.seeds}) "
                f"failed: {type(e).__name__}: {e}; "
                + (f"workers that died: {died}" if dead else "no worker had died")
            )
            if dead:
                raise WorkerDiedError(message, dead) from e
            raise WorkerEnvError(message) from e
        except BaseException:  # KeyboardInterrupt: do not leave workers behind
            self._shutdown(graceful=False)
            raise

    def _dead_workers(self, wait: float = 1.0) -> dict[int, int]:
        """{env index: exit code} of the workers that have exited (waits up to `wait` seconds
        for one to be reaped: a pipe closes just before its process is)."""
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and all(p.exitcode is None for p in self.processes):
            time.sleep(0.02)
        return {i: p.exitcode for i, p in enumerate(self.processes) if p.exitcode is not None}

    def reset(self, seeds: Sequence[int]) -> np.ndarray:
        """Resets env i with ``seeds[i]`` in parallel: obs uint8 [N, 64, 64, 3]."""
        seeds = self._seeds(seeds)

        def reset(vec: Any) -> np.ndarray:
            vec.reset_async(seed=seeds)
            return vec.reset_wait(self.timeout)[0]

        return np.asarray(self._call("reset", reset), np.uint8)

    def step(self, actions: np.ndarray) -> StepResult:
        """actions f32 [N, A] -> (obs uint8 [N, 64, 64, 3], reward f32 [N], terminated bool [N],
        truncated bool [N]), the N envs stepped in parallel; finished envs are not stepped."""
        a = self._actions(actions)

        def step(vec: Any) -> tuple[Any, ...]:
            vec.step_async(a)
            return vec.step_wait(self.timeout)

        obs, rewards, terms, truncs, _ = self._call("step", step)
        return (
            np.asarray(obs, np.uint8),
            np.asarray(rewards, np.float32),
            np.asarray(terms, np.bool_),
            np.asarray(truncs, np.bool_),
        )

    def _shutdown(self, graceful: bool) -> None:
        vec, self._vec = self._vec, None
        if vec is None:
            return
        try:
            with warnings.catch_warnings():  # "close while waiting for a pending call": expected
                warnings.simplefilter("ignore")
                vec.close(terminate=not graceful)
        except Exception as e:  # e.g. a worker that died: make sure none is left
            log.warning("closing %r workers: %s: %s", self.name, type(e).__name__, e)
            vec.closed = True  # else gymnasium's __del__ tries again (and fails) later
            for p in self.processes:  # left running when the close failed
                if p.is_alive():
                    p.terminate()
        for p in self.processes:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join()

    def close(self) -> None:
        """Closes each env in its worker and ends the worker processes (idempotent)."""
        self._shutdown(graceful=True)

    def __del__(self) -> None:
        if getattr(self, "_vec", None) is not None:
            with contextlib.suppress(Exception):  # e.g. at interpreter exit
                self._shutdown(graceful=False)

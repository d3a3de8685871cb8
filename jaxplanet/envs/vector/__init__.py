"""Batched host environments: N episodes of one task stepped in lock step.

PlaNet's ``--num_envs=N`` collects N episodes at once. A `BatchedEnv` holds N `HostEnv`s of one
task and steps them together: ``reset(seeds)`` starts one episode per env, ``step(actions)``
applies one agent action per env. One module per backend, `make_batched` picks one:

* `in_process`: `InProcessEnvs`, a list of `HostEnv`s stepped one after another in this
  process (where processes would only add overhead, or N = 1), and `JaxEnvs`, N episodes of a
  pure-JAX task such as ``point_reach`` stepped by one jitted, ``vmap``-ed call;
* `workers`: `WorkerEnvs`, each env built and stepped in its own worker process
  (`gymnasium.vector.AsyncVectorEnv`, ``context="spawn"``), so that host simulators
  (dm_control, gymnasium, vizdoom) step in parallel;
* `episodes`: `vector_episodes`, one episode per seed of a gymnasium pixel task in waves of
  worker processes, surviving workers that die (World Models' real rollouts);
* `base`: the `BatchedEnv` protocol and what the implementations share.

    with make_batched("cartpole_swingup", num_envs=4, seed=0) as batch:
        obs = batch.reset([10, 11, 12, 13])                 # uint8 [4, 64, 64, 3]
        obs, reward, terminated, truncated = batch.step(a)  # a: f32 [4, A] in [-1, 1]

Determinism: env i built with seed s_i and reset with seed r behaves exactly like
``envs.make(name, seed=s_i, **options)`` reset with ``seed=r`` and stepped with the same actions,
in either implementation (a test checks it).

End of episode: the caller stops using an env's outputs once it reports terminated or
truncated. Later `step` calls leave that env alone (its action is ignored, nothing is simulated
or auto-reset) and its outputs are meaningless until the next `reset`: today the final frame, a
zero reward and the final flags repeated, but do not rely on them. `reset(seeds)` restarts every
env regardless (for `WorkerEnvs` whatever gymnasium's autoreset mode: the installed gymnasium's
`AutoresetMode.DISABLED` is used where it exists, and an autoreset requested by older versions
is a no-op in the worker).

Workers: gymnasium is an optional dependency (``pip install 'jaxplanet[worldmodels]'``). Each
worker uses one BLAS thread (`jaxplanet.envs.gym.single_threaded_blas`) and runs JAX on the CPU
(``JAX_PLATFORMS=cpu``): host simulators must not contend for threads or grab accelerator memory.
An error in a worker (an unknown option, a GL/rendering failure, an exception in `step`) closes
the workers and raises `WorkerEnvError` in the parent, naming the task, the env index, its
seed and the worker's traceback; a worker that dies outright (e.g. a segfault) raises its
subclass `WorkerDiedError` (with the exit codes) instead of hanging. `close()` ends the workers;
both classes are context managers.
"""

from __future__ import annotations

import logging
import operator
from typing import Any

from jaxplanet.envs.base import HostEnv
from jaxplanet.envs.optional import available
from jaxplanet.envs.vector.base import BatchedEnv, StepResult
from jaxplanet.envs.vector.episodes import vector_episodes
from jaxplanet.envs.vector.in_process import InProcessEnvs, JaxEnvs
from jaxplanet.envs.vector.workers import (
    WorkerDiedError,
    WorkerEnvError,
    WorkerEnvs,
    exit_status,
    host_gym_env_class,
)

__all__ = [
    "BatchedEnv",
    "InProcessEnvs",
    "JaxEnvs",
    "StepResult",
    "WorkerDiedError",
    "WorkerEnvError",
    "WorkerEnvs",
    "exit_status",
    "host_gym_env_class",
    "make_batched",
    "vector_episodes",
]

log = logging.getLogger(__name__)


def make_batched(
    name: str, num_envs: int, seed: int = 0, workers: bool | None = None, **options: Any
) -> BatchedEnv:
    """N environments of task `name`, env i built with ``seed + i``.

    Args:
      name: task name (see `jaxplanet.envs.names()`).
      num_envs: N.
      seed: base seed: env i is ``envs.make(name, seed=seed + i, **options)``.
      workers: True: `WorkerEnvs` (one process per env); False: in this process; None: worker
        processes for host-simulated tasks (dm_control, gymnasium, vizdoom) when N > 1, in this
        process for pure-JAX tasks (`jaxplanet.envs.JAX_ENVS`, e.g. point_reach), for N = 1, and
        (with a warning) when gymnasium is not installed. In this process, N > 1 pure-JAX
        tasks are `JaxEnvs` (one vmapped call per step), the others `InProcessEnvs`.
      **options: task options (action_repeat, episode_length, ...).

    Returns:
      a `BatchedEnv` (also a context manager).
    """
    from jaxplanet import envs

    if operator.index(num_envs) < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if workers is None:
        workers = num_envs > 1 and name not in envs.JAX_ENVS
        if workers and not available("gymnasium"):
            log.warning(
                "gymnasium is not installed: stepping %d %r environments one after another in "
                "this process (pip install 'jaxplanet[worldmodels]' for worker processes)",
                num_envs,
                name,
            )
            workers = False
    if workers:
        return WorkerEnvs(name, num_envs, seed, **options)
    if name in envs.JAX_ENVS and num_envs > 1:
        return JaxEnvs(envs.make_jax(name, **options), num_envs)
    made: list[HostEnv] = []
    try:
        for i in range(num_envs):
            made.append(envs.make(name, seed=seed + i, **options))
    except BaseException:
        for env in made:
            env.close()
        raise
    return InProcessEnvs(made)

"""Many episodes of a gymnasium pixel task in worker processes, surviving worker deaths.

`vector_episodes` plays one episode per seed in waves of W `WorkerEnvs` processes; a worker
that dies (a segfault in a simulator) restarts the workers and runs its wave again with the same
seeds, up to `WORKER_RETRIES` times. World Models collects its real rollouts and evaluates its
controller on CarRacing and VizDoom this way.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxplanet.envs.gym import pixel_host
from jaxplanet.envs.optional import require
from jaxplanet.envs.vector.workers import WorkerDiedError, WorkerEnvs, exit_status

__all__ = ["WORKER_RETRIES", "vector_episodes"]

log = logging.getLogger(__name__)


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
        `jaxplanet.core.episodes`), else only returns and lengths.
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

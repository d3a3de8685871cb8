"""World Models pipeline (Ha & Schmidhuber 2018): collect -> V -> M -> calibrate -> C -> iterate
-> evaluate (iterate: the paper's iterative training, rounds of C-collected data, M and C again;
nothing with the default ``iterations=1``).

`train_and_evaluate(config, logdir, stage)` runs one stage or all of them. Every stage is
resumable and skipped when its artifact exists; a stage run before its inputs exist raises
`MissingInputError` naming the stage to run first. Layout of ``logdir``:

    config.json                    the run config (a different one is refused on resume)
    rollouts/rollout_000123.npz    random rollouts (obs uint8, action, reward, is_first, terminated)
    vae/  mdn/  controller/        checkpoints (orbax) + metrics.jsonl + TensorBoard per stage
    series.npz                     V's (mean, std) of every rollout frame: M's training data
    calibrate.json                 the dream's survival of simple policies against the real task's
    evaluate.json, videos/         final real-task scores; real (left) vs dream (right) video

``step`` on the metrics rows of a stage counts that stage's own progress: gradient updates for
V and M, generations for C (rows also carry ``env_steps``, the real environment steps used).
Rollouts of pure-JAX tasks (point_reach) are jitted vmaps; those of host tasks (CarRacing, Doom)
run in `workers` processes with `gymnasium.vector.AsyncVectorEnv`. The final controller is the
CMA-ES mean that scored best at the periodic real evaluations (as released). The calibrate stage
(`world_models_calibrate`) checks, before CMA-ES, that the dream ranks random, held-random and
constant policies as the real task does; the evaluate stage's random baseline is the paper's
(i.i.d. uniform actions every step, measured on real episodes of its own seeds).

Each stage's wall and CPU seconds land in ``metrics.jsonl`` (``time/<stage>_wall_s``,
``time/<stage>_cpu_s``). The pieces live in modules of one job each; their public names are
importable from here: `world_models_run` (the run, its policies, stage helpers),
`world_models_data` (rollout files, collect, z-sequences), `world_models_train` (V and M),
`world_models_calibrate` (the dream calibration, the random baseline), `world_models_evolve` (C
by CMA-ES, evaluation, video), `world_models_iterate` (the rounds of iterative training).
"""

from __future__ import annotations

import os
import time
import warnings
from typing import Any

from jaxplanet import config as config_lib
from jaxplanet import controllers, timing
from jaxplanet import logging as logging_lib
from jaxplanet.agents.world_models_calibrate import calibrate, random_baseline
from jaxplanet.agents.world_models_config import WorldModelsConfig
from jaxplanet.agents.world_models_data import (
    collect,
    collected,
    load_rollouts,
    make_series,
    rollout_path,
    sample_sequences,
    save_rollout,
)
from jaxplanet.agents.world_models_evolve import (
    ControllerChoice,
    controller_choice,
    evaluate,
    final_controller,
    real_and_dream_video,
    real_episodes,
    real_returns,
    train_controller,
)
from jaxplanet.agents.world_models_iterate import iterate, iterated
from jaxplanet.agents.world_models_run import MissingInputError, Run, finished
from jaxplanet.agents.world_models_train import train_mdn, train_vae, world_model_params

STAGES = ("collect", "vae", "mdn", "calibrate", "controller", "iterate", "evaluate")

__all__ = [
    "STAGES",
    "ControllerChoice",
    "MissingInputError",
    "Run",
    "calibrate",
    "collect",
    "controller_choice",
    "evaluate",
    "final_controller",
    "iterate",
    "load_rollouts",
    "make_series",
    "random_baseline",
    "real_and_dream_video",
    "real_episodes",
    "real_returns",
    "rollout_path",
    "sample_sequences",
    "save_rollout",
    "train_and_evaluate",
    "train_controller",
    "train_mdn",
    "train_vae",
    "world_model_params",
]


_STAGE_FNS = {
    "collect": collect,
    "vae": train_vae,
    "mdn": train_mdn,
    "calibrate": calibrate,
    "controller": train_controller,
    "iterate": iterate,
    "evaluate": evaluate,
}

#: Stages that need CMA-ES (evosax, an optional extra): C's evolution and its parameter layout.
_CMA_ES_STAGES = ("controller", "iterate", "evaluate")


def train_and_evaluate(
    cfg: WorldModelsConfig, logdir: str | os.PathLike, stage: str = "all"
) -> dict[str, Any]:
    """Runs (or resumes) `stage` ("all" = every stage in order) of a World Models run.

    Raises:
      config.ConfigError: a bad config value or stage name.
      MissingInputError: `stage` needs the artifact of an earlier stage (named in the message).
      checkpoint.ConfigMismatchError: `logdir` holds a run with a different config.
      ImportError: an optional package is missing (names the `worldmodels` extra): a host
        task's, or evosax when the controller or evaluate stage is to run (checked before
        any stage runs).
    """
    if stage != "all" and stage not in STAGES:
        raise config_lib.ConfigError(f"--stage: expected all or one of {', '.join(STAGES)}")
    run = Run(cfg, logdir)
    names = STAGES if stage == "all" else (stage,)
    if any(n in _CMA_ES_STAGES and not _stage_done(run, n) for n in names):
        controllers.require_cma_es()  # fail now, not after the hours of the stages before
    summary: dict[str, Any] = {}
    for name in names:
        skipped = _stage_done(run, name)
        wall, cpu = time.perf_counter(), timing.cpu_seconds()
        summary.update(_STAGE_FNS[name](run))
        if not skipped:
            times = {
                f"time/{name}_wall_s": time.perf_counter() - wall,
                f"time/{name}_cpu_s": timing.cpu_seconds() - cpu,
            }
            with logging_lib.Logger(run.logdir) as logger:
                logger.scalars(0, times)
            print(
                f"{name}: {times[f'time/{name}_wall_s']:.1f} s wall, "
                f"{times[f'time/{name}_cpu_s']:.1f} s CPU (this process and its workers)"
            )
            summary.update(times)
            _write_curves(run)
    return summary


def _write_curves(run: Run) -> None:
    """``learning_curves.png`` of the run so far (a plotting failure only warns)."""
    try:
        from jaxplanet.plot import write_learning_curves

        path = write_learning_curves(run.logdir)
    except (ImportError, OSError, ValueError) as err:
        warnings.warn(f"learning curves not drawn: {err}", stacklevel=2)
    else:
        print(f"learning curves -> {path}")


def _stage_done(run: Run, name: str) -> bool:
    """Whether `name`'s artifact exists (the stage would be skipped)."""
    cfg = run.cfg
    if name == "collect":
        return collected(run)
    if name == "iterate":
        return iterated(run)
    if name in ("calibrate", "evaluate"):
        return (run.logdir / f"{name}.json").exists() or (
            name == "calibrate" and not cfg.calibrate_episodes
        )
    steps = {"vae": cfg.vae_steps, "mdn": cfg.mdn_steps, "controller": cfg.generations}[name]
    return finished(run, name, steps)

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
(`calibrate`) checks, before CMA-ES, that the dream ranks random, held-random and
constant policies as the real task does; the evaluate stage's random baseline is the paper's
(i.i.d. uniform actions every step, measured on real episodes of its own seeds).

Each stage's wall and CPU seconds land in ``metrics.jsonl`` (``time/<stage>_wall_s``,
``time/<stage>_cpu_s``). The pieces live in modules of one job each (in `jaxplanet.worldmodels`);
their public names are importable from here: `run` (the run, its policies, stage helpers),
`data` (rollout files, collect, z-sequences), `train` (V and M), `calibrate` (the dream
calibration, the random baseline), `evolve` (C by CMA-ES, evaluation, video), `iterate` (the
rounds of iterative training), `report` (what the terminal shows).

What the terminal shows (the command line, ``jaxplanet-world-models``): `banner` at the start
(preset and the fields changed from it, task, devices, each stage's budget, where the outputs go,
a warning when GPU-sized settings run on a CPU), each stage's own lines, and `summary_rows` at
the end (wall and CPU time, C's real score beside the random policy's, where the outputs are).
A Ctrl-C stops at the next safe point (a V / M update, a CMA-ES generation, a chunk of
rollouts); the stages resume from their checkpoints. `evaluate_run` (``--mode=eval``) scores the
final C of a finished run again on ``--eval_episodes`` real episodes, under ``<logdir>/eval/``.
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import Any

import jax

from jaxplanet.core import checkpoint, console, timing
from jaxplanet.core import config as config_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.worldmodels import controllers
from jaxplanet.worldmodels.calibrate import calibrate, random_baseline
from jaxplanet.worldmodels.config import WorldModelsConfig
from jaxplanet.worldmodels.data import (
    collect,
    collected,
    load_rollouts,
    make_series,
    rollout_path,
    sample_sequences,
    save_rollout,
)
from jaxplanet.worldmodels.evolve import (
    ControllerChoice,
    controller_choice,
    evaluate,
    evaluated,
    final_controller,
    real_and_dream_video,
    real_episodes,
    real_returns,
    train_controller,
)
from jaxplanet.worldmodels.iterate import iterate, iterated
from jaxplanet.worldmodels.report import banner, eval_banner, summary_rows
from jaxplanet.worldmodels.run import STAGES, MissingInputError, Run, finished
from jaxplanet.worldmodels.train import train_mdn, train_vae, world_model_params

#: Fields ``--mode=eval`` may set: how many episodes and how they are shown, not the run itself.
EVAL_FIELDS = frozenset({"eval_episodes", "random_episodes", "video_length", "workers", "progress"})

__all__ = [
    "EVAL_FIELDS",
    "STAGES",
    "ControllerChoice",
    "MissingInputError",
    "Run",
    "banner",
    "calibrate",
    "collect",
    "controller_choice",
    "evaluate",
    "evaluate_run",
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
    "summary_rows",
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


class _Run(Run):
    """A `Run` whose key and seed derivations are also Ctrl-C's safe points: every V / M update,
    CMA-ES generation and chunk of rollouts derives its key or seeds first, before it changes
    any state, so stopping there is like a kill between two checkpoints (the stage resumes)."""

    stop: console.StopOnInterrupt | None = None

    def key(self, stream: int, index: int = 0) -> jax.Array:
        if self.stop is not None:
            self.stop.check()
        return super().key(stream, index)

    def seed(self, stream: int, index: int) -> int:
        if self.stop is not None:
            self.stop.check()
        return super().seed(stream, index)


def train_and_evaluate(
    cfg: WorldModelsConfig,
    logdir: str | os.PathLike,
    stage: str = "all",
    preset: str = "",
    console_output: bool = True,
) -> dict[str, Any]:
    """Runs (or resumes) `stage` ("all" = every stage in order) of a World Models run.

    Args:
      cfg: the run's config; logdir: its directory; stage: what to run.
      preset: the preset's name, for the start banner only.
      console_output: print the start `banner`.

    Returns:
      The stages' figures (the evaluate stage's: see `evaluate`), their ``time/<stage>_*``,
      and ``logdir``, ``env``, ``survival`` (the score is steps survived), ``stage_seconds``
      ({stage: wall seconds} of the stages that ran), ``wall_seconds`` and ``cpu_seconds`` of
      this call, and ``note`` where the stored evaluation is not for ``eval_episodes``.

    Raises:
      config.ConfigError: a bad config value or stage name.
      MissingInputError: `stage` needs the artifact of an earlier stage (named in the message).
      checkpoint.ConfigMismatchError: `logdir` holds a run with a different config.
      ImportError: an optional package is missing (names the `worldmodels` extra): a host
        task's, or evosax when the controller or evaluate stage is to run (checked before
        any stage runs).
      console.StopRequested: Ctrl-C; every stage resumes from its checkpoints.
    """
    if stage != "all" and stage not in STAGES:
        raise config_lib.ConfigError(f"--stage: expected all or one of {', '.join(STAGES)}")
    began, began_cpu = time.perf_counter(), timing.cpu_seconds()
    run = _Run(cfg, logdir)
    names = STAGES if stage == "all" else (stage,)
    done = [n for n in names if _stage_done(run, n)]
    if any(n in _CMA_ES_STAGES and n not in done for n in names):
        controllers.require_cma_es()  # fail now, not after the hours of the stages before
    if console_output:
        print(banner(cfg, run.logdir, preset, stage, run.spec, done), flush=True)
    summary: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    with console.StopOnInterrupt() as stop:
        run.stop = stop
        try:
            for name in names:
                stop.check()
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
                    seconds[name] = times[f"time/{name}_wall_s"]
                    _write_curves(run)
        except console.StopRequested:
            raise
        except Exception as err:
            if stop.requested.is_set():  # e.g. a worker process that got the Ctrl-C too
                raise console.StopRequested() from err
            raise
        finally:
            run.stop = None
    if "evaluate" in names and "eval_episodes" in summary:
        summary.update(_stored_result_note(cfg, summary))
    summary.update(
        logdir=str(run.logdir),
        directory=str(run.logdir),
        env=cfg.env,
        survival=run.r.reward == "survival",
        stage=stage,
        stage_seconds=seconds,
        wall_seconds=time.perf_counter() - began,
        cpu_seconds=timing.cpu_seconds() - began_cpu,
    )
    return summary


def _stored_result_note(cfg: WorldModelsConfig, result: dict[str, Any]) -> dict[str, str]:
    """``{"note": ...}`` when ``evaluate.json`` holds a result for other episode counts than
    ``cfg`` asks for (a finished run given ``--eval_episodes``), else {}."""
    asked = {"eval_episodes": cfg.eval_episodes, "random_episodes": cfg.random_episodes}
    differ = [f"--{k}={v}" for k, v in asked.items() if result.get(k) != v]
    if not differ:
        return {}
    return {
        "note": f"the stored result is for {result.get('eval_episodes')} episodes of C and "
        f"{result.get('random_episodes')} of random actions, not {' '.join(differ)}: "
        "--mode=eval scores the final C again (under eval/; evaluate.json stays)"
    }


def evaluate_run(
    logdir: str | os.PathLike, overrides: dict[str, str] | None = None, console_output: bool = True
) -> dict:
    """``--mode=eval``: scores the final C of the finished run in ``logdir`` again.

    The evaluate stage's measurement (`evaluate`: C on ``eval_episodes`` real episodes beside
    ``random_episodes`` of i.i.d. random actions, a real-vs-dream video) with the counts of
    ``overrides`` (only `EVAL_FIELDS`), written under ``logdir/eval/`` (``evaluate.json``,
    ``metrics.jsonl``, ``videos/``): the run's own ``evaluate.json`` and its ``config.json``
    are left as they are.

    With ``console_output`` a short banner says what is scored, on what, and where it goes.

    Returns:
      `evaluate`'s figures plus ``logdir``, ``directory`` (``logdir/eval``), ``env``,
      ``survival``, ``wall_seconds`` and ``cpu_seconds``.

    Raises:
      config.ConfigError: no run in ``logdir``, a field outside `EVAL_FIELDS`, or C is not
        trained yet (names what to run).
    """
    began, began_cpu = time.perf_counter(), timing.cpu_seconds()
    logdir = Path(logdir)
    cfg, eval_cfg = checkpoint.load_eval_config(
        logdir, WorldModelsConfig, "World Models", EVAL_FIELDS, overrides
    )
    run = _Run(cfg, logdir)  # the saved config: config.json stays as it is
    run.cfg = eval_cfg
    run.cfg.validate()
    if not iterated(run):
        raise config_lib.ConfigError(
            f"--mode=eval: the run in {logdir} has no trained C yet; finish it first "
            f"(the same command without --mode=eval resumes it)"
        )
    controllers.require_cma_es()
    if console_output:
        print(eval_banner(run), flush=True)
    with console.StopOnInterrupt() as stop:
        run.stop = stop
        summary = evaluate(run, logdir / "eval")
    summary.update(
        logdir=str(logdir),
        directory=str(logdir / "eval"),
        env=cfg.env,
        survival=run.r.reward == "survival",
        wall_seconds=time.perf_counter() - began,
        cpu_seconds=timing.cpu_seconds() - began_cpu,
    )
    return summary


def _write_curves(run: Run) -> None:
    """``learning_curves.png`` of the run so far (a plotting failure only warns)."""
    try:
        from jaxplanet.core.plot import write_learning_curves

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
    if name == "evaluate":
        return evaluated(run)
    if name == "calibrate":
        return (run.logdir / "calibrate.json").exists() or not cfg.calibrate_episodes
    steps = {"vae": cfg.vae_steps, "mdn": cfg.mdn_steps, "controller": cfg.generations}[name]
    return finished(run, name, steps)

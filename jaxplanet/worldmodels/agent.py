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
rounds of iterative training).

What the terminal shows (the command line, ``jaxplanet-world-models``): `banner` at the start
(preset and the fields changed from it, task, devices, each stage's budget, where the outputs go,
a warning when GPU-sized settings run on a CPU), each stage's own lines, and `summary_rows` at
the end (wall and CPU time, C's real score beside the random policy's, where the outputs are).
A Ctrl-C stops at the next safe point (a V / M update, a CMA-ES generation, a chunk of
rollouts); the stages resume from their checkpoints. `evaluate_run` (``--mode=eval``) scores the
final C of a finished run again on ``--eval_episodes`` real episodes, under ``<logdir>/eval/``.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax

from jaxplanet import envs
from jaxplanet.core import checkpoint, console, timing
from jaxplanet.core import config as config_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.worldmodels import config as world_models_config
from jaxplanet.worldmodels import controllers
from jaxplanet.worldmodels.calibrate import calibrate, policies, random_baseline
from jaxplanet.worldmodels.config import WorldModelsConfig, resolved
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
from jaxplanet.worldmodels.run import MissingInputError, Run, finished
from jaxplanet.worldmodels.train import train_mdn, train_vae, world_model_params

STAGES = ("collect", "vae", "mdn", "calibrate", "controller", "iterate", "evaluate")

#: Fields ``--mode=eval`` may set: how many episodes and how they are shown, not the run itself.
EVAL_FIELDS = frozenset({"eval_episodes", "random_episodes", "video_length", "workers", "progress"})

#: The paper's take_cover result (Ha & Schmidhuber 2018, Table 2), for the end table.
PAPER_RESULTS = {
    "doom_take_cover": "C evolved in the dream 1092 ± 556 steps survived, the random policy "
    "210 ± 108 (5.2x)",
    "car_racing": "C evolved in the real game 906 ± 21 (100 episodes)",
}
#: What C = 0 (a = 0, the evaluate stage's trivial policy) does in each task.
ZERO_ACTION = {
    "doom_take_cover": "standing still: take_cover's stay",
    "car_racing": "straight on at half gas, no brake",
    "point_reach": "standing still: no force",
}

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
        print(_eval_banner(run), flush=True)
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


def _eval_banner(run: Run) -> str:
    """``--mode=eval``'s start block: the run, the task, devices, what is scored, the output."""
    cfg, spec = run.cfg, run.spec
    choice = controller_choice(run, "evaluate")
    return console.banner(
        f"World Models evaluation of {run.logdir}",
        [
            (
                "env",
                f"{spec.name}: action_dim {spec.action_dim}, action repeat {spec.action_repeat}, "
                f"{spec.episode_length} env steps per episode",
            ),
            ("devices", console.devices_line()),
            ("C", f"the final C: the CMA-ES mean of generation {choice.generation}"),
            (
                "episodes",
                f"C on {cfg.eval_episodes} real episodes beside {cfg.random_episodes} of i.i.d. "
                f"random actions; a real-vs-dream video of {cfg.video_length} steps",
            ),
            (
                "output",
                f"{run.logdir / 'eval'}/  evaluate.json, metrics.jsonl, TensorBoard events, "
                "videos/ (the run's own evaluate.json stays)",
            ),
        ],
    )


def banner(
    cfg: WorldModelsConfig,
    logdir: str | os.PathLike,
    preset: str = "",
    stage: str = "all",
    spec: envs.EnvSpec | None = None,
    done: Sequence[str] = (),
    backend: str | None = None,
) -> str:
    """The start-of-run block: what runs (each stage's budget), on what, where its outputs go,
    and a warning when GPU-sized settings run on a CPU (``backend``, default JAX's).

    Built from the config alone (``spec``, the task's `EnvSpec`, adds its sizes; ``done``
    lists the stages whose artifacts exist), so it can be shown before anything runs.
    """
    r = resolved(cfg)
    host = cfg.env not in envs.JAX_ENVS
    env = cfg.env
    if spec is not None:
        env = (
            f"{spec.name}: action_dim {spec.action_dim}, action repeat {spec.action_repeat}, "
            f"{spec.episode_length} env steps per episode"
        )
    if host:
        env += f"; real episodes in {cfg.workers} worker processes"
    measure = "steps survived" if r.reward == "survival" else "return"
    order = [n for n in STAGES if n != "iterate" or r.iterations > 1]
    stages = " -> ".join(order) if stage == "all" else stage
    done = [n for n in done if n in order]
    if done:
        stages += f" (done already: {', '.join(done)})"
    held = (
        "a C with random Cauchy weights on an untrained V and M, as released"
        if r.random_policy == "weights"
        else f"each action held 1..{r.random_hold_max} steps"
        if r.random_hold_max
        else ("a new action every step" if r.random_hold == 1 else f"held {r.random_hold} steps")
    )
    drop = (
        f"; episodes of <= {r.min_random_length} steps collected again"
        if r.min_random_length
        else ""
    )
    c_in = {"z": "z alone", "zh": "[z, h]", "zch": "[z, c, h]"}[r.c_input]
    where = f"the dream (tau {r.temperature:g})" if r.in_dream else "the real task"
    dream_eps = cfg.generations * cfg.population * cfg.rollouts_per_candidate
    every = "generation" if cfg.eval_every == 1 else f"{cfg.eval_every} generations"
    scored = min(cfg.eval_episodes, cfg.rollouts_per_candidate)
    checks = (
        f"; the mean scored on {scored} real episode{'s' if scored > 1 else ''} every {every}"
        if cfg.eval_every
        else ""
    )
    if r.iterations > 1:
        rounds = (
            f"{r.iterations} rounds: each after the first collects "
            f"{cfg.iteration_rollouts or cfg.rollouts:,} rollouts with C (+ N(0, "
            f"{cfg.iteration_noise:g}^2) on its action), trains M "
            f"{cfg.iteration_mdn_steps or cfg.mdn_steps:,} more updates and runs "
            f"{cfg.generations} more generations of a CMA-ES started "
            f"{'at C = 0' if cfg.iteration_restart == 'zero' else 'around the last C'}"
        )
    elif cfg.iterations > 1:
        rounds = "1 (C evolves in the real task; iterative training refines a dream)"
    else:
        rounds = "1 (one pass on the random rollouts)"
    rows = [
        (
            "preset",
            console.preset_line(
                cfg,
                preset,
                {
                    p: lambda p=p: world_models_config.preset(p, cfg.env)
                    for p in world_models_config.PRESETS
                },
            ),
        ),
        ("env", f"{env}; score: {measure}"),
        ("devices", console.devices_line()),
        ("stages", stages),
        ("rollouts", f"{cfg.rollouts:,} random ({held}{drop})"),
        (
            "V",
            f"conv VAE, z {r.vae.z_dim}, depth {r.vae.depth}: {cfg.vae_steps:,} updates of "
            f"{cfg.vae_batch} frames (from at most {cfg.vae_max_frames:,} frames)",
        ),
        (
            "M",
            f"MDN-LSTM, {r.mdn.hidden} units, {r.mdn.mixtures} Gaussians per dim: "
            f"{cfg.mdn_steps:,} updates of {cfg.mdn_batch} x {r.mdn_seq_len}-step "
            f"{'chunks of episode streams' if cfg.mdn_batches == 'streams' else 'windows'}",
        ),
    ]
    if cfg.calibrate_episodes and r.reward == "head" and not r.mdn.reward_head:
        rows.append(("calibrate", "skipped: M has no reward head (C trains in the real task)"))
    elif cfg.calibrate_episodes:
        rows.append(
            (
                "calibrate",
                f"{len(policies(r.action_map))} simple policies x {cfg.calibrate_episodes} "
                "episodes, in the dream and in the real task",
            )
        )
    rows += [
        (
            "C",
            f"linear on {c_in}{'' if r.c_bias else ' (no bias)'}; CMA-ES in {where}: "
            f"{cfg.generations} generations x {cfg.population} candidates x "
            f"{cfg.rollouts_per_candidate} rollout{'s' if cfg.rollouts_per_candidate > 1 else ''}"
            f" = {dream_eps:,} episodes{checks}",
        ),
        ("iterations", rounds),
        (
            "evaluate",
            f"C on {cfg.eval_episodes} real episodes beside {cfg.random_episodes} of i.i.d. "
            f"random actions; a real-vs-dream video of {cfg.video_length} steps",
        ),
        (
            "output",
            f"{logdir}/  evaluate.json, metrics.jsonl, TensorBoard events, videos/, "
            "learning_curves.png; rollouts/; vae/, mdn/, controller/: checkpoints, metrics",
        ),
    ]
    gpu_sized = (
        cfg.rollouts >= 2000 or cfg.vae_steps >= 20_000 or dream_eps >= 100_000
    ) and stage in ("all", "collect", "vae", "controller")
    quick = world_models_config.quick()
    warn = console.gpu_sized_warning(
        f"the collect stage alone plays {cfg.rollouts:,} real {cfg.env} episodes (hours on a "
        f"CPU), then V trains {cfg.vae_steps:,} updates, M {cfg.mdn_steps:,} and CMA-ES runs "
        f"{cfg.generations} generations of {cfg.population} x {cfg.rollouts_per_candidate} "
        "episodes: a day or more on a CPU",
        f"--preset=quick ({quick.rollouts} rollouts, {quick.vae_steps:,} V and "
        f"{quick.mdn_steps:,} M updates, {quick.generations} generations of {quick.population} "
        f"x {quick.rollouts_per_candidate}; every Doom stage in 35-45 min on 2 cores)",
        backend,
    )
    return console.banner(f"World Models on {cfg.env}", rows, warn if gpu_sized else [])


def summary_rows(summary: dict[str, Any], command: str = "jaxplanet-world-models") -> list:
    """The end table's rows (`train_and_evaluate`'s or `evaluate_run`'s summary): the stages
    that ran, wall and CPU time, C's real score beside the random policy's and what the
    difference means, and where the outputs are (``command``: how to evaluate again)."""
    logdir, directory = Path(summary["logdir"]), Path(summary["directory"])
    rows = []
    if "stage_seconds" in summary:
        ran = summary["stage_seconds"]
        rows.append(
            (
                "stages run",
                ", ".join(f"{k} {console.format_duration(v)}" for k, v in ran.items())
                or "none: every stage's result was there already",
            )
        )
    rows += console.time_rows(summary["wall_seconds"], summary.get("cpu_seconds"))
    if "eval_return_mean" in summary:
        rows += _result_rows(summary)
    elif summary.get("stage") not in (None, "all", "evaluate"):
        rows.append(("result", "none yet: --stage=all runs the remaining stages"))
    rows += _calibration_rows(logdir)
    if summary.get("note"):
        rows.append(("note", summary["note"]))
    if (directory / "evaluate.json").exists():
        rows.append(("result", str(directory / "evaluate.json")))
    stage_metrics = [] if directory != logdir else ["{vae,mdn,controller}/metrics.jsonl"]
    rows += console.output_rows(
        directory,
        ["metrics.jsonl", *stage_metrics],
        videos="left: a real episode of C; right: M's dream from its first frame",
        evaluate=f"{command} --logdir={logdir} --mode=eval --eval_episodes=N",
    )
    return rows


def _result_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """C's score beside the random policy's, their ratio and what the difference means."""
    key, unit = ("length", "steps survived") if s.get("survival") else ("return", "return")
    c_mean, c_std, n = s[f"eval_{key}_mean"], s[f"eval_{key}_std"], s["eval_episodes"]
    r_mean, r_std, m = s[f"random_{key}_mean"], s[f"random_{key}_std"], s["random_episodes"]
    gen, rounds = s.get("controller_generation"), s.get("rounds", 1)
    where = f", round {s.get('controller_round', 0)} of {rounds}" if rounds > 1 else ""
    rows = [
        (
            "C (controller)",
            f"{c_mean:.2f} ± {c_std:.2f} {unit}, mean ± std over {n} real episodes"
            + (f" (the CMA-ES mean of generation {gen}{where})" if gen is not None else ""),
        ),
        (
            "random policy",
            f"{r_mean:.2f} ± {r_std:.2f} {unit} over {m} real episodes of i.i.d. uniform actions",
        ),
    ]
    se = math.sqrt(c_std**2 / max(n, 1) + r_std**2 / max(m, 1))
    diff = c_mean - r_mean
    if abs(diff) > 2 * se:
        meaning = f"C is {'better' if diff > 0 else 'worse'} than random (beyond 2 std errors)"
    else:
        meaning = "within 2 std errors of random: no clear difference"
    versus = f"{c_mean / r_mean:.2f}x" if r_mean > 0 else f"difference {diff:+.2f}"
    rows.append(("C vs random", f"{versus}; {meaning}"))
    if f"still_{key}_mean" in s:  # evaluate.json written before standing still was scored lacks it
        rows.append(
            (
                "C = 0 (a = 0)",
                f"{s[f'still_{key}_mean']:.2f} ± {s[f'still_{key}_std']:.2f} {unit} on C's "
                f"episodes ({ZERO_ACTION.get(s.get('env'), 'a constant a = 0')})",
            )
        )
    if s.get("env") in PAPER_RESULTS:
        rows.append(("paper", PAPER_RESULTS[s["env"]]))
    return rows


def _calibration_rows(logdir: Path) -> list[tuple[str, str]]:
    """The calibrate stage's verdict (from ``calibrate.json``), if it ran."""
    try:
        report = json.loads((logdir / "calibrate.json").read_text())
    except (OSError, ValueError):
        return []
    if "warnings" not in report:
        return []
    if report["warnings"]:
        return [
            (
                "calibration",
                f"{len(report['warnings'])} warning(s): the dream mis-ranks simple policies "
                f"(see {logdir / 'calibrate.json'})",
            )
        ]
    return [
        (
            "calibration",
            f"the dream ranks the {len(report['policies'])} simple policies as the real task "
            f"does (Spearman {report['spearman']:.2f})",
        )
    ]


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

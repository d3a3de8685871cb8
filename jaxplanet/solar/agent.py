"""SOLAR training loop (Zhang et al., ICML 2019, Algorithm 1): pretrain, then iterate
collect -> model update -> EM local dynamics -> LQR-FLM.

``train_and_evaluate(config, logdir)`` runs (or resumes) a whole experiment:

1. ``pretrain_rollouts`` rollouts with Gaussian random actions (std ``pretrain_action_std``;
   their mean return and success rate are logged once as ``random_return`` / ``random_success``;
   with ``pretrain_random_start`` they start anywhere in the arena, as the released code's
   pretraining data, and the random figures come from as many random rollouts from the task's
   own starts, kept out of the data);
   ``pretrain_steps`` model steps with the local KL weight annealed geometrically from
   ``kl_start`` to 1;
2. per iteration: ``rollouts`` rollouts with the current time-varying linear-Gaussian policy
   acting on the Kalman-filter mean of the latent (u = K_t s_t + k_t + chol(S_t) eps);
   ``model_steps`` model steps on all data; EM fit of local dynamics on the new rollouts with
   q(F, Sigma) as the prior; LQR-FLM with the learned cost plus 1/2 a^T R a under the KL bound
   ``kl_step * horizon * step_mult``; step_mult adapted from the model's predicted vs actual
   improvement (both the model's estimates, as the released code);
   before that (for MPC too) the quadratic cost is refit on inferred states of
   ``cost_fit_rollouts`` rollouts (`solar_fit.fit_cost`); with ``policy="mpc"`` EM and LQR-FLM
   are replaced by CEM on the latent model at every step (`policy`);
3. a noise-free evaluation per iteration (`solar_eval.evaluate_episodes`: return, goal-reached
   rate where the task defines one, a video of frames beside reconstructions); a checkpoint (model,
   q(F, Sigma), policy, step_mult, `resume.Progress`) after every phase.

Steps on log rows are environment steps after action repeat. Episodes live in
``logdir/episodes``. On resume the checkpoint decides what the run has done: rollout files and
metric rows written after it are set aside and redone (``jaxplanet.core.resume``), so a run
killed at any point continues exactly as an uninterrupted one. ``evaluate_run``
(``--mode=eval``) replays the in-training evaluation of the newest checkpoint.

What the terminal shows (``jaxplanet-solar``; `jaxplanet.solar.report`): `banner` at the
start (preset and the fields changed from it, task, devices, the policy, model and budget, where
the outputs go, a warning when GPU-sized settings run on a CPU) and `summary_rows` at the end
(wall and CPU time, the last evaluation beside the random policy, where the outputs are). A
Ctrl-C stops at the next safe point (a model step, an episode, an iteration); the run resumes
from its last checkpoint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet import envs
from jaxplanet.core import checkpoint, console, plot, replay, resume, seeding, timing
from jaxplanet.core import config as config_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.solar import eval as solar_eval
from jaxplanet.solar import model as solar
from jaxplanet.solar.config import RESUMABLE_FIELDS, SolarConfig
from jaxplanet.solar.eval import (
    SUCCESS,
    evaluate,
    evaluate_episodes,
    reconstruction_video,
    success,
    success_rate,
)
from jaxplanet.solar.policy import (
    check_improvement,
    host_policy,
    improve_policy,
    initial_policy,
    make_functions,
    random_policy,
    refit_cost,
)
from jaxplanet.solar.report import banner, config_summary, eval_banner, summary_rows
from jaxplanet.solar.state import RunState

__all__ = [
    "EVAL_ENV_SEED",
    "SUCCESS",
    "make_env",
    "initial_run",
    "train_and_evaluate",
    "evaluate_run",
    "config_summary",
    "banner",
    "summary_rows",
    # re-exported from policy / eval
    "make_functions",
    "initial_policy",
    "host_policy",
    "random_policy",
    "refit_cost",
    "check_improvement",
    "improve_policy",
    "success",
    "success_rate",
    "evaluate",
    "evaluate_episodes",
    "reconstruction_video",
]

_TRAIN, _COLLECT, _INIT = 0, 1, 3  # key tags (2 is the evaluation's: solar_eval.EVAL_KEY)
EVAL_ENV_SEED = seeding.EVAL_ENV_OFFSET  # the evaluation env's seed offset


def make_env(cfg: SolarConfig, seed: int, random_start: bool = False) -> envs.HostEnv:
    """The task with episodes of exactly ``horizon`` agent steps (``random_start``: starts --
    and targets, for tasks that have one -- anywhere in the arena, for the pretraining rollouts
    of ``pretrain_random_start``).

    Raises:
      config.ConfigError: ``random_start`` for a task without that option.
    """
    options = {"action_repeat": cfg.action_repeat} if cfg.action_repeat else {}
    probe = envs.make(cfg.env, seed=seed, **options)
    repeat = probe.spec.action_repeat
    probe.close()
    options = {}
    if random_start:
        known = envs.options(cfg.env)
        if "random_start" not in known:
            raise config_lib.ConfigError(
                f"--pretrain_random_start: task {cfg.env!r} has no random_start option "
                "(its starts are already random, or it cannot start anywhere)"
            )
        options = {"random_start": True}
        if cfg.pretrain_random_target and "random_target" in known:
            options["random_target"] = True
    return envs.make(
        cfg.env, seed=seed, action_repeat=repeat, episode_length=cfg.horizon * repeat, **options
    )


class _Data:
    """All rollouts in memory as stacked arrays (uint8 frames), in SOLAR's batch convention."""

    def __init__(self):
        self.episodes: list[dict] = []

    def add(self, ep: dict) -> None:
        self.episodes.append({k: ep[k] for k in ("obs", "action", "reward")})

    def batch(self, idx) -> dict:
        stack = {
            k: np.stack([self.episodes[i][k] for i in idx]) for k in ("obs", "action", "reward")
        }
        return solar.episode_batch(**stack)


def _cost_batch(cfg: SolarConfig, data: _Data, phase: int) -> dict | None:
    """``cost_fit_rollouts`` rollouts drawn from all data (seeded by the phase), or None."""
    if cfg.cost_fit_steps == 0 or cfg.cost_fit_rollouts == 0:
        return None
    count = len(data.episodes)
    rng = np.random.default_rng((cfg.seed, phase, 1))
    idx = rng.choice(count, cfg.cost_fit_rollouts, replace=count < cfg.cost_fit_rollouts)
    return data.batch(np.sort(idx))


def _kl_weight(cfg: SolarConfig, step: int) -> float:
    if cfg.kl_anneal_steps == 0:
        return 1.0
    return float(min(1.0, cfg.kl_start ** max(0.0, 1.0 - step / cfg.kl_anneal_steps)))


def _random_baseline(cfg: SolarConfig, env: envs.HostEnv, repeat: int):
    """Returns and successes of ``pretrain_rollouts`` Gaussian random-action episodes from the
    task's start distribution (evaluation env seeds; not added to the data)."""
    returns, successes = [], []
    for i in range(cfg.pretrain_rollouts):
        seed = seeding.episode_seed(cfg.seed, i, offset=500_000)
        pol = random_policy(env.spec.action_dim, cfg.pretrain_action_std, seed)
        ep = episodes_lib.run_episode(env, pol, seed=seed)
        returns.append(ep["return"])
        successes.append(success(cfg.env, ep, repeat))
    return returns, successes


def initial_run(cfg: SolarConfig, action_dim: int) -> RunState:
    """The run state a fresh run starts from (also the checkpoint template)."""
    T, root = cfg.horizon, jax.random.key(cfg.seed)
    state = solar.init_train_state(cfg.model, jax.random.fold_in(root, _INIT), action_dim, T)
    # Strong dtypes, as a restored checkpoint has them: a weak-typed leaf (MNIW nu) would make
    # the resumed run compile its train step a second time.
    state = jax.tree.map(lambda x: jnp.array(x, dtype=x.dtype), state)
    return RunState(
        train=state,
        policy=initial_policy(cfg, action_dim),
        dyn=solar.plugin(state.q, cfg.model, T),
        step_mult=1.0,
        predicted=0.0,
        prev_cost=0.0,
        phase=0,  # phases done: 1 after pretraining, i + 1 after iteration i
        progress=resume.Progress().as_dict(),
    )


def train_and_evaluate(
    cfg: SolarConfig, logdir: str | Path, preset: str = "", console_output: bool = True
) -> dict[str, Any]:
    """Runs or resumes a SOLAR experiment in ``logdir``; returns a summary of the last figures.

    Args:
      cfg: the experiment's config; logdir: its run directory.
      preset: the preset's name, for the start banner only.
      console_output: print the start `banner`.

    Returns:
      The last iteration's metrics row (``eval_return``, ``eval_success`` where the task
      defines a goal, ``train_return``, ``train/*``, ...), ``episodes``, ``env_steps``,
      ``grad_steps``, the run's logged figures (`_logged_figures`: the last evaluation, the
      random baseline), ``logdir``, ``wall_seconds`` / ``cpu_seconds`` of this call and
      ``time_shares`` (`timing.PhaseClock.shares`: env, act, replay, update, policy, eval,
      video, checkpoint and other).

    Raises:
      checkpoint.ConfigMismatchError: ``logdir`` holds a run with a different config.
      FloatingPointError: a loss or gradient became non-finite (names the step).
      console.StopRequested: Ctrl-C; the run resumes from its last checkpoint.
    """
    cfg.validate()
    if cfg.debug_nans:
        jax.config.update("jax_debug_nans", True)
    began, began_cpu = time.perf_counter(), timing.cpu_seconds()
    clock = timing.PhaseClock()  # this session's seconds per phase
    logdir = Path(logdir)
    env, eval_env = make_env(cfg, cfg.seed), make_env(cfg, cfg.seed + EVAL_ENV_SEED)
    handles: list[Any] = [env, eval_env]
    pre_env = env
    if cfg.pretrain_random_start:
        pre_env = make_env(cfg, cfg.seed, random_start=True)
        handles.append(pre_env)
    try:
        checkpoint.claim_run_dir(logdir, cfg, RESUMABLE_FIELDS)
        if console_output:
            print(banner(cfg, logdir, preset, env.spec), flush=True)
        ckpt = checkpoint.Checkpointer(logdir / "checkpoints", cfg.keep_checkpoints)
        handles.append(ckpt)
        with console.StopOnInterrupt() as stop:
            summary = _loop(cfg, logdir, (env, eval_env, pre_env), ckpt, handles, stop, clock)
    finally:
        for obj in handles:
            obj.close()
    summary.update(_logged_figures(logdir))
    wall = time.perf_counter() - began
    summary.update(
        random_episodes=cfg.pretrain_rollouts,
        logdir=str(logdir),
        wall_seconds=wall,
        cpu_seconds=timing.cpu_seconds() - began_cpu,
        time_shares=clock.shares(wall),
    )
    return summary


def _logged_figures(logdir: Path) -> dict[str, Any]:
    """From ``metrics.jsonl``: the last evaluation (``eval_return``, ``eval_success``,
    ``eval_episodes``, ``eval_iteration``), the random baseline (``random_return``,
    ``random_success``) and the last ``train_return`` / ``train_success``."""
    out: dict[str, Any] = {}
    for row in logging_lib.read_metrics(logdir / logging_lib.METRICS_FILE):
        for k in ("random_return", "random_success", "train_return", "train_success"):
            if k in row:
                out[k] = row[k]
        if "eval_return" in row:
            out.pop("eval_success", None)
            keys = ("eval_return", "eval_success", "eval_episodes")
            out.update({k: row[k] for k in keys if k in row})
            out["eval_iteration"] = row.get("iteration")
    return out


def _loop(cfg, logdir, env_triple, ckpt, handles, stop=None, clock=None) -> dict[str, Any]:
    """The run from its checkpoint on; ``stop`` (`console.StopOnInterrupt`) is checked between
    episodes, model steps and iterations; ``clock`` (`timing.PhaseClock`) gets each phase's
    seconds (env, act, replay, update, policy, eval, video, checkpoint)."""
    check = stop.check if stop is not None else (lambda: None)
    clock = clock if clock is not None else timing.PhaseClock()
    env, eval_env, pre_env = env_triple
    spec, root = env.spec, jax.random.key(cfg.seed)
    A, n, T, repeat = spec.action_dim, cfg.model.latent, cfg.horizon, spec.action_repeat
    fns = make_functions(cfg, A)

    # The checkpoint decides what the run has done; files beyond it are set aside (resume.py).
    run = initial_run(cfg, A)
    restored = ckpt.restore(run)
    if restored is not None:
        run = restored[1]
    progress = resume.Progress.from_dict(run.progress) if restored is not None else None
    resumed = resume.reconcile(logdir, progress, restored and restored[0], unit="rollout")
    progress = resumed.progress
    if restored is not None or resumed.set_aside is not None:
        print(f"Resuming {logdir}: {resumed.message or 'nothing to redo'}.")
    logger = logging_lib.Logger(logdir)
    handles.append(logger)
    counters = {"env_steps": progress.env_steps, "evaluations": progress.evaluations}
    data = _Data()
    for ep in replay.iter_episodes(logdir / "episodes", limit=progress.episodes):
        data.add(ep)
    summary: dict[str, Any] = {}

    def timed(policy):  # the policy's seconds count as acting, the rest of an episode as env
        def acting(obs, is_first):
            with clock("act"):
                return policy(obs, is_first)

        return acting

    def collect(count, make_policy, source=env):
        returns, successes = [], []
        for _ in range(count):
            check()
            index = len(data.episodes)
            with clock("env"):
                ep = episodes_lib.run_episode(
                    source, timed(make_policy(index)), seed=seeding.episode_seed(cfg.seed, index)
                )
            with clock("replay"):
                replay.save_episode(logdir / "episodes", episodes_lib.episode_arrays(ep), index)
                data.add(ep)
            returns.append(ep["return"])
            successes.append(success(cfg.env, ep, repeat))
            counters["env_steps"] += ep["length"] * repeat
        return returns, successes

    def update(run, steps, phase, kl_from):
        """``steps`` model steps on all data; returns (the run with the new model, log row)."""
        state, rng, rows = run.train, np.random.default_rng((cfg.seed, phase)), []
        keys = jax.random.split(jax.random.fold_in(jax.random.fold_in(root, _TRAIN), phase), steps)
        with clock("update"):
            for i in range(steps):
                check()
                idx = rng.integers(0, len(data.episodes), min(cfg.batch_size, len(data.episodes)))
                w = _kl_weight(cfg, kl_from + i) if kl_from >= 0 else 1.0
                state, m = fns["train"](state, data.batch(idx), keys[i], len(data.episodes), w)
                rows.append(m)
            metrics = jax.device_get(jax.tree.map(lambda *x: jnp.stack(x), *rows)) if rows else {}
        if rows and not np.all(metrics["finite"]):
            bad = int(np.flatnonzero(~metrics["finite"])[0])
            raise FloatingPointError(f"non-finite SOLAR loss at step {bad} of phase {phase}")
        row = {f"train/{k}": float(np.mean(v)) for k, v in metrics.items() if k != "finite"}
        return run.replace(train=state), row

    def save(run, phase):
        done = resume.Progress(
            len(data.episodes),
            counters["env_steps"],
            int(run.train.step),
            counters["evaluations"],
            logger.rows,
        )
        run = run.replace(progress=done.as_dict(), phase=phase)
        with clock("checkpoint"):
            ckpt.save(phase, run, config_lib.to_dict(cfg))
        return run

    if int(run.phase) == 0:
        returns, successes = collect(
            cfg.pretrain_rollouts,
            lambda i: random_policy(
                A,
                cfg.pretrain_action_std,
                seeding.episode_seed(cfg.seed, i),
                cfg.pretrain_action_hold,
            ),
            pre_env,
        )
        if cfg.pretrain_random_start:  # the random baseline from the task's own starts
            with clock("env"):
                returns, successes = _random_baseline(cfg, eval_env, repeat)
        row = {"random_return": float(np.mean(returns))}
        row.update(success_rate("random_success", successes))
        if cfg.model.canvas:  # the decoder's output bias starts at the mean pretraining frame
            frames = np.concatenate([ep["obs"] for ep in data.episodes])
            params = solar.init_canvas(run.train.params, frames)
            run = run.replace(train=run.train.replace(params=params))
        run, trained = update(run, cfg.pretrain_steps, 0, 0)
        row.update(trained)
        run = run.replace(dyn=solar.plugin(run.train.q, cfg.model, T))
        row.update(clock.row())
        logger.scalars(counters["env_steps"], row)
        summary.update(row)
        run = save(run, 1)
    bar = logging_lib.progress(cfg.iterations, "solar", unit="iter", disable=not cfg.progress)
    bar.update(int(run.phase) - 1)
    while int(run.phase) <= cfg.iterations:
        check()
        phase, began = int(run.phase), time.perf_counter()
        key = jax.random.fold_in(jax.random.fold_in(root, _COLLECT), phase)
        returns, successes = collect(
            cfg.rollouts,
            lambda i, r=run, k=key: host_policy(
                fns, r, A, n, jax.random.fold_in(k, i), 1.0, cfg.model.frames
            ),
        )
        row = {"iteration": phase, "train_return": float(np.mean(returns))}
        row.update(success_rate("train_success", successes))
        run, trained = update(run, cfg.model_steps, phase, -1)
        row.update(trained)
        with clock("policy"):  # cost refit, EM local dynamics and LQR-FLM
            run, refit = refit_cost(fns, run, _cost_batch(cfg, data, phase))
            row.update(refit)
            if cfg.policy == "lqr_flm":
                new = data.batch(range(len(data.episodes) - cfg.rollouts, len(data.episodes)))
                run, improved = improve_policy(cfg, fns, run, new, phase)
                row.update(improved)
            else:
                run = run.replace(dyn=solar.plugin(run.train.q, cfg.model, T))
        with clock("eval"):  # its reconstruction video included
            evaluated = solar_eval.evaluate(
                cfg, fns, run, eval_env, logger, phase, counters["env_steps"]
            )
        row.update(evaluated)
        counters["evaluations"] += 1
        row["seconds"] = time.perf_counter() - began
        row.update(clock.row())
        logger.scalars(counters["env_steps"], row)
        with clock("video"):
            plot.try_write_learning_curves(logdir)
        summary.update(row)
        if phase % cfg.checkpoint_every == 0 or phase == cfg.iterations:
            run = save(run, phase + 1)
        else:
            run = run.replace(phase=phase + 1)
        bar.update(1)
    bar.close()
    summary.update(
        {
            "episodes": len(data.episodes),
            "env_steps": counters["env_steps"],
            "grad_steps": int(run.train.step),
        }
    )
    return summary


def evaluate_run(
    logdir: str | Path, overrides: dict[str, str] | None = None, console_output: bool = True
) -> dict[str, Any]:
    """Loads the newest checkpoint of ``logdir`` and evaluates it with `evaluate_episodes`.

    The episodes are those of the in-training evaluation of the checkpoint's last iteration
    (same env seeds and keys), so the first ``eval_episodes`` returns equal the logged
    ``eval_return``. Writes ``logdir/eval/metrics.jsonl`` (one row per episode) and one video
    per episode under ``logdir/eval/videos``. ``overrides`` may change reporting fields only.
    With ``console_output`` a short banner says what is scored, on what, and where it goes.

    Returns ``iteration``, ``env_steps``, ``eval_return_mean`` / ``_std``, ``eval_episodes``,
    ``eval_success_rate`` (tasks with a goal), the run's random baseline (``random_return``,
    ``random_success``), ``logdir``, ``directory`` (``logdir/eval``) and ``wall_seconds`` /
    ``cpu_seconds``.
    """
    began, began_cpu = time.perf_counter(), timing.cpu_seconds()
    logdir = Path(logdir)
    _, cfg = checkpoint.load_eval_config(logdir, SolarConfig, "SOLAR", RESUMABLE_FIELDS, overrides)
    env = make_env(cfg, cfg.seed + EVAL_ENV_SEED)
    A, repeat = env.spec.action_dim, env.spec.action_repeat
    with checkpoint.Checkpointer(logdir / "checkpoints", create=False) as ckpt:
        restored = ckpt.restore(initial_run(cfg, A))
    if restored is None:
        env.close()
        raise config_lib.ConfigError(f"--logdir: no checkpoint in {logdir / 'checkpoints'}")
    run = restored[1]
    progress = resume.Progress.from_dict(run.progress)
    fns = make_functions(cfg, A)
    phase = int(run.phase) - 1  # the iteration whose evaluation this replays
    if console_output:
        print(eval_banner(cfg, env.spec, logdir, phase), flush=True)
    try:
        episodes = solar_eval.evaluate_episodes(cfg, fns, run, env, phase, cfg.eval_episodes)
    finally:
        env.close()
    results = [success(cfg.env, e, repeat) for e in episodes]
    with logging_lib.Logger(logdir / "eval") as logger:
        for i, (episode, ok) in enumerate(zip(episodes, results, strict=True)):
            row = {"eval_return": episode["return"], "eval_episode": i, "iteration": phase}
            row.update({} if ok is None else {"eval_success": ok})
            logger.scalars(progress.env_steps, row)
            if cfg.video:
                frames = reconstruction_video(fns, run, episode)
                path = logger.video(progress.env_steps + i, "eval_reconstruction", frames)
                print(f"episode {i}: return {episode['return']:.2f}, video {path}")
    returns = [e["return"] for e in episodes]
    summary = {
        "iteration": phase,
        "env_steps": progress.env_steps,
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
    }
    summary.update(success_rate("eval_success_rate", results))
    figures = _logged_figures(logdir)
    summary.update({k: v for k, v in figures.items() if k.startswith("random_")})
    summary.update(
        eval_episodes=len(episodes),
        random_episodes=cfg.pretrain_rollouts,
        logdir=str(logdir),
        directory=str(logdir / "eval"),
        wall_seconds=time.perf_counter() - began,
        cpu_seconds=timing.cpu_seconds() - began_cpu,
    )
    return summary

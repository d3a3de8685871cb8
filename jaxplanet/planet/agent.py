"""PlaNet training loop: collect -> update -> evaluate (Hafner et al. 2019, Algorithm 1).

``train_and_evaluate(config, logdir)`` runs (or resumes) a whole experiment:

1. ``seed_episodes`` episodes with uniform random actions (their mean return is logged once as
   ``random_return``);
2. then per episode: ``train_steps`` gradient steps on chunks sampled from replay (each one
   jitted sample + update), and one episode collected with CEM planning on the learned model
   plus Gaussian exploration noise;
3. every ``eval_every`` episodes an evaluation without noise, with a video of the real frames
   beside the model's open-loop predictions;
4. after every episode: the episode is written to ``logdir/episodes`` (atomic ``.npz``) and the
   run state (parameters, optimiser, counters, keys) is checkpointed.

Steps on every log row are environment steps after action repeat. All randomness derives from
``config.seed`` by ``fold_in`` of the episode index, so a resumed run continues exactly where an
uninterrupted one would. On resume the checkpoint decides what the run has done: episode files
and metric rows written after it are set aside and redone (``jaxplanet.core.resume``).
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxplanet import envs, planet
from jaxplanet.core import checkpoint, console, parallel, plot, replay, resume, timing
from jaxplanet.core import config as config_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.planet import run_state, scale, seeds
from jaxplanet.planet.config import RESUMABLE_FIELDS, PlanetConfig
from jaxplanet.planet.evaluate import (
    evaluate_episodes,
    evaluate_run,
    open_loop_video,
    planner_policy,
)
from jaxplanet.planet.functions import (
    Functions,
    init_train_state,
    make_functions,
    replay_device,
    root_key,
    train,
)
from jaxplanet.planet.report import banner, describe, summary_rows

__all__ = [
    "Functions",
    "Run",
    "banner",
    "describe",
    "evaluate",
    "evaluate_episodes",
    "evaluate_run",
    "init_train_state",
    "make_functions",
    "open_loop_video",
    "planner_policy",
    "replay_device",
    "root_key",
    "summary_rows",
    "train",
    "train_and_evaluate",
]

make_env, env_options = scale.make_env, scale.env_options  # the run's task (public names)


def _mean_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in metrics.items() if k != "finite"}


def _check_train_metrics(
    metrics: dict[str, np.ndarray], first_step: int, seed_index: int | None = None
) -> None:
    """Stop on the first non-finite gradient step, naming it, the terms (and the seed)."""
    finite = np.asarray(metrics["finite"]).reshape(-1)
    for i in np.flatnonzero(~finite)[:1]:
        try:
            planet.check_finite({k: np.asarray(v)[i] for k, v in metrics.items()}, first_step + i)
        except planet.NonFiniteLossError as err:
            if seed_index is None:
                raise
            raise planet.NonFiniteLossError(f"seed_{seed_index}: {err}") from None


class Run:
    """Mutable host-side handles of one run (lanes, checkpointer); state stays pure.

    One `scale.Lane` per seed (with one seed, ``lanes[0].logdir`` is ``logdir``).
    """

    def __init__(self, cfg: PlanetConfig, logdir: str | Path):
        self.cfg = cfg
        self.logdir = Path(logdir)
        self.batched_env: Any = None  # the K x N host envs, opened on the first round
        self.ckpt: Any = None
        # Everything that can refuse the run does so before anything is written.
        self.mesh = scale.make_mesh(cfg)
        self.lanes = [
            scale.Lane(scale.lane_config(cfg, k), scale.lane_dir(self.logdir, cfg, k))
            for k in range(cfg.num_seeds)
        ]
        self.spec = self.lanes[0].env.spec
        if cfg.collect == "device" and not isinstance(self.lanes[0].env, envs.JaxHostAdapter):
            self.close()
            raise config_lib.ConfigError(
                f"--collect=device: {cfg.env} is not a pure-JAX task; valid: "
                f"{', '.join(sorted(envs.JAX_ENVS))} (or use --collect=host)"
            )
        checkpoint.claim_run_dir(self.logdir, cfg, RESUMABLE_FIELDS)
        self.ckpt = checkpoint.Checkpointer(self.logdir / "checkpoints", cfg.keep_checkpoints)
        self.clock = timing.PhaseClock()  # this session's seconds per phase

    def host_envs(self) -> Any:
        """The K x N envs of a host round: the lane's own env for one seed and one env,
        else worker processes for simulated tasks (`jaxplanet.envs.vector.make_batched`)."""
        from jaxplanet.envs import vector

        if self.cfg.num_envs * self.cfg.num_seeds == 1:
            return vector.InProcessEnvs([self.lanes[0].env])  # closed with its lane
        if self.batched_env is None:
            self.batched_env = vector.make_batched(
                self.cfg.env,
                self.cfg.num_envs * self.cfg.num_seeds,
                seed=self.cfg.seed,
                **scale.env_options(self.cfg),
            )
        return self.batched_env

    def close(self) -> None:
        for obj in (*self.lanes, self.batched_env, self.ckpt):
            if obj is not None:
                obj.close()


def train_and_evaluate(
    cfg: PlanetConfig, logdir: str | Path, preset: str = "", console_output: bool = True
) -> dict[str, Any]:
    """Runs or resumes a PlaNet experiment in ``logdir``; returns a summary of the run.

    Args:
      cfg: the experiment's config.
      logdir: run directory (resumed when it holds a run of the same config).
      preset: the preset's name, for the start banner only.
      console_output: print the start banner (the progress bar follows ``cfg.progress``).

    Returns:
      ``episodes``, ``env_steps``, ``grad_steps``, ``wall_seconds`` and ``cpu_seconds`` (this
      session; CPU: this process and its finished workers), ``time_shares``
      (`timing.PhaseClock.shares`: update, plan, env, eval, video, replay, checkpoint), the last
      ``eval_return`` (with ``eval_episode``, ``eval_episodes``), ``random_return``, the last
      ``train_return`` (one episode with exploration noise) and ``logdir``. With K seeds these
      are seed 0's, ``seeds`` lists every seed's and ``eval_return_mean`` / ``_std`` (and
      ``train_return_mean`` / ``_std``) summarise them.

    Raises:
      checkpoint.ConfigMismatchError: ``logdir`` holds a run with a different config.
      planet.NonFiniteLossError: a loss or gradient became NaN/inf (names step and terms).
      console.StopRequested: Ctrl-C; the run directory resumes from its last checkpoint.
    """
    cfg.validate()
    if cfg.debug_nans:
        jax.config.update("jax_debug_nans", True)
    began, began_cpu = time.perf_counter(), timing.cpu_seconds()
    run = Run(cfg, logdir)
    try:
        with console.StopOnInterrupt() as stop:
            summary = _loop(cfg, run, stop, preset, console_output)
    finally:
        run.close()
    plot.try_write_learning_curves(run.logdir)
    summary["wall_seconds"] = time.perf_counter() - began
    summary["cpu_seconds"] = timing.cpu_seconds() - began_cpu
    summary["time_shares"] = run.clock.shares(summary["wall_seconds"])
    per_seed = [_logged_returns(lane.logdir) for lane in run.lanes]
    summary.update(per_seed[0])
    if cfg.num_seeds > 1:  # seed 0's figures above; the spread over seeds here
        summary["seeds"] = per_seed
        for name in ("eval_return", "train_return", "random_return"):
            values = [r[name] for r in per_seed if name in r]
            if len(values) == len(per_seed):
                summary[f"{name}_mean"] = float(np.mean(values))
                summary[f"{name}_std"] = float(np.std(values))
    summary["logdir"] = str(run.logdir)
    return summary


def _logged_returns(logdir: Path) -> dict[str, Any]:
    """The last eval return, the random return and the last train return from metrics.jsonl."""
    out: dict[str, Any] = {}
    for row in logging_lib.read_metrics(logdir / logging_lib.METRICS_FILE):
        if "eval_return" in row:
            out.update(eval_return=row["eval_return"], eval_episodes=row.get("eval_episodes", 1))
            out["eval_episode"] = out.get("episode", 0)
        for k in ("random_return", "train_return", "episode"):
            if k in row:
                out[k] = row[k]
    out.pop("episode", None)
    return out


def _watched(
    policy: Callable[[np.ndarray, Any], np.ndarray],
    stop: console.StopOnInterrupt,
    bar: console.RunProgress,
    name: str,
    steps: int,
    clock: timing.PhaseClock | None = None,
    phase: str = "plan",
) -> Callable[[np.ndarray, Any], np.ndarray]:
    """``policy`` (one env's or a batch policy) that shows ``name i/steps`` on the bar,
    honours Ctrl-C at every step and charges its time to ``clock``'s ``phase``."""
    count = [0]

    def watched(obs: np.ndarray, is_first: Any) -> np.ndarray:
        stop.check()
        count[0] += 1
        bar.inner(name, count[0], steps)
        with clock(phase) if clock is not None else contextlib.nullcontext():
            return policy(obs, is_first)

    return watched


def _loop(
    cfg: PlanetConfig, run: Run, stop: console.StopOnInterrupt, preset: str, verbose: bool
) -> dict[str, Any]:
    # Every array carries a seed axis [K, ...]; a single run is K = 1 (`seeds.over_axis`).
    spec, roots, lanes = run.spec, run_state.root_keys(cfg), run.lanes
    action_dim, many = spec.action_dim, cfg.num_seeds > 1
    n_envs = cfg.num_envs
    fns = make_functions(cfg, action_dim, run.mesh, seed_axis=True)
    lane_fns = make_functions(scale.lane_config(cfg, 0), action_dim)  # evaluation, per seed
    act_fn = scale.make_act(cfg, action_dim, run.mesh)  # collection, all K x N envs

    # The checkpoint decides what the run has done; files beyond it are set aside (resume.py).
    train_state = run_state.fresh(cfg, roots, action_dim)
    restored = run.ckpt.restore(run_state.template(train_state, roots))
    progress, lane_steps = None, None
    if restored is not None:
        train_state, progress, lane_steps = run_state.restored(restored[1])
    for k, lane in enumerate(lanes):
        resumed = resume.reconcile(lane.logdir, progress, restored and restored[0])
        lane.logger = logging_lib.Logger(lane.logdir)
        lane.env_steps = (
            int(lane_steps[k]) if lane_steps is not None else resumed.progress.env_steps
        )
    progress = resumed.progress
    if run.mesh is not None:
        train_state = parallel.replicate(train_state, run.mesh)

    # Replay: the episodes the checkpoint covers are loaded once into a fresh buffer per seed.
    capacity = replay.capacity_from_bytes(int(cfg.replay_bytes), spec.obs_shape, action_dim)
    capacity = min(capacity, cfg.episodes * (spec.agent_steps + 1))

    def reloaded(lane: scale.Lane):  # streams the episodes so they are never held twice
        for episode in replay.iter_episodes(lane.episode_dir, limit=progress.episodes):
            lane.returns.append(float(episode["reward"].sum()))
            yield episode

    host = replay_device(cfg)
    with jax.default_device(host) if host is not None else contextlib.nullcontext():
        replay_state = seeds.stack(
            [
                replay.episodes_to_state(reloaded(lane), capacity, spec.obs_shape, action_dim)
                for lane in lanes
            ]
        )
    if host is not None:
        replay_state = jax.device_put(replay_state, host)
    evaluations = progress.evaluations
    if verbose:
        print(banner(cfg, run, preset, capacity, replay.nbytes(replay_state)), flush=True)
        if restored is not None or resumed.set_aside is not None:
            print(f"Resuming {run.logdir}: {resumed.message or 'nothing to redo'}.", flush=True)

    start = progress.episodes
    bar = console.RunProgress(cfg.episodes, start, "planet", enabled=cfg.progress)
    summary: dict[str, Any] = {}
    first_train = max(start, cfg.seed_episodes)  # its first update compiles
    clock = run.clock
    try:
        for index in range(start, cfg.episodes, n_envs):
            stop.check()
            began = time.perf_counter()
            train_rows: list[dict[str, Any]] = [{} for _ in lanes]
            random = index < cfg.seed_episodes
            name = "random" if random else "collect"
            if not random:
                grad_step = int(np.asarray(train_state.step).reshape(-1)[0])
                key = seeds.fold(roots, seeds.TRAIN, index)
                steps = cfg.train_steps * n_envs
                compiling = " (compiling the update)" if index == first_train else ""
                bar.phase(f"train 0/{steps}{compiling}")

                def on_update(i: int, steps: int = steps) -> None:
                    stop.check()
                    bar.inner("train", i + 1, steps)

                with clock("update"):
                    train_state, metrics = train(
                        fns, train_state, replay_state, key, steps, host is not None, on_update
                    )
                    metrics = jax.device_get(metrics)
                for k in range(len(lanes)):
                    lane_metrics = seeds.index(metrics, k)
                    _check_train_metrics(lane_metrics, grad_step, k if many else None)
                    train_rows[k] = {
                        f"train/{m}": v for m, v in _mean_metrics(lane_metrics).items()
                    }
                if index == first_train:
                    bar.phase(f"collect 0/{spec.agent_steps} (compiling the planner)")
            watch = functools.partial(
                _watched,
                stop=stop,
                bar=bar,
                name=name,
                steps=spec.agent_steps,
                clock=clock,
                phase="env" if random else "plan",  # random actions are not planning
            )
            with clock("env"):
                collected = scale.collect_round(
                    cfg,
                    lanes,
                    run.host_envs() if cfg.collect == "host" else None,
                    act_fn,
                    train_state.params,
                    roots,
                    index,
                    random,
                    seeds.COLLECT,
                    watch,
                )
            seconds = time.perf_counter() - began
            round_steps = sum(e["length"] for eps in collected for e in eps) * spec.action_repeat
            grad_steps = int(np.asarray(train_state.step).reshape(-1)[0])
            for j in range(n_envs):  # in index order: file, replay, log row
                episode_index = index + j
                for k, lane in enumerate(lanes):
                    episode = collected[k][j]
                    with clock("replay"):
                        arrays = episodes_lib.episode_arrays(episode)
                        replay.save_episode(lane.episode_dir, arrays, episode_index)
                        replay_state = scale.add_lane(replay_state, arrays, k)
                    lane.returns.append(episode["return"])
                    lane.env_steps += episode["length"] * spec.action_repeat
                    row: dict[str, Any] = {"episode": episode_index + 1}
                    row.update(train_rows[k] if j == 0 else {})
                    row.update(
                        {
                            "train_return": episode["return"],
                            "grad_steps": grad_steps,
                            "env_steps_per_second": round_steps / seconds,
                            **clock.row(),
                        }
                    )
                    if episode_index + 1 == cfg.seed_episodes:
                        row["random_return"] = float(np.mean(lane.returns[: cfg.seed_episodes]))
                    lane.logger.scalars(lane.env_steps, row)
                    if k == 0:
                        summary.update(row)
                        if "random_return" in row:
                            bar.set(random=row["random_return"])
                bar.set(
                    env_steps=str(lanes[0].env_steps),
                    updates=str(grad_steps),
                    train_ret=collected[0][j]["return"],
                )
            last = index + n_envs  # episodes done after this round
            due = cfg.eval_every and any(
                i >= cfg.seed_episodes and (i + 1) % cfg.eval_every == 0 for i in range(index, last)
            )
            if due:
                bar.phase("eval")
                for k, lane in enumerate(lanes):
                    params = seeds.index(train_state.params, k)
                    evaluated = evaluate(
                        lane.cfg,
                        lane,
                        lane_fns,
                        params,
                        lane.env_steps,
                        last - 1,
                        lambda p: _watched(p, stop, bar, "eval", spec.agent_steps),
                        clock,
                    )
                    if k == 0:
                        summary.update(evaluated)
                        bar.set(eval=evaluated["eval_return"])
                if many:
                    with clock("video"):
                        plot.try_write_learning_curves(run.logdir)
                evaluations += 1
            if any((i + 1) % cfg.checkpoint_every == 0 for i in range(index, last)) or (
                last == cfg.episodes
            ):
                bar.phase("checkpoint")
                done = resume.Progress(
                    last, lanes[0].env_steps, grad_steps, evaluations, lanes[0].logger.rows
                )
                steps_now = [lane.env_steps for lane in lanes]
                with clock("checkpoint"):
                    run.ckpt.save(
                        last,
                        run_state.saved(train_state, roots, done, steps_now),
                        config_lib.to_dict(cfg),
                    )
            per_episode = (time.perf_counter() - began) / n_envs
            bar.episode_done(per_episode, representative=index > first_train, count=n_envs)
    except BaseException:
        bar.close(interrupted=True)
        raise
    bar.phase("done")
    bar.close()
    grad_steps = int(np.asarray(train_state.step).reshape(-1)[0])
    return {"episodes": cfg.episodes, "env_steps": lanes[0].env_steps, "grad_steps": grad_steps}


def evaluate(
    cfg: PlanetConfig,
    run: scale.Lane,
    fns: Functions,
    params: Any,
    env_steps: int,
    index: int,
    wrap: Callable[[episodes_lib.Policy], episodes_lib.Policy] | None = None,
    clock: timing.PhaseClock | None = None,
) -> dict[str, Any]:
    """Noise-free evaluation in training; logs ``eval_return`` and writes an open-loop video.

    ``wrap`` decorates each episode's policy (progress display, Ctrl-C checks); ``clock``
    charges the episodes to ``eval`` and the video and plot to ``video``.
    """
    clock = clock or timing.PhaseClock()
    with clock("eval"):
        episodes = evaluate_episodes(cfg, fns, params, run.eval_env, index, wrap)
    returns = [e["return"] for e in episodes]
    row = {"eval_return": float(np.mean(returns)), "eval_episodes": len(returns)}
    run.logger.scalars(env_steps, row)
    with clock("video"):
        plot.try_write_learning_curves(run.logdir)
        if cfg.video and episodes:
            frames = open_loop_video(cfg, fns, params, episodes[0])
            run.logger.video(env_steps, "eval_open_loop", frames)
    return row

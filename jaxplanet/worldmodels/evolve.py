"""World Models' controller and evaluate stages: C evolved by CMA-ES, then scored in the real task.

The controller stage evolves C (evosax CMA-ES, `controllers.Evolution`) in M's dream, one
jitted generation of population x rollouts episodes (`dream.generation_returns`), or in the real
task with ``in_dream=false``. Every `eval_every` generations and at the last, the CMA-ES mean is
scored on min(`eval_episodes`, `rollouts_per_candidate`) real episodes and logged
(``controller/real_return_of_mean``); the final C is, as released (``log/*.best.json``), the mean
that scored best there (the first of equal scores; the best sample's fitness is optimistic under
noisy fitness), kept in the stage's checkpoints with its generation, so a resumed stage makes the
same choice (``eval_every=0``: the last mean). The evaluate stage scores the final C on
`eval_episodes` real episodes beside the paper's random policy (i.i.d. uniform actions every
step, `random_episodes` real episodes of their own seeds: `calibrate.random_baseline`),
prints both (mean +- std of the return, and of the steps survived for take_cover), writes them
and the chosen generation to ``evaluate.json`` and ``metrics.jsonl``, and renders a real-vs-dream
video (each half captioned with the step and the return so far). ``--mode=eval`` runs the same
measurement again under ``<logdir>/eval/``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.core import checkpoint, resume, video
from jaxplanet.core import config as config_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.worldmodels import controllers, dream, mdn_rnn, vae
from jaxplanet.worldmodels.calibrate import random_baseline
from jaxplanet.worldmodels.policies import ControllerPolicy
from jaxplanet.worldmodels.run import CTRL, EVAL, Run, finished, require, stage_state
from jaxplanet.worldmodels.train import world_model_params

__all__ = [
    "ControllerChoice",
    "controller_choice",
    "evaluate",
    "evaluated",
    "final_controller",
    "real_and_dream_video",
    "real_episodes",
    "real_returns",
    "train_controller",
]


def _evolution(run: Run) -> controllers.Evolution:
    """CMA-ES over C's flat parameters ((Z + H) * A + A of them, or (Z + 2H) * A for Doom's
    released C on [z, c, h] without a bias)."""
    return _make_evolution(*run.controller_dims(), run.cfg.population, run.cfg.sigma_init)


@functools.lru_cache(maxsize=16)
def _make_evolution(
    z: int, hidden: int, a: int, cell: bool, bias: bool, population: int, sigma: float
) -> controllers.Evolution:
    """One `Evolution` per shape: its ``unflatten`` is a static argument of the jitted dream and
    real rollouts, so a stage run again (resumed, more generations) reuses their compilations.
    C starts at zero (`controllers.init` with scale 0: the key does not matter)."""
    template = controllers.init(jax.random.key(0), z, hidden, a, cell=cell, bias=bias)
    return controllers.Evolution.make(template, population, sigma)


def real_returns(run: Run, params: Any, flats: jax.Array, es: Any, key: jax.Array, n: int):
    """Real-task returns f32 [P, n] of flat controllers [P, N] (episode seeds from `key`)."""
    return real_episodes(run, params, flats, es, key, n)[0]


def real_episodes(
    run: Run, params: Any, flats: jax.Array, es: Any, key: jax.Array, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """(returns f32 [P, n], lengths int [P, n] in agent steps) of flat controllers [P, N]."""
    if run.jax_env is not None:
        returns = np.asarray(
            _jax_real_returns(run.jax_env, run.dcfg, es.unflatten, params, flats, key, n)
        )
        return returns, np.full(returns.shape, run.spec.agent_steps)
    p = flats.shape[0]
    seed0 = int(jax.random.randint(key, (), 0, 2**30))
    seeds = [seed0 + i for i in range(p * n)]
    policy = ControllerPolicy(
        run, params, np.repeat(np.asarray(flats), n, axis=0), es.unflatten, key
    )
    eps = run.host_episodes(seeds, policy, record=False, desc="real rollouts")
    returns = np.asarray([e["return"] for e in eps], np.float32).reshape(p, n)
    return returns, np.asarray([e["length"] for e in eps]).reshape(p, n)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 6))
def _jax_real_returns(env, dcfg, unflatten, params, flats, key, n):
    """f32 [P, n] returns of flat controllers [P, N] on a pure-JAX task."""
    keys = jax.random.split(key, flats.shape[0] * n).reshape(flats.shape[0], n)

    def one(flat, k):
        return dream.jax_env_returns(env, params, dcfg, unflatten(flat), k, dcfg.max_steps)[0]

    return jax.vmap(lambda f, ks: jax.vmap(lambda k: one(f, k))(ks))(flats, keys)


def _choice_init(es: controllers.Evolution) -> dict[str, Any]:
    """No mean chosen yet: {"flat" f32 [N], "score" f32 [] (-inf), "generation" int32 [] (0)}."""
    return {
        "flat": es.mean0,
        "score": np.asarray(-np.inf, np.float32),
        "generation": np.asarray(0, np.int32),
    }


def _templates(run: Run, es: controllers.Evolution) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the controller stage's state, the one written before the choice was stored)."""
    legacy = {"es": es.init(run.key(CTRL, 2**31))}
    return {**legacy, "choice": _choice_init(es)}, legacy


def _legacy_checkpoint(run: Run, es: controllers.Evolution, step: int | None = None) -> bool:
    """Whether controller checkpoint ``step`` (default: the newest) predates the stored choice."""
    directory = run.logdir / "controller" / "checkpoints"
    if not directory.is_dir():
        return False
    new, legacy = ({**t, "progress": resume.Progress().as_dict()} for t in _templates(run, es))
    with checkpoint.Checkpointer(directory, create=False) as ck:
        steps = ck.steps()
        step = step if step is not None else (steps[-1] if steps else None)
        if step not in steps:
            return False
        for template, answer in ((new, False), (legacy, True)):
            try:
                ck.restore_step(step, template)
            except Exception:  # noqa: BLE001 — another layout (or a damaged checkpoint)
                continue
            return answer
    return False


def train_controller(run: Run, round: int = 0) -> dict[str, Any]:
    """The controller stage: evolves C with CMA-ES in the dream (or the real task) and keeps the
    mean that scored best at the periodic real evaluations. In a later ``round`` of iterative
    training a fresh CMA-ES (`sigma_init`) starts at the last round's chosen C in the round's
    dream, and the final C is chosen
    among the round's own evaluations (C reads M's state: it is scored with the M it acts on).
    """
    cfg, target = run.cfg, run.generation_target(round)
    if finished(run, "controller", target):
        print("controller: evolved C exists; skipped.")
        return {}
    params = world_model_params(run, "controller", round)
    es = _evolution(run)
    template, legacy = _templates(run, es)
    if _legacy_checkpoint(run, es):
        print(
            "controller: its checkpoints predate the stored choice of the final C; it is chosen "
            "among the evaluations from here on"
        )
        template = legacy
    ckpt, start, state, progress = stage_state(run, "controller", template)
    es_state, env_steps, evals = state["es"], progress.env_steps, progress.evaluations
    choice = state.get("choice", _choice_init(es))
    first = run.generation_target(round - 1) if round else 0
    require(run, "iterate", "controller", start >= first)
    if round and start == first:
        # A fresh CMA-ES (sigma_init) at C = 0 or around the last round's chosen C: the old
        # covariance fit the old dream. On Doom seed 1, continuing the whole state or starting
        # at the last C, the population stayed on the wall-pressing policy C had collected
        # (dream 155, real 168-180); from C = 0 the mean scored 531-590 real.
        flat = choice["flat"] if int(choice["generation"]) else es.mean(es_state)
        flat = es.mean0 if cfg.iteration_restart == "zero" else flat
        es_state = es.init(run.key(CTRL, 2**31 + round), mean=jnp.asarray(flat))
        choice = _choice_init(es)  # this round's M: chosen among this round's evaluations
    where = "dream" if run.r.in_dream else "real task"
    print(f"controller: CMA-ES in the {where}, generations {start} -> {target}")
    bar = logging_lib.progress(target, "controller", unit="gen", disable=not cfg.progress)
    bar.update(start)
    summary: dict[str, Any] = {}
    with ckpt, logging_lib.Logger(run.logdir / "controller") as logger:
        for g in range(start, target):
            k_ask, k_fit, k_tell, k_eval = jax.random.split(run.key(CTRL, g), 4)
            cands, es_state = es.ask(k_ask, es_state)
            if run.r.in_dream:
                fit = dream.generation_returns(
                    params, run.dcfg, run.r.temperature, cands, k_fit,
                    unflatten=es.unflatten, rollouts=cfg.rollouts_per_candidate,
                )  # fmt: skip
            else:
                fit = real_returns(run, params, cands, es, k_fit, cfg.rollouts_per_candidate)
                env_steps += int(fit.size * run.spec.episode_length)  # upper bound
            fitness = jnp.mean(jnp.asarray(fit), axis=1)
            es_state, _ = es.tell(k_tell, cands, fitness, es_state)
            row = {
                "controller/fitness_mean": float(jnp.mean(fitness)),
                "controller/fitness_max": float(jnp.max(fitness)),
                "controller/fitness_min": float(jnp.min(fitness)),
                "controller/best_fitness": float(es.best(es_state)[1]),
                "env_steps": env_steps,
            }
            if cfg.eval_every and ((g + 1) % cfg.eval_every == 0 or g + 1 == target):
                n = min(cfg.eval_episodes, cfg.rollouts_per_candidate)
                mean = es.mean(es_state)
                real = real_returns(run, params, mean[None], es, k_eval, n)
                score = np.float32(np.mean(real))
                # As released: the first evaluation, then only a strictly better one.
                if int(choice["generation"]) == 0 or score > choice["score"]:
                    gen = np.asarray(g + 1, np.int32)
                    choice = {"flat": mean, "score": np.asarray(score), "generation": gen}
                row["controller/real_return_of_mean"] = float(score)
                row["controller/chosen_generation"] = int(choice["generation"])
                evals += 1
            logger.scalars(g + 1, row)
            summary.update(row)
            progress = resume.Progress(
                env_steps=env_steps, evaluations=evals, metric_rows=logger.rows
            )
            tree = {"es": es_state, "choice": choice, "progress": progress.as_dict()}
            ckpt.save(g + 1, tree, config_lib.to_dict(cfg))
            bar.update(1)
            logging_lib.set_postfix(bar, {"return": row["controller/fitness_mean"]})
    bar.close()
    return summary


class ControllerChoice(NamedTuple):
    """The final C and where it comes from.

    Attributes:
      flat: f32 [N] (`controllers.num_params`); ctrl: its pytree for `dream.controller_action`;
      generation: the generation whose CMA-ES mean it is; real_return: its score at that
      generation's periodic real evaluation (nan: not evaluated, the last mean); round: the
      round of iterative training it comes from (it acts on that round's M).
    """

    flat: jax.Array
    ctrl: Any
    generation: int
    real_return: float
    round: int = 0


def controller_choice(
    run: Run, stage: str = "evaluate", round: int | None = None
) -> ControllerChoice:
    """The trained C of ``round``: the CMA-ES mean that scored best at the round's periodic
    real evaluations (the last mean with ``eval_every=0`` or from checkpoints written before
    the choice was stored). ``round`` None is the final C: with iterative training, the best
    of every round's choice by that score (the first of equal scores; a later round's dream can
    hold an exploit its CMA-ES finds, and the periodic real evaluations show it), each acting
    on its own round's M.

    Raises:
      MissingInputError: the controller stage has not finished (names the stage to run).
    """
    if round is None:
        return _best_round(run, stage)
    g = run.generation_target(round)
    require(run, stage, "controller", finished(run, "controller", g))
    es = _evolution(run)
    template, legacy = _templates(run, es)
    old = _legacy_checkpoint(run, es, g)
    tree = {**(legacy if old else template), "progress": resume.Progress().as_dict()}
    with checkpoint.Checkpointer(run.logdir / "controller" / "checkpoints", create=False) as ck:
        state = ck.restore_step(g, tree)
    choice = state.get("choice")
    if choice is None or int(choice["generation"]) == 0:
        flat = es.mean(state["es"])
        return ControllerChoice(flat, es.unflatten(flat), g, float("nan"), round)
    flat = jnp.asarray(choice["flat"])
    return ControllerChoice(
        flat, es.unflatten(flat), int(choice["generation"]), float(choice["score"]), round
    )


def _best_round(run: Run, stage: str) -> ControllerChoice:
    """The final C across rounds (`controller_choice` with ``round`` None)."""
    last = controller_choice(run, stage, run.final_round)  # first: names a missing stage
    directory = run.logdir / "controller" / "checkpoints"
    with checkpoint.Checkpointer(directory, create=False) as ck:
        c_steps = set(ck.steps())
    with checkpoint.Checkpointer(run.logdir / "mdn" / "checkpoints", create=False) as ck:
        m_steps = set(ck.steps())
    candidates = []
    for r in range(run.final_round):
        if run.generation_target(r) in c_steps and run.mdn_target(r) in m_steps:
            candidates.append(controller_choice(run, stage, r))
        else:
            print(f"{stage}: round {r}'s C or M checkpoint is gone (kept since a later version)")
    candidates.append(last)

    def score(c: ControllerChoice) -> float:
        return -np.inf if np.isnan(c.real_return) else c.real_return

    return max(candidates, key=score)  # the first (earliest round) of equal scores


def final_controller(run: Run, stage: str = "evaluate") -> tuple[jax.Array, Any]:
    """The trained C (`controller_choice`): the CMA-ES mean that scored best at the periodic
    real evaluations.

    Args:
      run: an opened run (``world_models.Run(cfg, logdir)``).
      stage: the stage asking, for the error message.

    Returns:
      (flat parameters f32 [N] (`controllers.num_params`), the controller pytree for
      `dream.controller_action`).

    Raises:
      MissingInputError: the controller stage has not finished (names the stage to run).
    """
    choice = controller_choice(run, stage)
    return choice.flat, choice.ctrl


def evaluated(run: Run) -> bool:
    """Whether the run's ``evaluate.json`` holds the final C of its current rounds (a finished
    run given more ``--iterations`` is scored again)."""
    path = run.logdir / "evaluate.json"
    return path.exists() and json.loads(path.read_text()).get("rounds", 1) == run.r.iterations


def evaluate(run: Run, directory: str | os.PathLike | None = None) -> dict[str, Any]:
    """The evaluate stage: the final C (`controller_choice`) on `eval_episodes` real episodes,
    beside `random_episodes` real episodes of i.i.d. uniform random actions (the paper's random
    policy, `calibrate.random_baseline`).

    Returns (and writes to ``evaluate.json`` and ``metrics.jsonl`` of ``directory``)
    eval_return_*, eval_length_* (agent steps per episode: take_cover's survival) and
    random_return_* / random_length_* (mean and std), still_return_* / still_length_* (standing
    still, C = 0, on C's episodes: the same env seeds), episode counts, controller_generation
    (whose CMA-ES mean C is) and controller_real_return (its periodic score; nan if none), and
    the path of the real-vs-dream video (``directory/videos``).

    ``directory`` None is the stage: the run directory, skipped when its ``evaluate.json``
    exists (the stored result is returned; when it is for other episode counts than the config
    asks, a line says so and points to ``--mode=eval``), unless it is for another number of
    rounds (`evaluated`): it is then kept as ``evaluate_<n>_rounds.json`` and C scored again.
    ``--mode=eval`` passes ``<logdir>/eval``: scored again every time, the run's own
    ``evaluate.json`` untouched.
    """
    cfg = run.cfg
    stage = directory is None
    directory = run.logdir if directory is None else Path(directory)
    path = directory / "evaluate.json"
    if stage and path.exists():
        stored = json.loads(path.read_text())
        rounds = stored.get("rounds", 1)
        if rounds != run.r.iterations:
            # --iterations changed on a finished run: its final C may be another round's
            aside = directory / f"evaluate_{rounds}_rounds.json"
            path.replace(aside)
            print(
                f"evaluate: {path} was for {rounds} round(s), the run now has "
                f"{run.r.iterations}; kept as {aside.name}, scoring the final C again"
            )
    if stage and path.exists():
        print(f"evaluate: {path} exists; skipped.")
        counts = (stored.get("eval_episodes"), stored.get("random_episodes"))
        if counts != (cfg.eval_episodes, cfg.random_episodes):
            print(
                f"evaluate: its result is for {counts[0]} real episodes of C and {counts[1]} of "
                f"random actions (now --eval_episodes={cfg.eval_episodes}, --random_episodes="
                f"{cfg.random_episodes}); to score the final C again run --mode=eval with the "
                f"same --logdir (it writes {run.logdir / 'eval'}/ and leaves evaluate.json)"
            )
        return stored
    choice = controller_choice(run, "evaluate")  # first: names the controller stage
    params = world_model_params(run, "evaluate", choice.round)
    es = _evolution(run)
    # C, and C = 0 (a = 0: take_cover's "stay", CarRacing's straight on) on the same episodes
    key, n = run.key(EVAL), cfg.eval_episodes
    returns, lengths = real_episodes(run, params, choice.flat[None], es, key, n)
    still, still_lengths = real_episodes(run, params, jnp.zeros_like(choice.flat)[None], es, key, n)
    returns, lengths, still, still_lengths = returns[0], lengths[0], still[0], still_lengths[0]
    random_returns, random_lengths = random_baseline(run)
    summary = {
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_length_mean": float(lengths.mean()),
        "eval_length_std": float(lengths.std()),
        "eval_episodes": int(returns.size),
        "random_return_mean": float(random_returns.mean()),
        "random_return_std": float(random_returns.std()),
        "random_length_mean": float(random_lengths.mean()),
        "random_length_std": float(random_lengths.std()),
        "random_episodes": int(random_returns.size),
        "still_return_mean": float(still.mean()),
        "still_return_std": float(still.std()),
        "still_length_mean": float(still_lengths.mean()),
        "still_length_std": float(still_lengths.std()),
        "controller_generation": choice.generation,
        "controller_real_return": choice.real_return,
        "controller_round": choice.round,
        "rounds": run.r.iterations,
    }
    unit = "steps survived" if run.r.reward == "survival" else "return"
    key = "length" if run.r.reward == "survival" else "return"
    print(
        f"evaluate: C (the CMA-ES mean of generation {choice.generation}"
        f"{f', round {choice.round}' if run.r.iterations > 1 else ''}) "
        f"{summary[f'eval_{key}_mean']:.1f} ± {summary[f'eval_{key}_std']:.1f} {unit} over "
        f"{summary['eval_episodes']} real episodes; i.i.d. random actions "
        f"{summary[f'random_{key}_mean']:.1f} ± {summary[f'random_{key}_std']:.1f} over "
        f"{summary['random_episodes']} real episodes; C = 0 (a = 0) "
        f"{summary[f'still_{key}_mean']:.1f} ± {summary[f'still_{key}_std']:.1f} on C's episodes"
    )
    with logging_lib.Logger(directory) as logger:
        logger.scalars(0, summary)
        video = real_and_dream_video(run, params, choice.ctrl)
        summary["video"] = str(logger.video(0, "real_vs_dream", video))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(summary, indent=2) + "\n")
    os.replace(tmp, path)
    return summary


def real_and_dream_video(run: Run, params: Any, ctrl: Any) -> np.ndarray:
    """uint8 [T, CAPTION + 128, 256, 3]: a real episode of C (left) beside M's dream from its
    first frame (right), each upscaled 2x under a caption with the step and the return so far
    (`video.step_captions`: ``real t=12 R=3.4``, ``dream ended R=5.0``)."""
    length = run.cfg.video_length
    key = run.key(EVAL, 1)
    if run.jax_env is not None:
        steps = min(length, run.spec.agent_steps)
        rewards, real, done = _jax_real_episode(run.jax_env, params, run.dcfg, ctrl, key, steps)
        real, rewards, done = np.asarray(real), np.asarray(rewards), np.asarray(done)
        real_end = int(np.argmax(done)) + 1 if done.any() else None
    else:
        flats = controllers.flatten(ctrl)[0][None]
        policy = ControllerPolicy(run, params, np.asarray(flats), controllers.flatten(ctrl)[1], key)
        episode = run.host_episodes([run.seed(EVAL, 0)], policy, record=True, desc="video")[0]
        real, rewards = episode["obs"][:length], episode["reward"][1:length]
        shown_all = len(real) == episode["length"] + 1
        real_end = len(real) - 1 if episode["terminated"] and shown_all else None
    mean, _ = vae.encode(params["vae"], run.r.vae, real[0])
    start = {**params, "initial_z": {"mean": mean[None], "std": jnp.zeros_like(mean)[None]}}
    env = dream.dream_env(start, dataclasses.replace(run.dcfg, max_steps=10**9), run.r.temperature)

    @jax.jit
    def dreamed(k):
        state, obs = env.reset(k)

        def body(s, _):
            s, o, r, d = env.step(s, dream.controller_action(ctrl, run.dcfg, s.z, s.carry))
            return s, (o, r, d)

        _, (frames, rewards, done) = jax.lax.scan(body, state, None, len(real) - 1)
        return jnp.concatenate([obs[None], frames]), rewards, done

    frames, d_rewards, d_done = (np.asarray(x) for x in dreamed(key))
    d_end = int(np.argmax(d_done)) + 1 if d_done.any() else None
    d_rewards = np.where(np.arange(len(d_rewards)) < (d_end or len(d_rewards)), d_rewards, 0.0)
    return video.side_by_side(
        [real, frames],
        [
            video.step_captions("real", rewards, real_end),
            video.step_captions("dream", d_rewards, d_end),
        ],
    )


@functools.partial(jax.jit, static_argnums=(0, 2, 5))
def _jax_real_episode(env, params, dcfg, ctrl, key, steps):
    """`dream.jax_env_returns`'s episode (the same keys, so the same frames) with its rewards:
    (rewards f32 [steps] (0 after the end), frames uint8 [steps + 1, 64, 64, 3], done [steps])."""
    k_reset, k_run = jax.random.split(key)
    state, obs = env.reset(k_reset)

    def body(c, k):
        s, o, carry, done = c
        a, carry, _ = dream.world_model_policy_step(params, dcfg, ctrl, carry, o, k)
        s, o, r, d = env.step(s, a)
        return (s, o, carry, done | d), (jnp.where(done, 0.0, r), o, done | d)

    init = (state, obs, mdn_rnn.initial_state(dcfg.mdn), jnp.zeros((), bool))
    _, (rewards, frames, done) = jax.lax.scan(body, init, jax.random.split(k_run, steps))
    return rewards, jnp.concatenate([obs[None], frames]), done

"""World Models' controller and evaluate stages: C evolved by CMA-ES, then scored in the real task.

The controller stage evolves C (evosax CMA-ES, `controllers.Evolution`) in M's dream, one
jitted generation of population x rollouts episodes (`dream.generation_returns`), or in the real
task with ``in_dream=false``. Every `eval_every` generations the CMA-ES mean is scored in the real
task. The evaluate stage scores the final C (the CMA-ES mean: the best sample's score is
optimistic under noisy fitness) on `eval_episodes` real episodes beside the random rollouts,
prints both (mean +- std of the return, and of the steps survived for take_cover), writes them to
``evaluate.json`` and ``metrics.jsonl``, and renders a real-vs-dream video.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet import checkpoint, controllers, dream, resume, vae
from jaxplanet import config as config_lib
from jaxplanet import logging as logging_lib
from jaxplanet.agents.world_models_data import load_rollouts
from jaxplanet.agents.world_models_run import (
    CTRL,
    EVAL,
    ControllerPolicy,
    Run,
    finished,
    require,
    stage_state,
)
from jaxplanet.agents.world_models_train import world_model_params

__all__ = [
    "evaluate",
    "final_controller",
    "real_and_dream_video",
    "real_episodes",
    "real_returns",
    "train_controller",
]


def _evolution(run: Run) -> controllers.Evolution:
    """CMA-ES over C's flat parameters ((Z + H) * A + A of them, or (Z + 2H) * A for Doom's
    released C on [z, c, h] without a bias)."""
    template = controllers.init(
        run.root,
        run.r.vae.z_dim,
        run.r.mdn.hidden,
        run.spec.action_dim,
        cell=run.r.c_input == "zch",
        bias=run.r.c_bias,
    )
    return controllers.Evolution.make(template, run.cfg.population, run.cfg.sigma_init)


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


def train_controller(run: Run) -> dict[str, Any]:
    """The controller stage: evolves C with CMA-ES in the dream (or the real task)."""
    cfg = run.cfg
    if finished(run, "controller", cfg.generations):
        print("controller: evolved C exists; skipped.")
        return {}
    params = world_model_params(run, "controller")
    es = _evolution(run)
    template = {"es": es.init(run.key(CTRL, 2**31))}
    ckpt, start, state, progress = stage_state(run, "controller", template)
    es_state, env_steps, evals = state["es"], progress.env_steps, progress.evaluations
    where = "dream" if run.r.in_dream else "real task"
    print(f"controller: CMA-ES in the {where}, generations {start} -> {cfg.generations}")
    bar = logging_lib.progress(cfg.generations, "controller", unit="gen", disable=not cfg.progress)
    bar.update(start)
    summary: dict[str, Any] = {}
    with ckpt, logging_lib.Logger(run.logdir / "controller") as logger:
        for g in range(start, cfg.generations):
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
            if cfg.eval_every and ((g + 1) % cfg.eval_every == 0 or g + 1 == cfg.generations):
                n = min(cfg.eval_episodes, cfg.rollouts_per_candidate)
                real = real_returns(run, params, es.mean(es_state)[None], es, k_eval, n)
                row["controller/real_return_of_mean"] = float(real.mean())
                evals += 1
            logger.scalars(g + 1, row)
            summary.update(row)
            progress = resume.Progress(
                env_steps=env_steps, evaluations=evals, metric_rows=logger.rows
            )
            ckpt.save(
                g + 1, {"es": es_state, "progress": progress.as_dict()}, config_lib.to_dict(cfg)
            )
            bar.update(1)
            logging_lib.set_postfix(bar, {"return": row["controller/fitness_mean"]})
    bar.close()
    return summary


def final_controller(run: Run, stage: str = "evaluate") -> tuple[jax.Array, Any]:
    """The trained C: the CMA-ES mean of the controller stage's last generation.

    Args:
      run: an opened run (``world_models.Run(cfg, logdir)``).
      stage: the stage asking, for the error message.

    Returns:
      (flat parameters f32 [N] (`controllers.num_params`), the controller pytree for
      `dream.controller_action`).

    Raises:
      MissingInputError: the controller stage has not finished (names the stage to run).
    """
    require(run, stage, "controller", finished(run, "controller", run.cfg.generations))
    es = _evolution(run)
    template = {"es": es.init(run.key(CTRL, 2**31)), "progress": resume.Progress().as_dict()}
    with checkpoint.Checkpointer(run.logdir / "controller" / "checkpoints", create=False) as ck:
        es_state = ck.restore_step(run.cfg.generations, template)["es"]
    flat = es.mean(es_state)
    return flat, es.unflatten(flat)


def evaluate(run: Run) -> dict[str, Any]:
    """The evaluate stage: the final C (CMA-ES mean) on `eval_episodes` real episodes.

    Returns (and writes to ``evaluate.json`` and the run's ``metrics.jsonl``) eval_return_*,
    eval_length_* (agent steps per episode: take_cover's survival) and random_return_* /
    random_length_* over the collected random rollouts (mean and std), episode counts, and the
    path of the real-vs-dream video.
    """
    cfg, path = run.cfg, run.logdir / "evaluate.json"
    if path.exists():
        print(f"evaluate: {path} exists; skipped.")
        return json.loads(path.read_text())
    flat, ctrl = final_controller(run, "evaluate")  # first: names the controller stage
    params = world_model_params(run, "evaluate")
    es = _evolution(run)
    returns, lengths = real_episodes(run, params, flat[None], es, run.key(EVAL), cfg.eval_episodes)
    returns, lengths = returns[0], lengths[0]
    random = [
        (float(ep["reward"].sum()), len(ep["obs"]) - 1)
        for _, ep in load_rollouts(run.logdir / "rollouts")
    ]
    random_returns = np.asarray([r for r, _ in random], np.float64)
    random_lengths = np.asarray([n for _, n in random], np.float64)

    def stat(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else float("nan")

    summary = {
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_length_mean": float(lengths.mean()),
        "eval_length_std": float(lengths.std()),
        "eval_episodes": int(returns.size),
        "random_return_mean": stat(random_returns),
        "random_return_std": float(random_returns.std()) if random_returns.size else float("nan"),
        "random_length_mean": stat(random_lengths),
        "random_length_std": float(random_lengths.std()) if random_lengths.size else float("nan"),
        "random_episodes": int(random_returns.size),
    }
    unit = "steps survived" if run.r.reward == "survival" else "return"
    key = "length" if run.r.reward == "survival" else "return"
    print(
        f"evaluate: C {summary[f'eval_{key}_mean']:.1f} ± {summary[f'eval_{key}_std']:.1f} "
        f"{unit} over {summary['eval_episodes']} real episodes; random actions "
        f"{summary[f'random_{key}_mean']:.1f} ± {summary[f'random_{key}_std']:.1f} over "
        f"{summary['random_episodes']} collected rollouts"
    )
    with logging_lib.Logger(run.logdir) as logger:
        logger.scalars(0, summary)
        video = real_and_dream_video(run, params, ctrl)
        summary["video"] = str(logger.video(0, "real_vs_dream", video))
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def real_and_dream_video(run: Run, params: Any, ctrl: Any) -> np.ndarray:
    """uint8 [T, 64, 128, 3]: a real episode (left) beside a dream from its first frame (right)."""
    length = run.cfg.video_length
    key = run.key(EVAL, 1)
    if run.jax_env is not None:
        _, real = jax.jit(dream.jax_env_returns, static_argnums=(0, 2, 5))(
            run.jax_env, params, run.dcfg, ctrl, key, min(length, run.spec.agent_steps)
        )
        real = np.asarray(real)
    else:
        flats = controllers.flatten(ctrl)[0][None]
        policy = ControllerPolicy(run, params, np.asarray(flats), controllers.flatten(ctrl)[1], key)
        real = run.host_episodes([run.seed(EVAL, 0)], policy, record=True, desc="video")[0]["obs"]
        real = real[:length]
    mean, _ = vae.encode(params["vae"], run.r.vae, real[0])
    start = {**params, "initial_z": {"mean": mean[None], "std": jnp.zeros_like(mean)[None]}}
    env = dream.dream_env(start, dataclasses.replace(run.dcfg, max_steps=10**9), run.r.temperature)

    @jax.jit
    def dreamed(k):
        state, obs = env.reset(k)

        def body(s, _):
            s, o, _, _ = env.step(s, dream.controller_action(ctrl, run.dcfg, s.z, s.carry))
            return s, o

        return jnp.concatenate([obs[None], jax.lax.scan(body, state, None, len(real) - 1)[1]])

    return np.concatenate([real, np.asarray(dreamed(key))], axis=2)

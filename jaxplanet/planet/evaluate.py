"""PlaNet's evaluation: noise-free episodes with the planner, in training and from a checkpoint.

* `evaluate_episodes`: the one evaluation of the agent (training and ``--mode=eval`` call it
  with the same env seeds and planning keys, so the same parameters give the same returns);
* `evaluate_run`: ``--mode=eval`` on a run directory's newest checkpoint;
* `planner_policy`: the host policy of one env (belief, CEM, exploration noise);
* `open_loop_video`: real frames beside the model's open-loop predictions.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet import envs
from jaxplanet.core import checkpoint, seeding, timing, video
from jaxplanet.core import config as config_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.planet import rssm, run_state, scale, seeds
from jaxplanet.planet.config import RESUMABLE_FIELDS, PlanetConfig
from jaxplanet.planet.functions import Functions, make_functions, root_key
from jaxplanet.planet.report import eval_banner

__all__ = [
    "evaluate_episodes",
    "evaluate_run",
    "open_loop_video",
    "planner_policy",
]


def planner_policy(
    fns: Functions, params: Any, cfg: PlanetConfig, action_dim: int, key: jax.Array, noise: float
) -> episodes_lib.Policy:
    """Host policy: keeps the belief, plans with CEM each step, adds exploration noise."""
    state = {"belief": rssm.initial_state(cfg.model), "prev": np.zeros(action_dim, np.float32)}
    counter = [0]

    def policy(obs: np.ndarray, is_first: bool) -> np.ndarray:
        step_key = jax.random.fold_in(key, counter[0])
        counter[0] += 1
        action, state["belief"] = fns.act(
            params, state["belief"], state["prev"], obs, jnp.asarray(is_first), step_key, noise
        )
        action = np.asarray(action, np.float32)
        state["prev"] = action
        return action

    return policy


def evaluate_episodes(
    cfg: PlanetConfig,
    fns: Functions,
    params: Any,
    env: envs.HostEnv,
    index: int,
    wrap: Callable[[episodes_lib.Policy], episodes_lib.Policy] | None = None,
) -> list[dict[str, Any]]:
    """The evaluation after episode ``index`` (0-based): ``cfg.eval_episodes`` noise-free episodes.

    The one evaluation of the agent: training (every ``eval_every`` episodes) and
    ``--mode=eval`` both call it, with the same env seeds and planning keys for the same
    ``index``, so the same parameters give the same returns.
    """
    root = jax.random.fold_in(root_key(cfg), seeds.EVAL)
    out = []
    for i in range(cfg.eval_episodes):
        key = jax.random.fold_in(root, index * 1000 + i)
        policy = planner_policy(fns, params, cfg, env.spec.action_dim, key, 0.0)
        policy = wrap(policy) if wrap is not None else policy
        out.append(episodes_lib.run_episode(env, policy, seed=seeding.eval_seed(index + 1, i)))
    return out


def open_loop_video(
    cfg: PlanetConfig, fns: Functions, params: Any, episode: dict[str, Any]
) -> np.ndarray:
    """uint8 [T, 18 + 128, 256, 3]: real frames (left) beside the model's frames (right).

    The model sees the first ``video_context`` frames, then predicts open loop from the
    recorded actions. Frames are upscaled 2x under captions ("real", "model: observed" /
    "model: open loop"); the model panel has a green border while it observes and a red one
    once it predicts open loop.
    """
    length = min(cfg.video_length, len(episode["obs"]))
    length = max(length, cfg.video_context + 1)
    batch = {k: jnp.asarray(episode[k][None, :length]) for k in ("obs", "action", "is_first")}
    predicted = np.asarray(fns.open_loop(params, batch, None))[0]
    steps, context = len(predicted), min(cfg.video_context, len(predicted))
    model_titles = ["model: observed"] * context + ["model: open loop"] * (steps - context)
    return video.side_by_side(
        [episode["obs"][:steps], predicted],
        [["real"] * steps, model_titles],
        [None, [video.GREEN] * context + [video.RED] * (steps - context)],
    )


def evaluate_run(
    logdir: str | Path, overrides: dict[str, str] | None = None, console_output: bool = True
) -> dict[str, Any]:
    """Loads the newest checkpoint of ``logdir`` and evaluates it with `evaluate_episodes`.

    The episodes are those of the in-training evaluation after the checkpoint's last episode
    (same env seeds and planning keys), so for a checkpoint at an evaluation episode the returns
    equal the logged ``eval_return``. Writes ``logdir/eval/metrics.jsonl`` and one open-loop
    video per episode under ``logdir/eval/videos`` (``logdir/seed_k/eval`` for each of K seeds;
    the summary then has seed 0's figures and ``seeds_eval_return_mean`` / ``_std`` over the
    seeds). ``overrides`` may change reporting fields only (e.g. eval_episodes). With
    ``console_output`` a short banner says what is scored, on what, and where it goes.
    """
    began, began_cpu = time.perf_counter(), timing.cpu_seconds()
    logdir = Path(logdir)
    _, cfg = checkpoint.load_eval_config(
        logdir, PlanetConfig, "PlaNet", RESUMABLE_FIELDS, overrides
    )
    env = scale.make_env(cfg, seed=cfg.seed + seeding.EVAL_ENV_OFFSET)
    spec = env.spec
    action_dim = spec.action_dim
    env.close()
    many = cfg.num_seeds > 1
    roots = run_state.root_keys(cfg)
    with checkpoint.Checkpointer(logdir / "checkpoints", create=False) as ckpt:
        restored = ckpt.restore(run_state.template(run_state.fresh(cfg, roots, action_dim), roots))
    if restored is None:
        raise config_lib.ConfigError(f"--logdir: no checkpoint in {logdir / 'checkpoints'}")
    train_state, progress, lane_steps = run_state.restored(restored[1])
    if console_output:
        print(eval_banner(cfg, spec, logdir, progress.episodes), flush=True)
    results = []
    for k in range(cfg.num_seeds):
        results.append(
            _evaluate_checkpoint(
                scale.lane_config(cfg, k),
                scale.lane_dir(logdir, cfg, k),
                seeds.index(train_state.params, k),
                lane_steps[k] if many else progress.env_steps,
                progress.episodes,
                f"seed_{k}: " if many else "",
            )
        )
    out: dict[str, Any] = {"checkpoint_episodes": progress.episodes, **results[0]}
    out.update(
        eval_episodes=cfg.eval_episodes,
        logdir=str(logdir),
        directory=str(scale.lane_dir(logdir, cfg, 0) / "eval"),
        wall_seconds=time.perf_counter() - began,
        cpu_seconds=timing.cpu_seconds() - began_cpu,
    )
    if many:
        means = [r["eval_return_mean"] for r in results]
        out.update(
            seeds_eval_return_mean=float(np.mean(means)),
            seeds_eval_return_std=float(np.std(means)),
        )
    return out


def _evaluate_checkpoint(
    cfg: PlanetConfig, logdir: Path, params: Any, env_steps: int, episodes: int, label: str = ""
) -> dict[str, Any]:
    """`evaluate_episodes` after episode ``episodes`` of one seed; writes ``logdir/eval``."""
    env = scale.make_env(cfg, seed=cfg.seed + seeding.EVAL_ENV_OFFSET)
    fns = make_functions(cfg, env.spec.action_dim)
    episodes_run = evaluate_episodes(cfg, fns, params, env, episodes - 1)
    env.close()
    with logging_lib.Logger(logdir / "eval") as logger:
        for i, episode in enumerate(episodes_run):
            logger.scalars(env_steps, {"eval_return": episode["return"], "eval_episode": i})
            if cfg.video:
                frames = open_loop_video(cfg, fns, params, episode)
                path = logger.video(env_steps + i, "eval_open_loop", frames)
                print(f"{label}episode {i}: return {episode['return']:.2f}, video {path}")
    returns = [e["return"] for e in episodes_run]
    return {
        "env_steps": env_steps,
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
    }

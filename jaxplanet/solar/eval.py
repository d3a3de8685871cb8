"""SOLAR evaluation: goal-reached figures, noise-free evaluation episodes and reconstruction
videos (Zhang et al., ICML 2019). Training and ``--mode=eval`` share `evaluate_episodes`, so
the same checkpoint gives the same returns in both."""

from __future__ import annotations

from typing import Any

import jax
import numpy as np

from jaxplanet import envs
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.core import seeding, video
from jaxplanet.envs import nav2d, reacher_solar
from jaxplanet.solar import model as solar
from jaxplanet.solar.config import SolarConfig
from jaxplanet.solar.policy import host_policy
from jaxplanet.solar.state import RunState

__all__ = [
    "SUCCESS",
    "EVAL_KEY",
    "success",
    "success_rate",
    "evaluate_episodes",
    "reconstruction_video",
    "evaluate",
]

EVAL_KEY = 2  # fold_in tag of the evaluation keys (after the run's train / collect tags)

#: Goal reached, from an episode dict (`episodes.run_episode`: ``reward`` [T+1], ``action``
#: [T+1]) and the action repeat, for the tasks that define a goal region.
SUCCESS = {
    "nav2d": lambda episode, repeat: nav2d.reached_goal(episode["reward"], repeat),
    # the finger in the target (dm_control pays 1 there)
    "reacher_easy": lambda episode, repeat: float(episode["reward"][-1]) > 0.0,
    # the fingertip within target + finger radius (0.06) of the target at the last step
    "reacher_solar": lambda episode, repeat: (
        float(reacher_solar.squared_distances(episode)[-1]) <= reacher_solar.REACHED**2
    ),
}


def success(env_name: str, episode: dict[str, Any], action_repeat: int) -> float | None:
    """1.0 / 0.0 when ``env_name`` defines a goal region and the episode ends in it, else None.

    Args:
      episode: an episode dict (`episodes.run_episode`) with ``reward`` and ``action`` records
        [T+1].
    """
    fn = SUCCESS.get(env_name)
    return None if fn is None else float(fn(episode, action_repeat))


def success_rate(name: str, successes: list[float | None]) -> dict[str, float]:
    """``{name: mean}`` of the known per-episode successes, or {} when the task has none."""
    known = [s for s in successes if s is not None]
    return {name: float(np.mean(known))} if known else {}


def evaluate_episodes(
    cfg: SolarConfig,
    fns: dict[str, Any],
    run: RunState,
    env: envs.HostEnv,
    phase: int,
    count: int,
) -> list[dict[str, Any]]:
    """The evaluation after phase ``phase``: ``count`` noise-free episodes of the run's policy
    (actions from the Kalman-filter mean of the latent, as in the released code).

    The one evaluation of the agent: training and ``--mode=eval`` both call it, with the same
    env seeds and keys for the same phase, so the same checkpoint gives the same returns.
    """
    A, n = env.spec.action_dim, cfg.model.latent
    key = jax.random.fold_in(jax.random.fold_in(jax.random.key(cfg.seed), EVAL_KEY), phase)
    out = []
    for i in range(count):
        pol = host_policy(fns, run, A, n, jax.random.fold_in(key, i), 0.0, cfg.model.frames)
        out.append(episodes_lib.run_episode(env, pol, seed=seeding.eval_seed(phase, i)))
    return out


def reconstruction_video(fns: dict[str, Any], run: RunState, episode: dict[str, Any]) -> np.ndarray:
    """uint8 [T+1, CAPTION + 128, 256, 3]: real frames (left) beside the smoothed
    reconstructions (right), each upscaled 2x under a caption (``real t=3 R=-1.2``,
    ``recon t=3``)."""
    b = solar.episode_batch(episode["obs"], episode["action"], episode["reward"])
    recon = fns["reconstruct"](run.train.params, run.train.q, b["obs"], b["action"])
    recon = np.asarray(recon * 255).astype(np.uint8)
    steps = len(episode["obs"])
    return video.side_by_side(
        [episode["obs"], recon],
        [
            video.step_captions("real", episode["reward"][1:]),
            [f"recon t={t}" for t in range(steps)],
        ],
    )


def evaluate(
    cfg: SolarConfig,
    fns: dict[str, Any],
    run: RunState,
    env: envs.HostEnv,
    logger: logging_lib.Logger,
    phase: int,
    env_steps: int,
) -> dict[str, Any]:
    """In-training evaluation: mean ``eval_return`` / ``eval_success`` of `evaluate_episodes`
    (and their count, ``eval_episodes``) and one reconstruction video."""
    episodes = evaluate_episodes(cfg, fns, run, env, phase, cfg.eval_episodes)
    repeat = env.spec.action_repeat
    row = {
        "eval_return": float(np.mean([e["return"] for e in episodes])),
        "eval_episodes": len(episodes),
    }
    row.update(success_rate("eval_success", [success(cfg.env, e, repeat) for e in episodes]))
    if cfg.video and episodes:
        logger.video(env_steps, "eval_reconstruction", reconstruction_video(fns, run, episodes[0]))
    return row

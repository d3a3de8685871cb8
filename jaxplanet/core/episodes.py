"""Running episodes of a host environment with any policy, in the shared record convention.

Record ``t`` of an episode is ``(obs_t, action_t, reward_t, is_first_t)`` where ``action_t`` led
to ``obs_t`` (zeros at the first step) and ``reward_t`` was received for it (0 at the first step).
An episode of ``n`` agent steps therefore has ``n + 1`` records.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from jaxplanet.envs.base import HostEnv

__all__ = [
    "Policy",
    "episode_arrays",
    "random_policy",
    "run_episode",
]

# policy(obs uint8[H,W,3], is_first) -> action float32[A] in [-1, 1]
Policy = Callable[[np.ndarray, bool], np.ndarray]


def run_episode(env: HostEnv, policy: Policy, seed: int) -> dict[str, Any]:
    """Runs one episode to termination or truncation.

    Args:
      env: host environment (``jaxplanet.envs.make``).
      policy: called once per agent step with the current observation.
      seed: environment seed for this episode's reset.

    Returns:
      Dict of arrays ``obs`` uint8 [T+1, H, W, 3], ``action`` float32 [T+1, A], ``reward``
      float32 [T+1], ``is_first`` bool [T+1], plus the scalar ``return`` and ``length``
      (agent steps ``T``).
    """
    action_dim = env.spec.action_dim
    obs, _ = env.reset(seed=seed)
    observations = [obs]
    actions = [np.zeros(action_dim, np.float32)]
    rewards = [0.0]
    is_first = True
    while True:
        action = np.asarray(policy(obs, is_first), np.float32)
        obs, reward, terminated, truncated, _ = env.step(action)
        is_first = False
        observations.append(obs)
        actions.append(np.clip(action, -1.0, 1.0))
        rewards.append(float(reward))
        if terminated or truncated:
            break
    episode = {
        "obs": np.stack(observations).astype(np.uint8),
        "action": np.stack(actions).astype(np.float32),
        "reward": np.asarray(rewards, np.float32),
        "is_first": np.arange(len(rewards)) == 0,
    }
    return {**episode, "return": float(np.sum(rewards)), "length": len(rewards) - 1}


def random_policy(action_dim: int, seed: int) -> Policy:
    """Uniform random actions in [-1, 1] from a seeded numpy generator."""
    rng = np.random.default_rng(seed)

    def policy(obs: np.ndarray, is_first: bool) -> np.ndarray:
        del obs, is_first
        return rng.uniform(-1.0, 1.0, action_dim).astype(np.float32)

    return policy


def episode_arrays(episode: dict[str, Any]) -> dict[str, np.ndarray]:
    """The four record arrays of an episode (what replay stores and disk keeps)."""
    return {k: episode[k] for k in ("obs", "action", "reward", "is_first")}

"""Nav2D: SOLAR's 2-D navigation task from 64x64 images, in pure JAX.

SOLAR (Zhang et al., ICML 2019, Sec. 6.1) evaluates on a 2-D point navigation task observed only
through images: the agent moves a point towards a fixed goal and is charged the squared distance.
Here (point_reach's renderer, so frames look alike across tasks, with the discs combined by a
per-channel maximum: where the agent covers the goal both stay visible, instead of the image
changing abruptly as the agent disc hides the goal disc -- with SOLAR's quadratic latent cost
that overlap put the cost's minimum beside the goal, docs/solar.md):

    pos_{t+1} = clip(pos_t + STEP * a_t, -1, 1),   a in [-1, 1]^2   (linear away from the walls)
    reward_t  = -|pos_{t+1} - GOAL|^2   (a cost, as LQR expects; summed over the action repeat)

Episodes start uniformly in START_CENTRE +- START_HALF_WIDTH (a narrow start distribution, as a
time-varying linear-Gaussian policy needs) and last 50 agent steps by default. A controller that
pushes straight at the goal gets there in ~10 steps. Returns over 256 episodes of 50 steps:
random actions about -106, zero actions -102, the oracle (`oracle_action`) about -6.

``random_start=True`` starts episodes uniformly anywhere in the arena instead (the released
SOLAR code collects its model-pretraining rollouts with ``random_start``; the task itself, its
policy rollouts and its evaluation keep the narrow start distribution).

Success (`reached_goal`): the episode ends in the goal region, |pos - GOAL| < GOAL_RADIUS after
the last agent step. Over 256 episodes of 30 steps: the oracle 100 %, Gaussian random actions
(std 0.5), uniform random actions and zero actions 0 %.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.envs import point_reach
from jaxplanet.envs.base import EnvSpec, JaxEnv, check_episode

__all__ = [
    "STEP",
    "GOAL",
    "START_CENTRE",
    "START_HALF_WIDTH",
    "GOAL_RADIUS",
    "DEFAULTS",
    "Nav2DState",
    "reward_fn",
    "reached_goal",
    "render",
    "make",
    "oracle_action",
]

STEP = 0.1
GOAL = (0.5, 0.5)
START_CENTRE = (-0.5, -0.5)
START_HALF_WIDTH = 0.2
GOAL_RADIUS = 0.2
DEFAULTS = {"action_repeat": 1, "episode_length": 50, "random_start": False}


@flax.struct.dataclass
class Nav2DState:
    """pos f32 [2] in [-1, 1]^2 and t int32 [] agent steps taken (add leading axes for batches)."""

    pos: jax.Array
    t: jax.Array


def reward_fn(pos: jax.Array) -> jax.Array:
    """Negative squared distance to the goal: pos [..., 2] -> [...]."""
    return -jnp.sum((pos - jnp.asarray(GOAL, pos.dtype)) ** 2, axis=-1)


def reached_goal(rewards: Any, action_repeat: int = 1) -> bool:
    """Whether an episode ended in the goal region, from its reward records alone.

    The last agent step's reward is -|pos - GOAL|^2 summed over the action repeat; the episode
    succeeds when its mean over the repeat is above -GOAL_RADIUS^2 (exactly |pos_T - GOAL| <
    GOAL_RADIUS for ``action_repeat=1``).

    Args:
      rewards: [T+1] reward records of an episode (or [T], the last entry is used).
    """
    last = float(np.asarray(rewards)[-1]) / action_repeat
    return last > -(GOAL_RADIUS**2)


def render(state: Nav2DState) -> jax.Array:
    """uint8 [64, 64, 3]: the agent disc and the goal disc (point_reach's renderer), each colour
    channel keeping its maximum so the goal stays visible under the agent (module docstring)."""
    scene = point_reach.PointReachState(
        pos=state.pos,
        vel=jnp.zeros_like(state.pos),
        target=jnp.asarray(GOAL, jnp.float32),
        t=state.t,
    )
    return point_reach.render(scene, blend="max")


def make(action_repeat: int = 1, episode_length: int = 50, random_start: bool = False) -> JaxEnv:
    """Builds Nav2D as a `JaxEnv` (action_dim 2).

    Args:
      action_repeat: env steps per agent step.
      episode_length: env steps per episode.
      random_start: start uniformly in [-1, 1]^2 (the whole arena) instead of the task's
        START_CENTRE +- START_HALF_WIDTH (for model-pretraining data, as the released code).
    """
    check_episode(action_repeat, episode_length)
    action_repeat, episode_length = int(action_repeat), int(episode_length)
    spec = EnvSpec("nav2d", (64, 64, 3), 2, action_repeat, episode_length)
    max_t = episode_length // action_repeat
    centre = jnp.asarray(START_CENTRE, jnp.float32)
    half = START_HALF_WIDTH
    if random_start:
        centre, half = jnp.zeros(2, jnp.float32), 1.0

    def reset(key: jax.Array) -> tuple[Nav2DState, jax.Array]:
        offset = jax.random.uniform(key, (2,), jnp.float32, -half, half)
        state = Nav2DState(pos=centre + offset, t=jnp.zeros((), jnp.int32))
        return state, render(state)

    def transition(
        state: Nav2DState, action: jax.Array, key: jax.Array | None = None
    ) -> tuple[Nav2DState, jax.Array]:
        """(state, action f32 [2], key) -> (state, reward f32 []); deterministic, key ignored."""
        del key
        a = jnp.asarray(action, jnp.float32)
        a = jnp.where(jnp.isnan(a), 0.0, jnp.clip(a, -1.0, 1.0))

        def body(pos, _):
            pos = jnp.clip(pos + STEP * a, -1.0, 1.0)
            return pos, reward_fn(pos)

        pos, rewards = jax.lax.scan(body, state.pos, None, action_repeat)
        return Nav2DState(pos=pos, t=state.t + 1), jnp.sum(rewards)

    def step(state: Nav2DState, action: jax.Array):
        """(state, action) -> (state, obs uint8 [64, 64, 3], reward f32 [], done bool [])."""
        state, reward = transition(state, action)
        return state, render(state), reward, state.t >= max_t

    return JaxEnv(spec=spec, reset=reset, step=step, transition=transition, render=render)


def oracle_action(state: Nav2DState, gain: float = 10.0) -> jax.Array:
    """Proportional controller straight at the goal: f32 [2] in [-1, 1]."""
    return jnp.clip(gain * (jnp.asarray(GOAL) - state.pos), -1.0, 1.0)

"""PointReach: a pure-JAX pixel reaching task for fast tests of PlaNet-style agents.

A point mass moves in the box [-1, 1]^2 under a 2-D force action in [-1, 1]^2 and must reach
a target drawn at reset: one of four fixed spots (+-0.5, +-0.5) for ``point_reach`` (the agent
must still read from the image which one), uniform in [-0.8, 0.8]^2 for
``point_reach_uniform`` (harder to learn from few episodes: every episode shows one new target).

Observations are 64x64x3 uint8 images rendered with pure `jnp` (anti-aliased discs), so
reset/step/render jit and vmap like any other JAX function, and `transition` (dynamics +
reward without rendering) is the true simulator for planners.

Dynamics per env step (semi-implicit Euler with linear damping):
    vel <- DAMPING * vel + GAIN * force        (terminal speed GAIN / (1 - DAMPING) = 1.0)
    pos <- pos + DT * vel                       (so at most 0.1 per env step and axis)
    walls: pos clamped to [-1, 1]; the velocity component into a wall is set to 0.
Start positions are uniform in [-0.8, 0.8]^2. A controller that pushes straight
at the target reaches any target within 10 agent steps (action_repeat=2).

Reward per env step (dense, in [0, 1]), summed over the action repeat:
    r = 0.9 * exp(-d^2 / (2 * 0.25^2)) + 0.1 * (1 - d / (2 * sqrt(2))),   d = |pos - target|
The Gaussian bump rewards being on the target; the small linear term gives a signal from
anywhere in the box (so planning on the true simulator sees which way to go). Over 256
episodes of 100 env steps a random policy returns ~15 (~0.15 per env step), the oracle
controller ~92 (see tests/envs/test_point_reach.py).
"""

from __future__ import annotations

import math

import flax.struct
import jax
import jax.numpy as jnp

from jaxplanet.envs.base import EnvSpec, JaxEnv, check_episode

__all__ = [
    "DEFAULTS",
    "PointReachState",
    "TARGET_SPOTS",
    "make",
    "oracle_action",
    "physics_step",
    "render",
    "reward_fn",
]

DT = 0.1
DAMPING = 0.8
GAIN = 0.2
SPAWN = 0.8  # start (and uniform targets) in [-SPAWN, SPAWN]^2
TARGET_SPOTS = ((0.5, 0.5), (-0.5, 0.5), (-0.5, -0.5), (0.5, -0.5))  # targets="spots"
TARGETS = ("spots", "uniform")
REWARD_SIGMA = 0.25
MAX_DIST = 2.0 * math.sqrt(2.0)

SIZE = 64
AGENT_RADIUS = 0.2  # world units (5.3 px): large enough that a pixel likelihood must model it
TARGET_RADIUS = 0.25  # 6.7 px
_MARGIN = AGENT_RADIUS  # world box [-1-m, 1+m] fills the image, so the agent stays visible
BACKGROUND = (16, 18, 22)
FLOOR = (48, 52, 60)
TARGET_COLOUR = (60, 220, 90)
AGENT_COLOUR = (250, 90, 40)

DEFAULTS = {"action_repeat": 2, "episode_length": 100}


@flax.struct.dataclass
class PointReachState:
    """State of one PointReach episode (add leading axes for batches).

    Attributes:
      pos: f32 [2] agent position in [-1, 1]^2.
      vel: f32 [2] agent velocity.
      target: f32 [2] target position.
      t: int32 [] agent steps taken in this episode.
    """

    pos: jax.Array
    vel: jax.Array
    target: jax.Array
    t: jax.Array


def reward_fn(pos: jax.Array, target: jax.Array) -> jax.Array:
    """Dense reward in [0, 1] for one env step. pos, target: [..., 2] -> [...]."""
    d = jnp.linalg.norm(pos - target, axis=-1)
    bump = jnp.exp(-(d**2) / (2.0 * REWARD_SIGMA**2))
    return 0.9 * bump + 0.1 * (1.0 - d / MAX_DIST)


def physics_step(pos: jax.Array, vel: jax.Array, force: jax.Array) -> tuple[jax.Array, jax.Array]:
    """One env step of the damped point mass. pos, vel, force: [2]."""
    vel = DAMPING * vel + GAIN * force
    pos = pos + DT * vel
    hit = jnp.abs(pos) > 1.0
    return jnp.clip(pos, -1.0, 1.0), jnp.where(hit, 0.0, vel)


def _sanitize(action: jax.Array) -> jax.Array:
    """Clips to [-1, 1]; NaN entries become 0 (host adapters reject NaN before this)."""
    action = jnp.asarray(action, jnp.float32)
    return jnp.where(jnp.isnan(action), 0.0, jnp.clip(action, -1.0, 1.0))


def _disc_alpha(rows: jax.Array, cols: jax.Array, centre_px: jax.Array, radius_px: float):
    """Anti-aliased coverage of a disc: 1 inside, linear 1-pixel ramp at the edge."""
    dist = jnp.sqrt((rows - centre_px[0]) ** 2 + (cols - centre_px[1]) ** 2)
    return jnp.clip(radius_px - dist + 0.5, 0.0, 1.0)[..., None]


def _to_pixels(xy: jax.Array) -> jax.Array:
    """World (x right, y up) -> (row, col) of pixel centres."""
    scale = SIZE / (2.0 * (1.0 + _MARGIN))
    col = (xy[0] + 1.0 + _MARGIN) * scale - 0.5
    row = (1.0 + _MARGIN - xy[1]) * scale - 0.5
    return jnp.stack([row, col])


def render(state: PointReachState, blend: str = "over") -> jax.Array:
    """Draws the scene. Returns uint8 [64, 64, 3] (vmap for batches).

    ``blend``: "over" paints the agent disc over the target disc; "max" keeps each colour
    channel's maximum, so the target stays visible under the agent (nav2d's drawing).
    """
    if blend not in ("over", "max"):
        raise ValueError(f"blend must be 'over' or 'max', got {blend!r}")
    scale = SIZE / (2.0 * (1.0 + _MARGIN))
    idx = jnp.arange(SIZE, dtype=jnp.float32)
    rows, cols = idx[:, None], idx[None, :]
    # Floor: the reachable box [-1, 1]^2, slightly lighter than the margin around it.
    lo, hi = _to_pixels(jnp.array([-1.0, 1.0])), _to_pixels(jnp.array([1.0, -1.0]))
    inside = (rows >= lo[0]) & (rows <= hi[0]) & (cols >= lo[1]) & (cols <= hi[1])
    img = jnp.where(inside[..., None], jnp.array(FLOOR, jnp.float32), jnp.array(BACKGROUND))
    img = img.astype(jnp.float32)
    for centre, radius, colour in (
        (state.target, TARGET_RADIUS, TARGET_COLOUR),
        (state.pos, AGENT_RADIUS, AGENT_COLOUR),
    ):
        alpha = _disc_alpha(rows, cols, _to_pixels(centre), radius * scale)
        drawn = (1.0 - alpha) * img + alpha * jnp.array(colour, jnp.float32)
        img = drawn if blend == "over" else jnp.maximum(img, drawn)
    return jnp.round(img).astype(jnp.uint8)


def make(action_repeat: int = 2, episode_length: int = 100, targets: str = "spots") -> JaxEnv:
    """Builds PointReach as a `JaxEnv`.

    Args:
      action_repeat: env steps per agent step (default 2).
      episode_length: env steps per episode (default 100, i.e. 50 agent steps at repeat 2).
      targets: "spots" (one of `TARGET_SPOTS`, uniformly) or "uniform" (in [-0.8, 0.8]^2).

    Returns:
      `JaxEnv` with spec action_dim=2 and pure reset/step/transition/render.
    """
    check_episode(action_repeat, episode_length)
    if targets not in TARGETS:
        raise ValueError(f"targets: must be one of {TARGETS}, got {targets!r}")
    action_repeat, episode_length = int(action_repeat), int(episode_length)
    name = "point_reach" if targets == "spots" else f"point_reach_{targets}"
    spec = EnvSpec(name, (SIZE, SIZE, 3), 2, action_repeat, episode_length)
    spots = jnp.asarray(TARGET_SPOTS, jnp.float32)
    max_t = episode_length // action_repeat

    def reset(key: jax.Array) -> tuple[PointReachState, jax.Array]:
        """key -> (state, obs uint8 [64, 64, 3])."""
        k_pos, k_target = jax.random.split(key)
        state = PointReachState(
            pos=jax.random.uniform(k_pos, (2,), jnp.float32, -SPAWN, SPAWN),
            vel=jnp.zeros((2,), jnp.float32),
            target=(
                spots[jax.random.randint(k_target, (), 0, len(TARGET_SPOTS))]
                if targets == "spots"
                else jax.random.uniform(k_target, (2,), jnp.float32, -SPAWN, SPAWN)
            ),
            t=jnp.zeros((), jnp.int32),
        )
        return state, render(state)

    def transition(
        state: PointReachState, action: jax.Array, key: jax.Array | None = None
    ) -> tuple[PointReachState, jax.Array]:
        """(state, action f32 [2], key) -> (state, reward f32 [] summed over the repeats).

        Deterministic: `key` is accepted for the planners' `step(state, action, key)` protocol
        and ignored.
        """
        del key
        force = _sanitize(action)

        def body(carry, _):
            pos, vel = physics_step(*carry, force)
            return (pos, vel), reward_fn(pos, state.target)

        (pos, vel), rewards = jax.lax.scan(body, (state.pos, state.vel), None, action_repeat)
        new = state.replace(pos=pos, vel=vel, t=state.t + 1)
        return new, jnp.sum(rewards)

    def step(state: PointReachState, action: jax.Array):
        """(state, action f32 [2]) -> (state, obs uint8 [64,64,3], reward f32 [], done bool [])."""
        state, reward = transition(state, action)
        return state, render(state), reward, state.t >= max_t

    return JaxEnv(spec=spec, reset=reset, step=step, transition=transition, render=render)


def oracle_action(state: PointReachState, gain: float = 3.0, damping: float = 1.0) -> jax.Array:
    """PD controller that drives straight at the target: f32 [2] in [-1, 1] (vmap for batches)."""
    return jnp.clip(gain * (state.target - state.pos) - damping * state.vel, -1.0, 1.0)

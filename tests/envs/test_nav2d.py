"""Nav2D: shapes, linear dynamics, registry, and returns of random vs oracle policies."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet import envs
from jaxplanet.envs import nav2d, point_reach


def test_reset_step_shapes_and_linear_dynamics():
    env = envs.make_jax("nav2d")
    assert env.spec.action_dim == 2 and env.spec.agent_steps == 50
    state, obs = env.reset(jax.random.key(0))
    assert obs.shape == (64, 64, 3) and obs.dtype == jnp.uint8
    a = jnp.array([0.5, -1.0])
    new, obs2, reward, done = env.step(state, a)
    np.testing.assert_allclose(new.pos, state.pos + nav2d.STEP * a, atol=1e-6)
    # The cost is the squared distance to the goal (0.5, 0.5) after the step.
    want = -np.sum((np.asarray(state.pos, np.float64) + 0.1 * np.array([0.5, -1.0]) - 0.5) ** 2)
    np.testing.assert_allclose(float(reward), want, rtol=1e-5)
    assert not bool(done)
    assert not np.array_equal(np.asarray(obs), np.asarray(obs2))
    new_t, r_t = env.transition(state, a, jax.random.key(1))
    np.testing.assert_allclose(new_t.pos, new.pos)
    assert float(r_t) == float(reward)


def test_host_env_and_oracle_beats_random():
    env = envs.make("nav2d", seed=0, episode_length=30)
    obs, _ = env.reset()
    assert obs.shape == (64, 64, 3)
    jenv = nav2d.make()

    def rollout(policy, key):
        state, _ = jenv.reset(key)

        def body(state, k):
            state, r = jenv.transition(state, policy(state, k))
            return state, r

        _, rewards = jax.lax.scan(body, state, jax.random.split(key, 50))
        return rewards.sum()

    keys = jax.random.split(jax.random.key(0), 64)
    rand = jax.vmap(lambda k: rollout(lambda s, k2: jax.random.uniform(k2, (2,), minval=-1), k))
    oracle = jax.vmap(lambda k: rollout(lambda s, k2: nav2d.oracle_action(s), k))
    r_rand, r_oracle = float(rand(keys).mean()), float(oracle(keys).mean())
    # Measured over 256 episodes: random about -106, oracle about -6 (zero action: -102).
    assert r_oracle > -8.0 and r_rand < 5 * r_oracle, (r_rand, r_oracle)


def test_reached_goal_from_reward_records():
    near = -((0.5 * nav2d.GOAL_RADIUS) ** 2)
    far = -((2.0 * nav2d.GOAL_RADIUS) ** 2)
    assert nav2d.reached_goal(np.array([0.0, far, near]))
    assert not nav2d.reached_goal(np.array([0.0, near, far]))
    assert nav2d.reached_goal(np.array([0.0, 4 * near]), action_repeat=4)


def test_random_start_covers_the_arena_and_the_task_start_stays_narrow():
    keys = jax.random.split(jax.random.key(0), 256)
    task = jax.vmap(nav2d.make().reset)(keys)[0].pos
    spread = jax.vmap(nav2d.make(random_start=True).reset)(keys)[0].pos
    centre = np.asarray(nav2d.START_CENTRE)
    assert np.all(np.abs(np.asarray(task) - centre) <= nav2d.START_HALF_WIDTH + 1e-6)
    spread = np.asarray(spread)
    assert np.all(np.abs(spread) <= 1.0)
    # Every quadrant of the arena, the goal's included, holds some starts.
    for sx in (-1, 1):
        for sy in (-1, 1):
            assert np.sum((np.sign(spread[:, 0]) == sx) & (np.sign(spread[:, 1]) == sy)) > 32
    assert envs.make_jax("nav2d", random_start=True).spec.action_dim == 2


def test_the_goal_stays_visible_under_the_agent():
    # The agent disc on the goal: nav2d keeps each channel's maximum, so the goal's green shows
    # through; point_reach's default paints the agent over it.
    state = nav2d.Nav2DState(jnp.asarray(nav2d.GOAL, jnp.float32), jnp.int32(0))
    frame = np.asarray(nav2d.render(state)).astype(int)
    goal_px = np.argwhere(frame[..., 1] == point_reach.TARGET_COLOUR[1])
    scene = point_reach.PointReachState(
        state.pos, jnp.zeros(2), jnp.asarray(nav2d.GOAL, jnp.float32), state.t
    )
    over = np.asarray(point_reach.render(scene)).astype(int)
    centre = tuple(np.round(goal_px.mean(0)).astype(int))
    assert tuple(frame[centre]) == (
        point_reach.AGENT_COLOUR[0],
        point_reach.TARGET_COLOUR[1],
        max(point_reach.AGENT_COLOUR[2], point_reach.TARGET_COLOUR[2]),
    )
    assert tuple(over[centre]) == point_reach.AGENT_COLOUR
    with pytest.raises(ValueError, match="blend"):
        point_reach.render(scene, blend="add")

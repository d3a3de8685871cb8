"""Tests for jaxplanet/envs/point_reach.py: dynamics and reward closed forms, jit/vmap, adapter."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet import envs
from jaxplanet.envs import point_reach as pr


@pytest.fixture(scope="module")
def env():
    return envs.make_jax("point_reach")


def _state(pos, vel=(0.0, 0.0), target=(0.5, 0.5), t=0):
    f = lambda x: jnp.asarray(x, jnp.float32)
    return pr.PointReachState(f(pos), f(vel), f(target), jnp.asarray(t, jnp.int32))


def test_spec_and_shapes(env):
    assert env.spec == envs.EnvSpec("point_reach", (64, 64, 3), 2, 2, 100)
    assert env.spec.agent_steps == 50
    state, obs = env.reset(jax.random.PRNGKey(0))
    assert obs.shape == (64, 64, 3) and obs.dtype == jnp.uint8
    assert np.all(np.abs(state.pos) <= pr.SPAWN) and np.all(np.abs(state.target) <= pr.SPAWN)
    state, obs, reward, done = env.step(state, jnp.array([0.3, -0.2]))
    assert obs.shape == (64, 64, 3) and obs.dtype == jnp.uint8
    assert reward.shape == () and reward.dtype == jnp.float32 and done.dtype == jnp.bool_
    assert 0.0 <= float(reward) <= env.spec.action_repeat  # per env step in [0, 1]


def test_targets_spots_and_uniform():
    keys = jax.random.split(jax.random.PRNGKey(1), 200)
    spots = np.asarray(jax.vmap(envs.make_jax("point_reach").reset)(keys)[0].target)
    found = {tuple(np.round(t, 6)) for t in spots}
    assert found == set(pr.TARGET_SPOTS)  # all four spots and nothing else
    uniform_env = envs.make_jax("point_reach_uniform")
    assert uniform_env.spec.name == "point_reach_uniform"
    targets = np.asarray(jax.vmap(uniform_env.reset)(keys)[0].target)
    assert len({tuple(t) for t in targets}) == 200 and np.all(np.abs(targets) <= pr.SPAWN)
    assert targets.min() < -0.7 and targets.max() > 0.7
    with pytest.raises(ValueError, match="targets"):
        pr.make(targets="ring")


def test_dynamics_closed_form():
    """From rest with constant force f over 2 env steps: v = 0.2f, 0.36f; p = 0.02f, 0.056f."""
    env = pr.make(action_repeat=2)
    f = np.array([1.0, -0.5], np.float32)
    state, reward = env.transition(_state((0.0, 0.0)), f)
    np.testing.assert_allclose(state.vel, 0.36 * f, rtol=1e-6)
    np.testing.assert_allclose(state.pos, 0.056 * f, rtol=1e-6)
    expected = pr.reward_fn(jnp.asarray(0.02 * f), jnp.array([0.5, 0.5])) + pr.reward_fn(
        jnp.asarray(0.056 * f), jnp.array([0.5, 0.5])
    )
    np.testing.assert_allclose(reward, expected, rtol=1e-6)
    assert int(state.t) == 1
    # Terminal velocity GAIN / (1 - DAMPING) under a constant unit force.
    pos, vel = jnp.zeros(2), jnp.zeros(2)
    for _ in range(200):
        pos, vel = pr.physics_step(jnp.zeros(2), vel, jnp.ones(2))
    np.testing.assert_allclose(vel, pr.GAIN / (1 - pr.DAMPING), rtol=1e-5)


def test_walls_clamp_position_and_stop_velocity():
    pos, vel = pr.physics_step(jnp.array([0.99, 0.0]), jnp.array([1.0, 0.5]), jnp.ones(2))
    np.testing.assert_allclose(pos, [1.0, 0.0 + pr.DT * (0.8 * 0.5 + 0.2)], rtol=1e-6)
    np.testing.assert_allclose(vel, [0.0, 0.8 * 0.5 + 0.2], rtol=1e-6)


def test_reward_known_values():
    target = jnp.zeros(2)
    np.testing.assert_allclose(pr.reward_fn(target, target), 1.0, rtol=1e-6)
    d = 0.25  # one sigma: 0.9 * e^-0.5 + 0.1 * (1 - d / 2 sqrt 2)
    want = 0.9 * np.exp(-0.5) + 0.1 * (1 - d / (2 * np.sqrt(2)))
    np.testing.assert_allclose(pr.reward_fn(jnp.array([d, 0.0]), target), want, rtol=1e-6)
    corner = pr.reward_fn(jnp.array([1.0, 1.0]), jnp.array([-1.0, -1.0]))
    assert float(corner) < 1e-6


def test_jit_and_vmap_match_unbatched(env):
    keys = jax.random.split(jax.random.PRNGKey(1), 4)
    actions = jax.random.uniform(jax.random.PRNGKey(2), (4, 2), minval=-1.5, maxval=1.5)
    b_state, b_obs = jax.jit(jax.vmap(env.reset))(keys)
    b_next = jax.jit(jax.vmap(env.step))(b_state, actions)
    b_trans = jax.vmap(env.transition)(b_state, actions)
    for i in range(4):
        state, obs = env.reset(keys[i])
        np.testing.assert_allclose(b_state.pos[i], state.pos, rtol=1e-6)
        np.testing.assert_allclose(b_obs[i], obs, atol=1)
        n_state, n_obs, reward, done = env.step(state, actions[i])
        np.testing.assert_allclose(b_next[0].pos[i], n_state.pos, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(b_next[1][i], n_obs, atol=1)
        np.testing.assert_allclose(b_next[2][i], reward, rtol=1e-5)
        np.testing.assert_allclose(b_trans[1][i], reward, rtol=1e-5)
        assert bool(b_next[3][i]) == bool(done)


def test_jax_env_passes_through_jit_as_an_argument(env):
    assert jax.tree.leaves(env) == []  # every field is static
    state, _ = env.reset(jax.random.PRNGKey(0))
    run = jax.jit(lambda e, s, a: e.transition(s, a))
    got = run(env, state, jnp.ones(2))
    want = env.transition(state, jnp.ones(2))
    np.testing.assert_allclose(got[1], want[1], rtol=1e-6)


def test_render_draws_target_and_agent(env):
    state = _state(pos=(-0.5, -0.5), target=(0.5, 0.5))
    img = np.asarray(jax.jit(env.render)(state))
    row_col = lambda xy: tuple(int(round(float(v))) for v in pr._to_pixels(jnp.asarray(xy)))
    np.testing.assert_array_equal(img[row_col((-0.5, -0.5))], pr.AGENT_COLOUR)
    np.testing.assert_array_equal(img[row_col((0.5, 0.5))], pr.TARGET_COLOUR)
    np.testing.assert_array_equal(img[0, 0], pr.BACKGROUND)
    np.testing.assert_array_equal(img[32, 8], pr.FLOOR)
    # Anti-aliased edge: some pixels lie strictly between floor and agent colour.
    mixed = np.all(img != np.array(pr.FLOOR), -1) & np.all(img != np.array(pr.AGENT_COLOUR), -1)
    assert mixed.any()
    # Pixels move with the agent.
    moved = np.asarray(env.render(_state(pos=(0.0, -0.5), target=(0.5, 0.5))))
    assert not np.array_equal(img, moved)


def test_oracle_beats_random_by_a_clear_margin(env):
    """Mean reward per env step over 64 episodes: oracle ~0.93, random ~0.16."""

    def episode(key, oracle):
        k_reset, k_act = jax.random.split(key)
        state, _ = env.reset(k_reset)

        def body(s, k):
            rand = jax.random.uniform(k, (2,), minval=-1.0, maxval=1.0)
            a = pr.oracle_action(s) if oracle else rand
            s, r = env.transition(s, a)
            return s, (r, jnp.linalg.norm(s.pos - s.target))

        ks = jax.random.split(k_act, env.spec.agent_steps)
        return jax.lax.scan(body, state, ks)[1]

    keys = jax.random.split(jax.random.PRNGKey(3), 64)
    r_oracle, d_oracle = jax.jit(jax.vmap(lambda k: episode(k, True)))(keys)
    r_random, _ = jax.jit(jax.vmap(lambda k: episode(k, False)))(keys)
    per_step = lambda r: float(r.mean()) / env.spec.action_repeat
    assert per_step(r_oracle) > 0.85
    assert per_step(r_random) < 0.3
    assert per_step(r_oracle) - per_step(r_random) > 0.5
    # The oracle reaches every target (within 0.1) in at most 15 agent steps.
    assert bool(jnp.all(jnp.any(d_oracle[:, :15] < 0.1, axis=1)))


def test_host_adapter_equals_pure_functions(env):
    host = envs.make("point_reach", seed=7)
    obs, info = host.reset()
    key = host.episode_key(7, 0)
    state, want = env.reset(key)
    np.testing.assert_array_equal(obs, np.asarray(want))
    assert info == {"seed": 7, "episode": 0}
    for a in ([0.5, -0.25], [2.0, -3.0]):
        obs, reward, terminated, truncated, _ = host.step(np.array(a, np.float32))
        state, want_obs, want_r, _ = env.step(state, jnp.clip(jnp.asarray(a), -1, 1))
        np.testing.assert_array_equal(obs, np.asarray(want_obs))
        np.testing.assert_allclose(reward, float(want_r), rtol=1e-6)
        assert terminated is False and truncated is False
    np.testing.assert_array_equal(host.render(), obs)
    # Second episode uses the next episode key.
    obs2, _ = host.reset()
    np.testing.assert_array_equal(obs2, np.asarray(env.reset(host.episode_key(7, 1))[1]))


def test_reproducible_with_same_seed():
    def run(seed):
        host = envs.make("point_reach", seed=seed)
        frames, rewards = [], []
        for _ in range(2):
            obs, _ = host.reset()
            frames.append(obs)
            for a in ([1.0, 0.0], [0.0, -1.0]):
                obs, r, *_ = host.step(np.array(a))
                frames.append(obs)
                rewards.append(r)
        return np.stack(frames), np.array(rewards)

    f1, r1 = run(3)
    f2, r2 = run(3)
    f3, _ = run(4)
    np.testing.assert_array_equal(f1, f2)
    np.testing.assert_array_equal(r1, r2)
    assert not np.array_equal(f1, f3)
    # reset(seed) restarts the stream: equals a fresh env with that seed.
    host = envs.make("point_reach", seed=0)
    host.reset()
    np.testing.assert_array_equal(host.reset(seed=3)[0], f1[0])


def test_action_clipping_and_nan(env):
    host = envs.make("point_reach", seed=1)
    host.reset()
    s0 = host.state
    host.step(np.array([10.0, -10.0]))
    clipped, _ = env.transition(s0, jnp.array([1.0, -1.0]))
    np.testing.assert_allclose(host.state.pos, clipped.pos, rtol=1e-6)
    for bad in ([np.nan, 0.0], [np.inf, 0.0]):
        with pytest.raises(ValueError, match="NaN or inf"):
            host.step(np.array(bad))
    with pytest.raises(ValueError, match="shape"):
        host.step(np.zeros(3))
    # Inside jit NaN cannot raise: the pure step treats NaN entries as 0.
    nan_state, _ = env.transition(s0, jnp.array([jnp.nan, 1.0]))
    zero_state, _ = env.transition(s0, jnp.array([0.0, 1.0]))
    np.testing.assert_array_equal(nan_state.pos, zero_state.pos)


def test_episode_truncation():
    host = envs.make("point_reach", seed=0, action_repeat=2, episode_length=10)
    assert host.spec.agent_steps == 5
    host.reset()
    flags = [host.step(np.zeros(2))[3] for _ in range(5)]
    assert flags == [False, False, False, False, True]
    with pytest.raises(RuntimeError, match="reset"):
        host.step(np.zeros(2))
    host.reset()
    assert host.step(np.zeros(2))[3] is False
    # Pure functions: done when t reaches episode_length // action_repeat.
    jenv = envs.make_jax("point_reach", action_repeat=3, episode_length=10)
    state, _ = jenv.reset(jax.random.PRNGKey(0))
    dones = []
    for _ in range(4):
        state, _, _, done = jenv.step(state, jnp.zeros(2))
        dones.append(bool(done))
    assert dones == [False, False, True, True]


def test_invalid_options():
    with pytest.raises(TypeError, match="speed"):
        envs.make_jax("point_reach", speed=2)
    with pytest.raises(ValueError, match="episode_length"):
        envs.make_jax("point_reach", action_repeat=4, episode_length=2)
    with pytest.raises(ValueError, match="action_repeat"):
        envs.make_jax("point_reach", action_repeat=0)

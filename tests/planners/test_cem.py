"""Tests for jaxplanet.planners.cem: known optima of small quadratic problems, the
`step(state, action, key)` protocol with per-candidate keys, and CEM on point_reach's true
dynamics."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.planners import cem


def target_step(state, action, key):
    """Reward -||a - target||^2 at every step: the optimal plan repeats clip(target)."""
    del key
    return state, -jnp.sum((action - state["target"]) ** 2)


class Point(NamedTuple):
    pos: jax.Array  # [A]
    target: jax.Array  # [A]


def point_step(state: Point, action, key):
    """pos' = pos + a, reward -||pos' - target||^2: optimum a_0 = target - pos, then a_t = 0."""
    del key
    pos = state.pos + action
    return Point(pos, state.target), -jnp.sum((pos - state.target) ** 2)


SMALL = dict(iterations=8, candidates=300, top_k=30)


def test_quadratic_optimum_under_jit():
    target = jnp.array([0.3, -0.6, 0.8])
    fn = jax.jit(lambda s, k: cem.plan(target_step, s, k, horizon=4, action_dim=3, **SMALL))
    mean = fn({"target": target}, jax.random.key(0))
    assert mean.shape == (4, 3) and mean.dtype == jnp.float32
    np.testing.assert_allclose(mean, jnp.broadcast_to(target, (4, 3)), atol=0.03)


def test_vmap_over_states_with_different_optima():
    targets = jnp.array([[0.5, -0.5], [-0.9, 0.1], [0.0, 0.7], [0.2, 0.2]])
    keys = jax.random.split(jax.random.key(1), 4)

    def plan_one(s, k):
        return cem.plan(target_step, s, k, horizon=3, action_dim=2, **SMALL)

    means = jax.jit(jax.vmap(plan_one))({"target": targets}, keys)
    assert means.shape == (4, 3, 2)
    np.testing.assert_allclose(means, jnp.broadcast_to(targets[:, None], (4, 3, 2)), atol=0.03)


def test_optimum_outside_bounds_is_clipped_to_the_bound():
    target = jnp.array([1.7, -3.0])
    mean, info = cem.plan(
        target_step,
        {"target": target},
        jax.random.key(2),
        horizon=5,
        action_dim=2,
        return_info=True,
        **SMALL,
    )
    assert float(jnp.max(jnp.abs(mean))) <= 1.0
    # Clipping puts probability mass on the bound, so the elites pile up there.
    np.testing.assert_allclose(mean, jnp.broadcast_to(jnp.array([1.0, -1.0]), (5, 2)), atol=0.1)
    # No clipped candidate can beat the bound's return -H * sum((clip(target) - target)^2);
    # the best one gets close to it.
    best = -5 * float(jnp.sum((jnp.clip(target, -1, 1) - target) ** 2))
    assert best - 0.5 <= float(info.best_return[-1]) <= best + 1e-4


def test_actions_stay_in_bounds_with_wide_distribution():
    mean = cem.plan(
        target_step,
        {"target": jnp.array([5.0, -5.0])},
        jax.random.key(3),
        horizon=2,
        action_dim=2,
        iterations=2,
        candidates=50,
        top_k=5,
        init_mean=jnp.full((2, 2), 3.0),
        init_std=10.0,
    )
    assert bool(jnp.all(jnp.abs(mean) <= 1.0))


def test_pytree_state_dynamics_known_optimum():
    state = Point(pos=jnp.array([0.2, -0.1]), target=jnp.array([-0.4, 0.6]))
    mean = jax.jit(lambda s, k: cem.plan(point_step, s, k, horizon=3, action_dim=2, **SMALL))(
        state, jax.random.key(4)
    )
    expected = jnp.stack([state.target - state.pos, jnp.zeros(2), jnp.zeros(2)])
    np.testing.assert_allclose(mean, expected, atol=0.05)


def test_determinism_and_key_dependence():
    state = {"target": jnp.array([0.1, 0.2])}
    fn = jax.jit(lambda k: cem.plan(target_step, state, k, horizon=2, action_dim=2, iterations=1))
    a, b = fn(jax.random.key(5)), fn(jax.random.key(5))
    c = fn(jax.random.key(6))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_info_best_return_improves_and_plan_with_matches_plan():
    config = cem.CEMConfig(horizon=3, iterations=6, candidates=200, top_k=20)
    state = Point(pos=jnp.zeros(2), target=jnp.array([0.5, 0.5]))
    key = jax.random.key(7)
    mean, info = cem.plan_with(config, point_step, state, key, 2, return_info=True)
    assert info.best_return.shape == (6,) and info.std.shape == (3, 2)
    assert float(info.best_return[-1]) > float(info.best_return[0])
    assert bool(jnp.all(info.best_return >= info.elite_return))
    plain = cem.plan(
        point_step, state, key, horizon=3, action_dim=2, iterations=6, candidates=200, top_k=20
    )
    np.testing.assert_array_equal(mean, plain)


def test_discount_weights_rewards_per_step():
    # Reward 1 per step: the return of any sequence is sum_t discount^t.
    actions = jnp.zeros((7, 4, 1))  # [N, H, A]
    one = lambda s, a, k: (s, jnp.float32(1.0))
    returns = cem.evaluate(one, jnp.zeros(()), actions, jax.random.key(0), discount=0.5)
    assert returns.shape == (7,) and returns.dtype == jnp.float32
    np.testing.assert_allclose(returns, np.full(7, 1 + 0.5 + 0.25 + 0.125))


def noise_step(state, action, key):
    """Reward is pure noise from the step's key: independent keys give independent rewards."""
    return state, jax.random.normal(key, ())


def test_every_candidate_and_step_gets_its_own_key():
    actions = jnp.zeros((256, 12, 2))  # identical sequences: only the keys differ
    returns = np.asarray(cem.evaluate(noise_step, jnp.zeros(()), actions, jax.random.key(1)))
    assert len(np.unique(returns)) == 256  # no two candidates share their noise
    # Each return sums 12 independent N(0, 1) draws (not one draw repeated 12 times, var 144).
    assert 12 * 0.7 < returns.var() < 12 * 1.4
    again = cem.evaluate(noise_step, jnp.zeros(()), actions, jax.random.key(1))
    np.testing.assert_array_equal(returns, again)  # same key, same returns
    other = cem.evaluate(noise_step, jnp.zeros(()), actions, jax.random.key(2))
    assert not np.array_equal(returns, np.asarray(other))


def test_iterations_draw_new_noise():
    mean, info = cem.plan(
        noise_step,
        jnp.zeros(()),
        jax.random.key(3),
        horizon=2,
        action_dim=1,
        iterations=3,
        candidates=64,
        top_k=8,
        return_info=True,
    )
    best = np.asarray(info.best_return)
    assert len(np.unique(best)) == 3  # a fresh evaluation key per iteration


def test_evaluate_refuses_bad_shapes():
    with pytest.raises(ValueError, match=r"\[N, H, A\]"):
        cem.evaluate(target_step, {"target": jnp.zeros(2)}, jnp.zeros((4, 2)), jax.random.key(0))
    vector = lambda s, a, k: (s, jnp.zeros(3))
    with pytest.raises(ValueError, match="scalar reward per state"):
        cem.evaluate(vector, jnp.zeros(()), jnp.zeros((4, 2, 1)), jax.random.key(0))


def test_refit_std_floor_var_eps():
    # Identical elites have zero variance; the refit std is then sqrt(var_eps).
    const = lambda s, a, k: (s, jnp.float32(0.0))
    _, info = cem.plan(
        const,
        jnp.zeros(()),
        jax.random.key(4),
        horizon=2,
        action_dim=1,
        iterations=1,
        candidates=4,
        top_k=1,
        var_eps=1e-6,
        return_info=True,
    )
    np.testing.assert_allclose(info.std, 1e-3, rtol=1e-4)


def test_random_shooting_is_best_sample():
    target = {"target": jnp.array([0.37])}
    seq = cem.random_shooting(
        target_step, target, jax.random.key(8), horizon=1, action_dim=1, candidates=2000
    )
    assert seq.shape == (1, 1)
    assert abs(float(seq[0, 0]) - 0.37) < 0.01


def test_config_validation():
    with pytest.raises(ValueError, match="top_k"):
        cem.CEMConfig(candidates=10, top_k=20)
    with pytest.raises(ValueError, match="horizon"):
        cem.CEMConfig(horizon=0)


@pytest.mark.parametrize("sampled", [False, True])
def test_cem_with_true_simulator_solves_point_reach(sampled):
    """CEM + the pure-JAX true dynamics (`env.transition` in the planners' protocol),
    replanning every agent step, matches the oracle. ``sampled`` plans through a stochastic
    version of the dynamics (velocity noise drawn from each step's key), as sampled latent
    planning does; the episode itself runs on the true, deterministic dynamics."""
    from jaxplanet import envs
    from jaxplanet.envs import point_reach

    env = envs.make_jax("point_reach")
    steps = env.spec.episode_length // env.spec.action_repeat

    def episode(key, policy):
        k_reset, k_policy = jax.random.split(key)
        state, _ = env.reset(k_reset)

        def body(state, k):
            state, reward = env.transition(state, policy(state, k))
            return state, reward

        return jax.lax.scan(body, state, jax.random.split(k_policy, steps))[1].sum()

    def noisy_transition(state, action, key):
        noise = 0.05 * jax.random.normal(key, state.vel.shape)
        return env.transition(state.replace(vel=state.vel + noise), action, key)

    model = noisy_transition if sampled else env.transition

    def planner(state, key):
        kwargs = dict(horizon=10, iterations=4, candidates=200, top_k=20)
        return cem.plan(model, state, key, action_dim=env.spec.action_dim, **kwargs)[0]

    def random_policy(state, key):
        return jax.random.uniform(key, (env.spec.action_dim,), minval=-1.0, maxval=1.0)

    def oracle(state, key):
        return point_reach.oracle_action(state)

    keys = jax.random.split(jax.random.key(9), 4)
    run = lambda policy: jax.jit(jax.vmap(lambda k: episode(k, policy)))(keys)
    planned, randoms, best = run(planner), run(random_policy), run(oracle)
    # Returns are sums over env steps of rewards in [0, 1] (at most episode_length = 100).
    assert bool(jnp.all(planned >= 0.9 * best)), (planned, best)
    assert float(planned.mean()) > 3.0 * float(randoms.mean()) and float(planned.mean()) > 70

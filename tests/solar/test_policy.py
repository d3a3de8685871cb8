"""SOLAR's pretraining policy: Gaussian actions, clipped, optionally held."""

import numpy as np

from jaxplanet.solar.policy import floor_covariance, random_policy
from jaxplanet.solar.state import RunState


def _actions(policy, steps, first_at=(0,)):
    return np.stack([policy(None, t in first_at) for t in range(steps)])


def test_unheld_actions_are_the_seeded_gaussian_draws_clipped():
    got = _actions(random_policy(2, 0.5, seed=3), 6)
    want = np.clip(0.5 * np.random.default_rng(3).normal(size=(6, 2)), -1, 1)
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert got.dtype == np.float32


def test_held_actions_change_every_hold_steps_and_restart_with_each_episode():
    got = _actions(random_policy(2, 2.0, seed=0, hold=4), 12, first_at=(0, 6))
    draws = np.clip(2.0 * np.random.default_rng(0).normal(size=(4, 2)), -1, 1)
    # steps 0-3 and 4-5 of episode 1, then steps 6-9, 10-11: episode 2 starts a new hold
    want = draws[[0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 3]]
    np.testing.assert_allclose(got, want, rtol=1e-6)
    assert np.abs(got).max() <= 1.0 and np.abs(got).max() == 1.0  # std 2: some are clipped


def test_host_policy_gives_the_encoder_the_last_frames_newest_first():
    import types

    import jax
    import jax.numpy as jnp

    from jaxplanet.solar.policy import host_policy

    seen = []

    def act(params, belief, F, Q, prev, obs, t, policy, noise, key):
        seen.append(np.asarray(obs))
        return jnp.zeros(2), belief

    run = RunState(train=types.SimpleNamespace(params={}), dyn=(None, None))
    pol = host_policy({"act": act}, run, 2, 3, jax.random.key(0), 0.0, frames=2)
    frames = [np.full((64, 64, 3), i, np.uint8) for i in range(3)]
    for t, f in enumerate(frames):
        pol(f, t == 0)
    assert [w.shape for w in seen] == [(64, 64, 6)] * 3
    assert [(int(w[0, 0, 0]), int(w[0, 0, 3])) for w in seen] == [(0, 0), (1, 0), (2, 1)]


def test_floor_covariance_raises_small_eigenvalues_and_keeps_the_rest():
    """Known answer: R diag(0.01, 1) R^T with the floor 0.04 becomes R diag(0.04, 1) R^T; a
    covariance above the floor is unchanged."""
    c, s = np.cos(0.3), np.sin(0.3)
    R = np.array([[c, -s], [s, c]])
    cov = np.stack([R @ np.diag([0.01, 1.0]) @ R.T, np.diag([0.5, 0.2])])
    out = np.asarray(floor_covariance(cov, 0.04))
    np.testing.assert_allclose(out[0], R @ np.diag([0.04, 1.0]) @ R.T, atol=1e-6)
    np.testing.assert_allclose(out[1], cov[1], atol=1e-6)

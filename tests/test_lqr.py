"""LQR and LQR-FLM: Riccati gains, KL bound, eta -> inf keeps the old policy, reaching a goal."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg

from jaxplanet.planners import lqr

N, M = 3, 2


def _model(T, seed=0):
    rng = np.random.default_rng(seed)
    A = np.eye(N) + 0.1 * rng.normal(size=(N, N))
    B = rng.normal(size=(N, M))
    Qc, Rc = np.eye(N), 0.5 * np.eye(M)
    F = np.broadcast_to(np.concatenate([A, B], 1), (T, N, N + M))
    C = np.broadcast_to(scipy.linalg.block_diag(Qc, Rc), (T, N + M, N + M))
    return A, B, Qc, Rc, F, C


def _f32(*xs):
    return [jnp.asarray(np.array(x), jnp.float32) for x in xs]


def test_long_horizon_gain_is_the_discrete_riccati_gain():
    T = 200
    A, B, Qc, Rc, F, C = _model(T)
    g = jax.jit(lqr.solve)(*_f32(F, np.zeros((T, N)), C, np.zeros((T, N + M))))
    assert g.K.shape == (T, M, N) and g.k.shape == (T, M) and g.K.dtype == jnp.float32
    P = scipy.linalg.solve_discrete_are(A, B, Qc, Rc)
    K = -np.linalg.solve(Rc + B.T @ P @ B, B.T @ P @ A)
    np.testing.assert_allclose(g.K[0], K, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(g.V[0], P, rtol=1e-3)
    np.testing.assert_allclose(g.k, 0.0, atol=1e-5)
    assert bool(g.pd)


def test_lqr_with_true_linear_dynamics_reaches_the_goal():
    # Point mass x' = x + 0.1 u; cost 1/2 |x - g|^2 + 1/2 0.01 |u|^2 written as (C, c).
    T, goal = 60, np.array([0.5, -0.3])
    F = np.broadcast_to(np.concatenate([np.eye(2), 0.1 * np.eye(2)], 1), (T, 2, 4))
    C = np.broadcast_to(np.diag([1.0, 1.0, 0.01, 0.01]), (T, 4, 4))
    c = np.broadcast_to(np.concatenate([-goal, np.zeros(2)]), (T, 4))
    g = lqr.solve(*_f32(F, np.zeros((T, 2)), C, c))
    x = np.array([-0.8, 0.9])
    for t in range(T - 10):
        u = np.asarray(g.K[t]) @ x + np.asarray(g.k[t])
        x = x + 0.1 * u
    assert np.linalg.norm(x - goal) < 0.02


def _flm_problem(T=20, seed=1):
    A, B, _, _, F, C = _model(T, seed)
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(T, N + M))
    old = lqr.Policy(
        *_f32(np.zeros((T, M, N)), np.zeros((T, M)), np.broadcast_to(0.25 * np.eye(M), (T, M, M)))
    )
    W = 0.01 * np.broadcast_to(np.eye(N), (T, N, N))
    args = _f32(F, np.zeros((T, N)), W, C, c)
    return args, old, jnp.ones(N, jnp.float32), 0.1 * jnp.eye(N, dtype=jnp.float32)


@pytest.mark.parametrize("epsilon", [0.5, 5.0])
def test_flm_new_policy_satisfies_the_kl_bound(epsilon):
    args, old, mu0, s0 = _flm_problem()
    update = jax.jit(lqr.flm_update)
    new, info = update(*args, old, mu0, s0, epsilon)
    assert new.K.shape == old.K.shape and new.cov.shape == old.cov.shape
    assert bool(info.met) and bool(info.pd)
    assert abs(float(info.kl) - epsilon) < 0.1 * epsilon
    means, covs = lqr.marginals(args[0], args[1], args[2], new, mu0, s0)
    kl = float(lqr.policy_kl(new, old, means, covs))
    assert kl == pytest.approx(float(info.kl), rel=1e-3)
    assert float(info.cost_new) < float(info.cost_old)
    assert lqr.check_flm(info, epsilon) is None


def test_flm_with_huge_eta_returns_the_old_policy():
    args, old, _, _ = _flm_problem()
    F, f, _, C, c = args
    rng = np.random.default_rng(5)
    old = old._replace(
        K=jnp.asarray(rng.normal(size=old.K.shape), jnp.float32),
        k=jnp.asarray(rng.normal(size=old.k.shape), jnp.float32),
    )
    new, pd = lqr.policy_for_eta(F, f, C, c, old, 1e16)
    assert bool(pd)
    for a, b in zip(new, old, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_flm_reports_an_unreachable_bound():
    args, old, mu0, s0 = _flm_problem()
    _, info = lqr.flm_update(*args, old, mu0, s0, 1e-30)
    assert not bool(info.met)
    assert "cannot be met" in lqr.check_flm(info, 1e-30)


def test_flm_bound_inactive_takes_eta_min():
    args, old, mu0, s0 = _flm_problem()
    _, info = lqr.flm_update(*args, old, mu0, s0, 1e12)
    assert bool(info.met) and float(info.eta) == pytest.approx(1e-8, rel=1e-3)


def test_solar_benchmark_runs_at_tiny_size(tmp_path):
    from benchmarks import solar as bench

    out = tmp_path / "solar.json"
    args = ["--batch=2", "--T=6", "--latent=3", "--repeats=1", "--warmup=0", "--peak_n=64"]
    record = bench.main([*args, f"--json={out}"])
    assert out.exists()
    for name in ("smoothing", "lqr_flm"):
        assert record[name]["seconds_median"] > 0 and record[name]["fraction_of_peak"] > 0

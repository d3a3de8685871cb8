"""Kalman smoother with encoder potentials: equals dense Gaussian conditioning of the joint."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as st

from jaxplanet.solar import lgssm

N_LAT, M_ACT, T = 3, 2, 5


def _problem(seed=0):
    rng = np.random.default_rng(seed)
    m0 = rng.normal(size=N_LAT)
    a = rng.normal(size=(N_LAT, N_LAT))
    P0 = a @ a.T / N_LAT + 0.3 * np.eye(N_LAT)
    F = 0.5 * rng.normal(size=(T - 1, N_LAT, N_LAT + M_ACT))
    Q = np.stack(
        [
            (lambda b: b @ b.T / N_LAT + 0.2 * np.eye(N_LAT))(rng.normal(size=(3, 3)))
            for _ in range(T - 1)
        ]
    )
    actions = rng.normal(size=(T - 1, M_ACT))
    y = rng.normal(size=(T, N_LAT))
    R = np.stack([np.diag(rng.uniform(0.2, 2.0, N_LAT)) for _ in range(T)])
    return m0, P0, F, Q, actions, y, R


def _dense(m0, P0, F, Q, actions, y, R):
    n = N_LAT
    mu = [m0]
    for t in range(T - 1):
        mu.append(F[t, :, :n] @ mu[-1] + F[t, :, n:] @ actions[t])
    mu = np.concatenate(mu)
    S = np.zeros((T * n, T * n))
    S[:n, :n] = P0
    for t in range(T - 1):
        A = F[t, :, :n]
        i, j = slice(t * n, (t + 1) * n), slice((t + 1) * n, (t + 2) * n)
        S[j, : (t + 1) * n] = A @ S[i, : (t + 1) * n]
        S[: (t + 1) * n, j] = S[j, : (t + 1) * n].T
        S[j, j] = A @ S[i, i] @ A.T + Q[t]
    Rb = np.zeros_like(S)
    for t in range(T):
        Rb[t * n : (t + 1) * n, t * n : (t + 1) * n] = R[t]
    yy = y.reshape(-1)
    K = S @ np.linalg.inv(S + Rb)
    mean = mu + K @ (yy - mu)
    cov = S - K @ S
    log_z = st.multivariate_normal(mu, S + Rb).logpdf(yy)
    return mean.reshape(T, n), cov, log_z


def _jax(*arrays):
    return [jnp.asarray(a, jnp.float32) for a in arrays]


def test_smoother_equals_dense_conditioning():
    problem = _problem()
    means, covs = lgssm.smooth(*_jax(*problem))
    assert means.shape == (T, N_LAT) and covs.shape == (T, N_LAT, N_LAT)
    assert means.dtype == jnp.float32
    d_mean, d_cov, d_logz = _dense(*problem)
    np.testing.assert_allclose(means, d_mean, atol=1e-4)
    n = N_LAT
    for t in range(T):
        np.testing.assert_allclose(
            covs[t], d_cov[t * n : (t + 1) * n, t * n : (t + 1) * n], atol=1e-4
        )
    full = lgssm.smooth_full(*_jax(*problem))
    for t in range(T - 1):
        block = d_cov[(t + 1) * n : (t + 2) * n, t * n : (t + 1) * n]
        np.testing.assert_allclose(full.cross[t], block, atol=1e-4)
    assert float(full.log_z) == pytest.approx(d_logz, abs=1e-3)


def test_pair_stats_and_potential_expectation():
    problem = _problem(1)
    m0, P0, F, Q, actions, y, R = problem
    full = lgssm.smooth_full(*_jax(*problem))
    ps = lgssm.pair_stats(full, jnp.asarray(actions, jnp.float32))
    d_mean, d_cov, _ = _dense(*problem)
    n, t = N_LAT, 1
    x = np.concatenate([d_mean[t], actions[t]])
    exx = np.outer(x, x)
    exx[:n, :n] += d_cov[t * n : (t + 1) * n, t * n : (t + 1) * n]
    np.testing.assert_allclose(ps.Exx[t], exx, atol=1e-4)
    eyx = np.outer(d_mean[t + 1], x)
    eyx[:, :n] += d_cov[(t + 1) * n : (t + 2) * n, t * n : (t + 1) * n]
    np.testing.assert_allclose(ps.Eyx[t], eyx, atol=1e-4)
    got = float(lgssm.potential_log_expectation(full, *_jax(y, R)))
    want = sum(
        st.multivariate_normal(d_mean[t], R[t]).logpdf(y[t])
        - 0.5 * np.trace(np.linalg.solve(R[t], d_cov[t * n : (t + 1) * n, t * n : (t + 1) * n]))
        for t in range(T)
    )
    assert got == pytest.approx(want, abs=1e-3)


def test_ffbs_samples_have_the_joint_posterior_moments():
    problem = _problem(2)
    args = _jax(*problem)
    full = lgssm.smooth_full(*args)
    keys = jax.random.split(jax.random.key(0), 20000)
    samples = jax.jit(jax.vmap(lambda k: lgssm.sample(full, args[3], args[2], k)))(keys)
    assert samples.shape == (20000, T, N_LAT)
    d_mean, d_cov, _ = _dense(*problem)
    flat = np.asarray(samples).reshape(len(keys), -1)
    np.testing.assert_allclose(flat.mean(0), d_mean.reshape(-1), atol=0.05)
    np.testing.assert_allclose(np.cov(flat.T), d_cov, atol=0.05)


def test_batched_under_vmap_and_jit():
    problem = _jax(*_problem(3))
    batched = [jnp.stack([a] * 4) for a in problem]
    means, covs = jax.jit(jax.vmap(lgssm.smooth))(*batched)
    assert means.shape == (4, T, N_LAT) and covs.shape == (4, T, N_LAT, N_LAT)
    np.testing.assert_allclose(means[2], lgssm.smooth(*problem)[0], atol=1e-5)


def test_check_psd_names_the_bad_matrix_and_step():
    good = np.stack([np.eye(2)] * 3)
    lgssm.check_psd("Q", good)
    bad = good.copy()
    bad[1] = np.array([[1.0, 2.0], [2.0, 1.0]])
    with pytest.raises(ValueError, match=r"Q\[1\] is not positive definite"):
        lgssm.check_psd("Q", bad)
    ill = good.copy()
    ill[2] = np.diag([1.0, 1e-9])
    with pytest.raises(ValueError, match=r"pot_covs\[2\] is ill-conditioned"):
        lgssm.check_psd("pot_covs", ill)
    nan = good.copy()
    nan[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"P\[0\] has non-finite"):
        lgssm.check_psd("P", nan)

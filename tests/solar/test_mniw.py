"""MNIW prior/posterior: known answers (Bayesian linear regression, Monte Carlo KL)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as st

from jaxplanet.solar import mniw


def _random_mniw(rng, n=3, p=5, nu_extra=4.0):
    M = rng.normal(size=(n, p))
    a = rng.normal(size=(p, p))
    V = a @ a.T / p + 0.5 * np.eye(p)
    b = rng.normal(size=(n, n))
    Psi = b @ b.T / n + np.eye(n)
    return mniw.MNIW(*(jnp.asarray(x, jnp.float32) for x in (M, V, Psi)), jnp.float32(n + nu_extra))


def _np(q):
    M, V, Psi, nu = (np.asarray(x, np.float64) for x in q)
    return [M, V, Psi, float(nu)]


def _data(rng, n=3, p=5, N=40):
    X = rng.normal(size=(N, p))
    W = rng.normal(size=(n, p))
    Y = X @ W.T + 0.3 * rng.normal(size=(N, n))
    return X, Y


def test_shapes_dtypes_and_round_trip():
    q = mniw.default_prior(4, 2)
    assert q.M.shape == (4, 6) and q.V.shape == (6, 6) and q.Psi.shape == (4, 4)
    back = mniw.from_natural(mniw.to_natural(q))
    for a, b in zip(q, back, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
        assert b.dtype == jnp.float32
    e = mniw.expected(q)
    assert e.FT_Sigma_inv_F.shape == (6, 6) and e.logdet_Sigma.shape == ()


def test_conjugate_update_is_bayesian_linear_regression():
    rng = np.random.default_rng(0)
    prior = _random_mniw(rng)
    X, Y = _data(rng)
    post = mniw.posterior(
        prior, mniw.transition_stats(jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
    )
    M0, V0, Psi0, nu0 = _np(prior)
    V0i = np.linalg.inv(V0)
    # Ridge regression towards M0 (generalised least squares), residual form of Psi_N.
    VN = np.linalg.inv(V0i + X.T @ X)
    MN = np.linalg.solve(V0i + X.T @ X, (M0 @ V0i + Y.T @ X).T).T
    R = Y - X @ MN.T
    PsiN = Psi0 + R.T @ R + (MN - M0) @ V0i @ (MN - M0).T
    got = _np(post)
    np.testing.assert_allclose(got[0], MN, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(got[1], VN, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(got[2], PsiN, rtol=1e-3, atol=1e-3)
    assert float(got[3]) == pytest.approx(nu0 + len(X))


def _log_mniw(q, F, S):
    M, V, Psi, nu = q
    return st.invwishart(df=nu, scale=Psi).logpdf(S) + st.matrix_normal(M, S, V).logpdf(F)


def test_posterior_density_is_prior_times_likelihood():
    rng = np.random.default_rng(1)
    prior = _random_mniw(rng, n=2, p=3)
    X, Y = _data(rng, n=2, p=3, N=15)
    post = _np(
        mniw.posterior(
            prior, mniw.transition_stats(jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
        )
    )
    diffs = []
    for _ in range(5):
        S = st.invwishart(df=6, scale=np.eye(2)).rvs(random_state=rng)
        F = rng.normal(size=(2, 3))
        lik = sum(st.multivariate_normal(F @ x, S).logpdf(y) for x, y in zip(X, Y, strict=True))
        diffs.append(_log_mniw(post, F, S) - _log_mniw(_np(prior), F, S) - lik)
    assert np.ptp(diffs) < 1e-2 * max(1.0, abs(np.mean(diffs)))


def test_natural_gradient_step_of_one_on_full_data_is_the_posterior():
    rng = np.random.default_rng(2)
    prior = _random_mniw(rng)
    q = _random_mniw(rng)
    X, Y = _data(rng)
    stats = mniw.transition_stats(jnp.asarray(X, jnp.float32), jnp.asarray(Y, jnp.float32))
    stepped = mniw.svi_step(q, prior, stats, step_size=1.0, scale=1.0)
    exact = mniw.posterior(prior, stats)
    for a, b in zip(stepped, exact, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)
    # A minibatch of half the data scaled by N/B = 2 with duplicated halves is the same.
    half = mniw.transition_stats(jnp.asarray(X[:20], jnp.float32), jnp.asarray(Y[:20], jnp.float32))
    dup = mniw.transition_stats(
        jnp.asarray(np.concatenate([X[:20]] * 2), jnp.float32),
        jnp.asarray(np.concatenate([Y[:20]] * 2), jnp.float32),
    )
    for a, b in zip(
        mniw.svi_step(q, prior, half, 1.0, 2.0), mniw.posterior(prior, dup), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_kl_zero_for_equal_and_matches_monte_carlo():
    rng = np.random.default_rng(3)
    q, p = _random_mniw(rng, n=2, p=3, nu_extra=6.0), _random_mniw(rng, n=2, p=3, nu_extra=3.0)
    assert abs(float(mniw.kl(q, q))) < 1e-3
    qn, pn = _np(q), _np(p)
    Ss = st.invwishart(df=qn[3], scale=qn[2]).rvs(size=4000, random_state=rng)
    vals = []
    for S in Ss:
        F = st.matrix_normal(qn[0], S, qn[1]).rvs(random_state=rng)
        vals.append(_log_mniw(qn, F, S) - _log_mniw(pn, F, S))
    mc, se = np.mean(vals), np.std(vals) / np.sqrt(len(vals))
    assert abs(float(mniw.kl(q, p)) - mc) < 4 * se + 1e-2, (float(mniw.kl(q, p)), mc, se)


def test_expectations_match_monte_carlo():
    rng = np.random.default_rng(4)
    q = _random_mniw(rng, n=2, p=3, nu_extra=5.0)
    qn = _np(q)
    Ss = st.invwishart(df=qn[3], scale=qn[2]).rvs(size=4000, random_state=rng)
    Fs = np.stack([st.matrix_normal(qn[0], S, qn[1]).rvs(random_state=rng) for S in Ss])
    Sinv = np.linalg.inv(Ss)
    e = mniw.expected(q)
    np.testing.assert_allclose(e.Sigma_inv, Sinv.mean(0), rtol=0.1, atol=0.05)
    ftf = np.einsum("kni,knm,kmj->kij", Fs, Sinv, Fs).mean(0)
    np.testing.assert_allclose(e.FT_Sigma_inv_F, ftf, rtol=0.1, atol=0.2)
    assert float(e.logdet_Sigma) == pytest.approx(np.linalg.slogdet(Ss)[1].mean(), abs=0.05)


def test_vmaps_over_time_varying_stack():
    q = mniw.stack(mniw.default_prior(3, 1), 5)
    assert q.M.shape == (5, 3, 4)
    kl = jax.vmap(mniw.kl)(q, q)
    assert kl.shape == (5,) and np.all(np.abs(np.asarray(kl)) < 1e-3)

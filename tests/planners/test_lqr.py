"""LQR and LQR-FLM: Riccati gains, eta -> inf keeps the old policy, reaching a goal; marginals,
expected cost, trajectory KL and the KL step against a dense joint Gaussian and Monte Carlo."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.linalg
import scipy.stats

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


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_solar_benchmark_runs_at_tiny_size(tmp_path):
    from benchmarks import solar as bench

    out = tmp_path / "solar.json"
    args = ["--batch=2", "--T=6", "--latent=3", "--repeats=1", "--warmup=0", "--peak_n=64"]
    record = bench.main([*args, f"--json={out}"])
    assert out.exists()
    for name in ("smoothing", "lqr_flm"):
        assert record[name]["seconds_median"] > 0 and record[name]["fraction_of_peak"] > 0


# --- LQR-FLM against independent references ----------------------------------------------------
# A time-varying problem (n=3, m=2, T=5) in float64 numpy. Two references that share no code
# with `lqr`: (1) the dense joint Gaussian of the whole trajectory
# z = [x_0; u_0; ...; x_{T-1}; u_{T-1}; x_T], built as one linear map of the independent noises
# [x_0 - mu0; v_0; w_0; ...; v_{T-1}; w_{T-1}] (u_t = K_t x_t + k_t + v_t,
# x_{t+1} = F_t [x_t; u_t] + f_t + w_t); (2) Monte Carlo over sampled trajectories, compared
# within 5 standard errors (fixed seed).

T_REF, N_MC, N_SE = 5, 100_000, 5.0


class _Problem(NamedTuple):
    F: np.ndarray  # [T, n, n+m]
    f: np.ndarray  # [T, n]
    W: np.ndarray  # [T, n, n]
    C: np.ndarray  # [T, n+m, n+m]
    c: np.ndarray  # [T, n+m]
    old: lqr.Policy  # of numpy float64 arrays
    mu0: np.ndarray  # [n]
    sigma0: np.ndarray  # [n, n]


def _spd(rng: np.random.Generator, d: int, scale: float) -> np.ndarray:
    a = rng.normal(size=(d, d))
    return scale * (a @ a.T / d + 0.2 * np.eye(d))


def _tv_problem(seed: int = 0) -> _Problem:
    rng = np.random.default_rng(seed)
    T = T_REF
    A = 0.9 * np.eye(N) + 0.2 * rng.normal(size=(T, N, N))
    B = 0.5 * rng.normal(size=(T, N, M))
    old = lqr.Policy(
        0.3 * rng.normal(size=(T, M, N)),
        0.3 * rng.normal(size=(T, M)),
        np.stack([_spd(rng, M, 0.2) for _ in range(T)]),
    )
    return _Problem(
        F=np.concatenate([A, B], -1),
        f=0.1 * rng.normal(size=(T, N)),
        W=np.stack([_spd(rng, N, 0.02) for _ in range(T)]),
        C=np.stack([_spd(rng, N + M, 1.0) for _ in range(T)]),
        c=rng.normal(size=(T, N + M)),
        old=old,
        mu0=rng.normal(size=N),
        sigma0=_spd(rng, N, 0.1),
    )


def _perturbed(policy: lqr.Policy, seed: int, scale: float) -> lqr.Policy:
    """Another valid policy near ``policy`` (covariances stay SPD through their Cholesky)."""
    rng = np.random.default_rng(seed)
    K, k, cov = _np_policy(policy)
    chol = np.linalg.cholesky(cov) * (1.0 + scale * rng.uniform(-1, 1, size=(len(cov), 1, 1)))
    chol = chol + scale * 0.3 * np.tril(rng.normal(size=chol.shape), -1)
    return lqr.Policy(
        K + scale * rng.normal(size=K.shape),
        k + scale * rng.normal(size=k.shape),
        chol @ np.swapaxes(chol, -1, -2),
    )


def _np_policy(policy: lqr.Policy) -> lqr.Policy:
    return lqr.Policy(*(np.asarray(a, np.float64) for a in policy))


def _jax_policy(policy: lqr.Policy) -> lqr.Policy:
    return lqr.Policy(*_f32(*policy))


def _lib_marginals(p: _Problem, policy: lqr.Policy) -> tuple[jax.Array, jax.Array]:
    F, f, W, mu0, s0 = _f32(p.F, p.f, p.W, p.mu0, p.sigma0)
    return lqr.marginals(F, f, W, _jax_policy(policy), mu0, s0)


def _dense_trajectory(p: _Problem, policy: lqr.Policy) -> tuple[np.ndarray, np.ndarray]:
    """Mean [D] and covariance [D, D] of z (D = T (n+m) + n) as z = b + L xi."""
    K, k, S = _np_policy(policy)
    T, n, nm = p.F.shape
    m, D = nm - n, T * nm + n
    L, b, noise_cov = np.zeros((D, D)), np.zeros(D), np.zeros((D, D))
    Lx, bx = np.zeros((n, D)), p.mu0.copy()
    Lx[:, :n] = np.eye(n)
    noise_cov[:n, :n] = p.sigma0
    for t in range(T):
        row, v = t * nm, n + t * nm  # z rows of (x_t, u_t); noise columns of v_t then w_t
        w = v + m
        Lu, bu = K[t] @ Lx, K[t] @ bx + k[t]
        Lu[:, v:w] += np.eye(m)
        noise_cov[v:w, v:w], noise_cov[w : w + n, w : w + n] = S[t], p.W[t]
        L[row : row + n], b[row : row + n] = Lx, bx
        L[row + n : row + nm], b[row + n : row + nm] = Lu, bu
        A, B = p.F[t, :, :n], p.F[t, :, n:]
        Lx, bx = A @ Lx + B @ Lu, A @ bx + B @ bu + p.f[t]
        Lx[:, w : w + n] += np.eye(n)
    L[T * nm :], b[T * nm :] = Lx, bx
    return b, L @ noise_cov @ L.T


def _gaussian_kl(m0: np.ndarray, S0: np.ndarray, m1: np.ndarray, S1: np.ndarray) -> float:
    """KL(N(m0, S0) || N(m1, S1))."""
    chol1 = scipy.linalg.cho_factor(S1)
    d = m1 - m0
    trace = np.trace(scipy.linalg.cho_solve(chol1, S0))
    logdets = np.linalg.slogdet(S1)[1] - np.linalg.slogdet(S0)[1]
    return float(0.5 * (trace + d @ scipy.linalg.cho_solve(chol1, d) - len(m0) + logdets))


def _dense_kl(p: _Problem, new: lqr.Policy, old: lqr.Policy) -> float:
    return _gaussian_kl(*_dense_trajectory(p, new), *_dense_trajectory(p, old))


def _dense_cost(p: _Problem, policy: lqr.Policy) -> float:
    """E[sum_t 1/2 [x_t;u_t]^T C_t [x_t;u_t] + c_t^T [x_t;u_t]] with C, c stacked over z."""
    mean, cov = _dense_trajectory(p, policy)
    Cz = scipy.linalg.block_diag(*p.C, np.zeros((N, N)))
    cz = np.concatenate([*p.c, np.zeros(N)])
    return float(0.5 * (np.trace(Cz @ cov) + mean @ Cz @ mean) + cz @ mean)


def _sample(p: _Problem, policy: lqr.Policy, n_samples: int, seed: int) -> np.ndarray:
    """Trajectories z [n_samples, D] sampled step by step."""
    rng = np.random.default_rng(seed)
    K, k, S = _np_policy(policy)

    def gauss(cov: np.ndarray) -> np.ndarray:
        return rng.standard_normal((n_samples, len(cov))) @ np.linalg.cholesky(cov).T

    x, out = p.mu0 + gauss(p.sigma0), []
    for t in range(len(K)):
        u = x @ K[t].T + k[t] + gauss(S[t])
        out += [x, u]
        x = np.concatenate([x, u], 1) @ p.F[t].T + p.f[t] + gauss(p.W[t])
    return np.concatenate([*out, x], 1)


def _sample_costs(p: _Problem, z: np.ndarray) -> np.ndarray:
    nm = N + M
    zt = z[:, : T_REF * nm].reshape(len(z), T_REF, nm)
    quad = np.einsum("sti,tij,stj->s", zt, p.C, zt)
    return 0.5 * quad + np.einsum("sti,ti->s", zt, p.c)


def _assert_within_se(estimate: np.ndarray, reference: np.ndarray, se: np.ndarray) -> None:
    z = np.abs(np.asarray(estimate) - np.asarray(reference)) / se
    assert np.all(z < N_SE), f"max |error| / SE = {z.max():.2f}"


@pytest.fixture(scope="module")
def ref() -> _Problem:
    return _tv_problem()


def test_marginals_match_the_dense_joint_and_monte_carlo(ref: _Problem) -> None:
    policy = _perturbed(ref.old, seed=1, scale=0.2)
    means, covs = (np.asarray(a, np.float64) for a in _lib_marginals(ref, policy))
    mean, cov = _dense_trajectory(ref, policy)
    z = _sample(ref, policy, N_MC, seed=2)
    nm = N + M
    for t in range(T_REF):
        s = slice(t * nm, (t + 1) * nm)
        np.testing.assert_allclose(means[t], mean[s], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(covs[t], cov[s, s], rtol=1e-5, atol=1e-5)
        zt = z[:, s]
        _assert_within_se(zt.mean(0), means[t], zt.std(0) / np.sqrt(N_MC))
        d = zt - zt.mean(0)
        prods = d[:, :, None] * d[:, None, :]
        _assert_within_se(prods.mean(0), covs[t], prods.std(0) / np.sqrt(N_MC))


def test_expected_cost_matches_the_dense_joint_and_monte_carlo(ref: _Problem) -> None:
    policy = _perturbed(ref.old, seed=3, scale=0.2)
    means, covs = _lib_marginals(ref, policy)
    cost = float(lqr.expected_cost(*_f32(ref.C, ref.c), means, covs))
    assert cost == pytest.approx(_dense_cost(ref, policy), rel=1e-5)
    costs = _sample_costs(ref, _sample(ref, policy, N_MC, seed=4))
    _assert_within_se(costs.mean(), cost, costs.std() / np.sqrt(N_MC))


def test_policy_kl_is_the_trajectory_kl_of_the_dense_joint_and_monte_carlo(ref: _Problem) -> None:
    new = _perturbed(ref.old, seed=5, scale=0.1)
    new = new._replace(cov=0.5 * new.cov)  # narrower: KL(new || old) != KL(old || new)
    means, covs = _lib_marginals(ref, new)
    kl = float(lqr.policy_kl(_jax_policy(new), _jax_policy(ref.old), means, covs))
    dense = _dense_kl(ref, new, ref.old)
    assert kl == pytest.approx(dense, rel=1e-4)
    # The reference tells the conventions apart: the reverse KL, or the old policy's states.
    assert abs(_dense_kl(ref, ref.old, new) - dense) > 0.05 * dense
    old_means, old_covs = _lib_marginals(ref, ref.old)
    wrong_states = float(lqr.policy_kl(_jax_policy(new), _jax_policy(ref.old), old_means, old_covs))
    assert abs(wrong_states - dense) > 0.05 * dense
    # Monte Carlo E_new[log p_new(tau) - log p_old(tau)] with the dense densities.
    z = _sample(ref, new, N_MC, seed=6)
    log_ratio = scipy.stats.multivariate_normal(*_dense_trajectory(ref, new)).logpdf(
        z
    ) - scipy.stats.multivariate_normal(*_dense_trajectory(ref, ref.old)).logpdf(z)
    _assert_within_se(log_ratio.mean(), kl, log_ratio.std() / np.sqrt(N_MC))


@pytest.mark.parametrize(("epsilon", "tol"), [(0.5, 0.1), (2.0, 0.1), (2.0, 0.02)])
def test_flm_step_lands_on_the_bound_by_the_dense_reference(
    ref: _Problem, epsilon: float, tol: float
) -> None:
    old = _jax_policy(ref.old)
    mu0, s0 = _f32(ref.mu0, ref.sigma0)
    new, info = jax.jit(lqr.flm_update)(
        *_f32(ref.F, ref.f, ref.W, ref.C, ref.c), old, mu0, s0, epsilon, tol=tol
    )
    assert new.K.shape == old.K.shape and new.cov.shape == old.cov.shape
    assert bool(info.met) and bool(info.pd) and lqr.check_flm(info, epsilon) is None
    assert float(info.eta) > 1e3 * 1e-8  # the bound is active: eta is off eta_min
    kl = _dense_kl(ref, new, ref.old)
    assert abs(kl - epsilon) < tol * epsilon
    assert float(info.kl) == pytest.approx(kl, rel=1e-4)
    cost_new, cost_old = _dense_cost(ref, new), _dense_cost(ref, ref.old)
    assert cost_new < cost_old - 0.1
    assert float(info.cost_new) == pytest.approx(cost_new, rel=1e-5)
    assert float(info.cost_old) == pytest.approx(cost_old, rel=1e-5)


def test_flm_policy_minimises_the_lagrangian_at_its_eta(ref: _Problem) -> None:
    """For fixed eta the LQR-FLM policy minimises E[cost] + eta KL(p || p_old) over all
    linear-Gaussian policies: every perturbation (dense reference) raises it."""
    mu0, s0 = _f32(ref.mu0, ref.sigma0)
    new, info = jax.jit(lqr.flm_update)(
        *_f32(ref.F, ref.f, ref.W, ref.C, ref.c), _jax_policy(ref.old), mu0, s0, 2.0
    )
    eta = float(info.eta)

    def lagrangian(policy: lqr.Policy) -> float:
        return _dense_cost(ref, policy) + eta * _dense_kl(ref, policy, ref.old)

    best = lagrangian(new)
    assert best < lagrangian(ref.old)
    for seed in range(4):
        assert lagrangian(_perturbed(new, seed=10 + seed, scale=0.02)) > best

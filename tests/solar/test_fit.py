"""SOLAR's fits for control: the cost refit recovers a known PSD quadratic cost of the inferred
states; local dynamics and the latent planner step have the documented shapes; bad matrices are
reported by name and step."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.planners import lqr
from jaxplanet.solar import fit as solar_fit
from jaxplanet.solar import model as solar
from jaxplanet.solar import policy as solar_policy
from tests.solar.test_model import TINY, _data


@pytest.mark.parametrize("variant", ["solar", "vae"])
def test_cost_refit_recovers_a_known_quadratic_cost(variant):
    cfg = dataclasses.replace(TINY, variant=variant)
    batch = _data(num=4, T=6)
    state = solar.init_train_state(cfg, jax.random.key(0), 2, 6)
    s = solar_fit.inferred_states(state.params, cfg, state.q, batch["obs"], batch["action"])
    assert s.shape == (4, 7, cfg.latent)
    # Costs from a known PSD quadratic of [s_t; a_t] (rank-deficient, like nav2d's).
    x = jnp.concatenate([s[:, :-1], batch["action"]], -1)
    L = jax.random.normal(jax.random.key(1), (x.shape[-1], 2))
    C_true, c_true = L @ L.T, jnp.arange(x.shape[-1], dtype=jnp.float32) / 10
    y = 0.5 * jnp.einsum("nti,ij,ntj->nt", x, C_true, x) + x @ c_true + 0.3
    fit = {**batch, "cost": y}
    before = jnp.sqrt(
        jnp.mean((y - solar.predict_cost(state.params, s[:, :-1], fit["action"])) ** 2)
    )
    cost, rmse = jax.jit(solar_fit.fit_cost, static_argnums=(1, 4, 5))(
        state.params, cfg, state.q, fit, 1500, 3e-2
    )
    assert float(rmse) < 0.05 * float(before)
    C, _, _ = solar.cost_matrices({"cost": cost})
    assert np.linalg.eigvalsh(np.asarray(C)).min() >= -1e-5  # PSD by construction


def test_local_dynamics_and_latent_step_shapes():
    batch = _data(num=4, T=6)
    state = solar.init_train_state(TINY, jax.random.key(0), 2, 6)
    F, Q, mu0, sigma0 = solar_fit.fit_local_dynamics(
        state.params, TINY, state.q, batch["obs"], batch["action"], 50.0, 2
    )
    n = TINY.latent
    assert F.shape == (6, n, n + 2) and Q.shape == (6, n, n)
    assert mu0.shape == (n,) and sigma0.shape == (n, n)
    assert solar_policy.check_improvement(Q, sigma0, _policy(6, n)) is None
    step = solar_fit.latent_step(state.params, TINY, F, Q, 0.1)
    (s1, t1), reward = step((mu0, 0), jnp.zeros(2), jax.random.key(2))
    assert s1.shape == (n,) and int(t1) == 1 and reward.shape == ()


def _policy(T, n, m=2):
    return lqr.Policy(
        jnp.zeros((T, m, n)), jnp.zeros((T, m)), jnp.broadcast_to(jnp.eye(m), (T, m, m))
    )


def test_check_improvement_names_the_matrix_and_the_step():
    T, n = 5, 3
    Q = np.broadcast_to(np.eye(n), (T, n, n)).copy()
    good = _policy(T, n)
    assert solar_policy.check_improvement(Q, np.eye(n), good) is None
    bad_q = Q.copy()
    bad_q[3] = -np.eye(n)
    msg = solar_policy.check_improvement(bad_q, np.eye(n), good, phase=2)
    assert (
        "iteration 2" in msg and "local dynamics Sigma_t[3]" in msg and "positive definite" in msg
    )
    nan_q = Q.copy()
    nan_q[1, 0, 0] = np.nan
    assert "Sigma_t[1] has non-finite" in solar_policy.check_improvement(nan_q, np.eye(n), good)
    ill = np.diag([1.0, 1.0, 1e-12])
    assert "initial state covariance is ill-conditioned" in solar_policy.check_improvement(
        Q, ill, good
    )
    cov = np.asarray(good.cov).copy()
    cov[4] = [[1.0, 2.0], [2.0, 1.0]]
    msg = solar_policy.check_improvement(Q, np.eye(n), good._replace(cov=cov))
    assert "policy covariance S_t[4]" in msg
    k = np.asarray(good.k).copy()
    k[2, 1] = np.inf
    assert "policy offset k_t[2]" in solar_policy.check_improvement(
        Q, np.eye(n), good._replace(k=k)
    )

"""LQR and LQR-FLM (LQR with a KL bound to the previous linear-Gaussian policy).

Used by SOLAR (Zhang et al., ICML 2019, Sec. 5): the policy is time-varying linear-Gaussian,
u_t ~ N(K_t x_t + k_t, S_t), improved on a local time-varying linear-Gaussian model by
LQR-FLM (Levine & Abbeel, "Learning Neural Network Policies with Guided Policy Search under
Unknown Dynamics", NeurIPS 2014, Sec. 3):

    min_p E_p[sum_t cost(x_t, u_t)]  s.t.  KL(p(tau) || p_old(tau)) <= epsilon.

The Lagrangian gives an LQR problem with the augmented cost cost / eta - log p_old(u | x)
(Eq. 3 there); its max-entropy solution is u ~ N(K x + k, Q_uu^-1). The dual variable eta is
found by geometric bisection in [eta_min, eta_max] inside a `lax.while_loop` until
|KL - epsilon| < tol * epsilon; if Q_uu is not positive definite eta is raised.

Planners never import a model: everything here is arrays.
    x_{t+1} = F_t [x_t; u_t] + f_t (+ N(0, W_t)),  cost_t = 1/2 [x;u]^T C_t [x;u] + c_t^T [x;u].
Shapes: F [T, n, n+m], f [T, n], C [T, n+m, n+m], c [T, n+m], W [T, n, n].
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve

__all__ = [
    "LQRSolution",
    "Policy",
    "FLMInfo",
    "solve",
    "marginals",
    "expected_cost",
    "policy_kl",
    "flm_update",
    "check_flm",
]


class LQRSolution(NamedTuple):
    """Result of a backward pass.

    Attributes:
      K: [T, m, n] feedback gains; k: [T, m] offsets (u_t = K_t x_t + k_t).
      Quu: [T, m, m] control Hessians of the Q-function (policy precision in max-ent LQR).
      V: [T, n, n], v: [T, n] quadratic / linear value function at x_t.
      pd: [] bool, every Quu positive definite.
    """

    K: jax.Array
    k: jax.Array
    Quu: jax.Array
    V: jax.Array
    v: jax.Array
    pd: jax.Array


class Policy(NamedTuple):
    """Linear-Gaussian policy u_t ~ N(K_t x_t + k_t, cov_t): K [T,m,n], k [T,m], cov [T,m,m]."""

    K: jax.Array
    k: jax.Array
    cov: jax.Array


def _sym(x):
    return 0.5 * (x + jnp.swapaxes(x, -1, -2))


def solve(F: jax.Array, f: jax.Array, C: jax.Array, c: jax.Array) -> LQRSolution:
    """Finite-horizon LQR by the backward Riccati recursion (no terminal cost).

    Minimises sum_t 1/2 [x;u]^T C_t [x;u] + c_t^T [x;u] for x_{t+1} = F_t [x_t; u_t] + f_t.

    Args:
      F: [T, n, n+m]; f: [T, n]; C: [T, n+m, n+m]; c: [T, n+m].

    Returns:
      `LQRSolution` with K [T, m, n], k [T, m]: the optimal u_t = K_t x_t + k_t.
    """
    n = F.shape[-2]

    def body(carry, inputs):
        V, v = carry
        F_t, f_t, C_t, c_t = inputs
        Qm = _sym(C_t + F_t.T @ V @ F_t)  # Q-function Hessian [n+m, n+m]
        qv = c_t + F_t.T @ (V @ f_t + v)
        Quu, Qux, qu = Qm[n:, n:], Qm[n:, :n], qv[n:]
        chol = jnp.linalg.cholesky(Quu)
        K = -cho_solve((chol, True), Qux)
        k = -cho_solve((chol, True), qu)
        V_new = _sym(Qm[:n, :n] + Qux.T @ K)
        v_new = qv[:n] + Qux.T @ k
        ok = jnp.all(jnp.isfinite(chol))
        return (V_new, v_new), (K, k, Quu, V_new, v_new, ok)

    init = (jnp.zeros((n, n), F.dtype), jnp.zeros((n,), F.dtype))
    _, (K, k, Quu, V, v, ok) = jax.lax.scan(body, init, (F, f, C, c), reverse=True)
    return LQRSolution(K, k, Quu, V, v, jnp.all(ok))


def marginals(
    F: jax.Array, f: jax.Array, W: jax.Array, policy: Policy, mu0: jax.Array, sigma0: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """State-action marginals of the policy on the linear-Gaussian model.

    Returns:
      means [T, n+m] and covariances [T, n+m, n+m] of [x_t; u_t].
    """

    def body(carry, inputs):
        mu, sig = carry
        F_t, f_t, W_t, K, k, S = inputs
        mu_u = K @ mu + k
        su_x = K @ sig
        joint_mu = jnp.concatenate([mu, mu_u])
        joint = jnp.block([[sig, su_x.T], [su_x, _sym(su_x @ K.T + S)]])
        mu_next = F_t @ joint_mu + f_t
        sig_next = _sym(F_t @ joint @ F_t.T + W_t)
        return (mu_next, sig_next), (joint_mu, _sym(joint))

    _, out = jax.lax.scan(body, (mu0, sigma0), (F, f, W, policy.K, policy.k, policy.cov))
    return out


def expected_cost(C: jax.Array, c: jax.Array, means: jax.Array, covs: jax.Array) -> jax.Array:
    """sum_t E[1/2 z^T C_t z + c_t^T z] for z ~ N(means_t, covs_t). Returns []."""
    quad = jnp.einsum("ti,tij,tj->t", means, C, means) + jnp.einsum("tij,tji->t", C, covs)
    return jnp.sum(0.5 * quad + jnp.einsum("ti,ti->t", c, means))


def policy_kl(new: Policy, old: Policy, means: jax.Array, covs: jax.Array) -> jax.Array:
    """sum_t E_{x_t}[KL(new(u|x_t) || old(u|x_t))] under the new policy's state marginals.

    Args:
      new, old: policies; means [T, n+m], covs [T, n+m, n+m] from `marginals(new)`.
    """
    n = new.K.shape[-1]

    def one(Kn, kn, Sn, Ko, ko, So, mu, sig):
        m = kn.shape[0]
        chol_o = jnp.linalg.cholesky(So)
        prec_o = cho_solve((chol_o, True), jnp.eye(m, dtype=So.dtype))
        dK, dk = Kn - Ko, kn - ko
        mx, sx = mu[:n], sig[:n, :n]
        dmu = dK @ mx + dk
        logdet_o = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol_o)))
        logdet_n = jnp.linalg.slogdet(Sn)[1]
        return 0.5 * (
            jnp.sum(prec_o * Sn)
            - m
            + logdet_o
            - logdet_n
            + dmu @ prec_o @ dmu
            + jnp.sum((dK.T @ prec_o @ dK) * sx)
        )

    return jnp.sum(jax.vmap(one)(new.K, new.k, new.cov, old.K, old.k, old.cov, means, covs))


def _augmented(C, c, old: Policy, eta):
    """cost / eta - log p_old(u|x) as (C, c) (Levine & Abbeel 2014, Eq. 3)."""
    prec = jnp.linalg.inv(old.cov)
    KtP = jnp.einsum("tmn,tmk->tnk", old.K, prec)
    top = jnp.concatenate([jnp.einsum("tnk,tkj->tnj", KtP, old.K), -KtP], -1)
    bottom = jnp.concatenate([-jnp.swapaxes(KtP, -1, -2), prec], -1)
    pkl = jnp.concatenate([top, bottom], -2)
    pkl_v = jnp.concatenate(
        [jnp.einsum("tnk,tk->tn", KtP, old.k), -jnp.einsum("tmk,tk->tm", prec, old.k)], -1
    )
    return C / eta + pkl, c / eta + pkl_v


def policy_for_eta(F, f, C, c, old: Policy, eta) -> tuple[Policy, jax.Array]:
    """Max-entropy LQR policy for one dual variable eta; returns (policy, all Quu PD)."""
    Ca, ca = _augmented(C, c, old, eta)
    sol = solve(F, f, Ca, ca)
    m = sol.k.shape[-1]
    cov = jax.vmap(
        lambda q: _sym(cho_solve((jnp.linalg.cholesky(q), True), jnp.eye(m, dtype=q.dtype)))
    )(sol.Quu)
    return Policy(sol.K, sol.k, cov), sol.pd & jnp.all(jnp.isfinite(cov))


class FLMInfo(NamedTuple):
    """Diagnostics of `flm_update` (all jax scalars).

    Attributes:
      eta: chosen dual variable.
      kl: KL(new || old) of the chosen policy.
      met: |kl - epsilon| < tol * epsilon, or kl < epsilon with eta at eta_min (bound inactive).
      pd: Q_uu positive definite at the chosen eta.
      iterations: bisection iterations used.
      cost_old, cost_new: expected cost of the old / new policy on the model.
    """

    eta: jax.Array
    kl: jax.Array
    met: jax.Array
    pd: jax.Array
    iterations: jax.Array
    cost_old: jax.Array
    cost_new: jax.Array


def flm_update(
    F: jax.Array,
    f: jax.Array,
    W: jax.Array,
    C: jax.Array,
    c: jax.Array,
    old: Policy,
    mu0: jax.Array,
    sigma0: jax.Array,
    epsilon: float | jax.Array,
    *,
    eta_min: float = 1e-8,
    eta_max: float = 1e16,
    tol: float = 0.1,
    max_iterations: int = 100,
) -> tuple[Policy, FLMInfo]:
    """One LQR-FLM step: the best policy on the model with KL(new || old) <= epsilon.

    Args:
      F, f, W: local dynamics [T, n, n+m], [T, n], noise [T, n, n].
      C, c: cost [T, n+m, n+m], [T, n+m].
      old: previous policy.
      mu0, sigma0: initial state distribution [n], [n, n].
      epsilon: KL bound (SOLAR: 2 * T * step_mult... here whatever the caller passes).
      eta_min, eta_max: bracket of the dual variable.
      tol: relative tolerance |KL - epsilon| < tol * epsilon.
      max_iterations: cap on the bisection.

    Returns:
      (new policy, `FLMInfo`). Check `info.met` / `check_flm(info)` on the host.
    """
    dtype = F.dtype

    def evaluate(log_eta):
        pol, pd = policy_for_eta(F, f, C, c, old, jnp.exp(log_eta))
        means, covs = marginals(F, f, W, pol, mu0, sigma0)
        kl = policy_kl(pol, old, means, covs)
        kl = jnp.where(pd & jnp.isfinite(kl), kl, jnp.inf)  # not PD: raise eta
        return pol, kl, pd, means, covs

    lo, hi = jnp.log(jnp.asarray(eta_min, dtype)), jnp.log(jnp.asarray(eta_max, dtype))
    kl_lo = evaluate(lo)[1]
    kl_hi = evaluate(hi)[1]
    inactive = kl_lo <= epsilon  # even the most aggressive policy stays inside the bound
    feasible = kl_hi <= epsilon  # else the bound cannot be met at eta_max

    # Invariant: KL(lo) > epsilon >= KL(hi); stop at a midpoint with |KL - eps| < tol * eps.
    def cond(state):
        _, _, _, done, it = state
        return ~done & (it < max_iterations)

    def body(state):
        lo_, hi_, _, _, it = state
        mid = 0.5 * (lo_ + hi_)
        kl = evaluate(mid)[1]
        done = jnp.abs(kl - epsilon) < tol * epsilon
        too_far = kl > epsilon  # KL falls as eta grows
        lo_ = jnp.where(too_far & ~done, mid, lo_)
        hi_ = jnp.where(too_far | done, hi_, mid)
        return lo_, hi_, mid, done, it + 1

    done0 = inactive | ~feasible
    init = (lo, hi, hi, done0, jnp.zeros((), jnp.int32))
    _, hi_f, mid_f, done, iters = jax.lax.while_loop(cond, body, init)
    log_eta = jnp.where(inactive, lo, jnp.where(~feasible, hi, jnp.where(done, mid_f, hi_f)))
    pol, kl, pd, means, covs = evaluate(log_eta)
    met = feasible & pd & (kl <= (1.0 + tol) * epsilon)
    old_means, old_covs = marginals(F, f, W, old, mu0, sigma0)
    info = FLMInfo(
        eta=jnp.exp(log_eta),
        kl=kl,
        met=met,
        pd=pd,
        iterations=iters,
        cost_old=expected_cost(C, c, old_means, old_covs),
        cost_new=expected_cost(C, c, means, covs),
    )
    return pol, info


def check_flm(info: FLMInfo, epsilon: float) -> str | None:
    """Host-side report: None when fine, else a message saying why the bound was not met."""
    info = jax.device_get(info)
    if not bool(info.pd):
        return f"LQR-FLM: Q_uu not positive definite even at eta={float(info.eta):.3g}"
    if not bool(info.met) or not np.isfinite(info.kl):
        return (
            f"LQR-FLM: KL bound {epsilon:.3g} cannot be met (KL={float(info.kl):.3g} at "
            f"eta={float(info.eta):.3g} after {int(info.iterations)} bisection steps)"
        )
    return None

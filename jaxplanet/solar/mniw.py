"""Matrix-normal inverse-Wishart (MNIW) prior and posterior of linear-Gaussian dynamics.

SOLAR (Zhang et al., "SOLAR: Deep Structured Representations for Model-Based Reinforcement
Learning", ICML 2019, Sec. 4.1) puts a conjugate MNIW prior on the latent dynamics

    s_{t+1} = F x_t + eps,  eps ~ N(0, Sigma),  x_t = [s_t; a_t]  (F: [n, p], p = n + m)
    Sigma ~ IW(Psi, nu),    F | Sigma ~ MN(M, Sigma, V)  i.e. vec(F) ~ N(vec M, V (x) Sigma)

and keeps a variational factor q(F, Sigma) of the same family, updated by natural-gradient SVI
(Johnson et al., "Composing graphical models with neural networks", NeurIPS 2016, Eq. 6).

Natural parameters (the statistics they pair with are linear in the data):
    A = V^-1 [p, p],  B = M V^-1 [n, p],  C = Psi + M V^-1 M^T [n, n],  d = nu [].
Sufficient statistics of transitions (x_i, y_i):
    Sxx = sum x x^T,  Syx = sum y x^T,  Syy = sum y y^T,  N = count.
The conjugate posterior is eta0 + stats (Bayesian linear regression, e.g. Murphy 2012, 7.6.3),
and one SVI step is eta <- (1 - rho) eta + rho (eta0 + scale * E[stats]).

Every function works on one MNIW; for per-time-step (time-varying) dynamics stack the fields
with a leading axis and use `jax.vmap`.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax.scipy.linalg import cho_solve
from jax.scipy.special import digamma, multigammaln

from jaxplanet.solar.lgssm import sym

__all__ = [
    "MNIW",
    "NatParams",
    "Stats",
    "Expected",
    "default_prior",
    "to_natural",
    "from_natural",
    "transition_stats",
    "add_stats",
    "posterior",
    "svi_step",
    "posterior_stable",
    "expected",
    "plugin_dynamics",
    "mean_dynamics",
    "expected_log_likelihood",
    "kl",
    "stack",
]


class MNIW(NamedTuple):
    """MNIW(M, V, Psi, nu) over (F [n, p], Sigma [n, n]).

    Attributes:
      M: [n, p] mean of F.
      V: [p, p] column covariance of F.
      Psi: [n, n] inverse-Wishart scale.
      nu: [] degrees of freedom (> n - 1).
    """

    M: jax.Array
    V: jax.Array
    Psi: jax.Array
    nu: jax.Array


class NatParams(NamedTuple):
    """Natural parameters (A, B, C, d) = (V^-1, M V^-1, Psi + M V^-1 M^T, nu); see module doc."""

    A: jax.Array
    B: jax.Array
    C: jax.Array
    d: jax.Array


class Stats(NamedTuple):
    """Sufficient statistics of transitions: Sxx [p, p], Syx [n, p], Syy [n, n], N []."""

    Sxx: jax.Array
    Syx: jax.Array
    Syy: jax.Array
    N: jax.Array


def _chol_inv(x: jax.Array) -> jax.Array:
    chol = jnp.linalg.cholesky(sym(x))
    return sym(cho_solve((chol, True), jnp.eye(x.shape[-1], dtype=x.dtype)))


def _logdet(x: jax.Array) -> jax.Array:
    chol = jnp.linalg.cholesky(sym(x))
    return 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol, axis1=-2, axis2=-1)), -1)


def default_prior(n: int, m: int, scale: float = 2.0, dtype=jnp.float32) -> MNIW:
    """The released SOLAR prior: Psi = scale * I, nu = n + 2, M0 = [I 0], V = I (no bias).

    Args:
      n: latent size.
      m: action size.
      scale: multiplier of the identity inverse-Wishart scale (S = 2 I in the paper code).

    Returns:
      `MNIW` with M [n, n + m], V [n + m, n + m], Psi [n, n], nu [].
    """
    M = jnp.concatenate([jnp.eye(n, dtype=dtype), jnp.zeros((n, m), dtype)], axis=1)
    return MNIW(M, jnp.eye(n + m, dtype=dtype), scale * jnp.eye(n, dtype=dtype), jnp.array(n + 2.0))


def to_natural(p: MNIW) -> NatParams:
    """MNIW -> natural parameters (A, B, C, d)."""
    A = _chol_inv(p.V)
    B = p.M @ A
    return NatParams(A, B, sym(p.Psi + B @ p.M.T), jnp.asarray(p.nu, A.dtype))


def from_natural(eta: NatParams) -> MNIW:
    """Natural parameters -> MNIW (Cholesky solves; A must be positive definite)."""
    V = _chol_inv(eta.A)
    M = eta.B @ V
    return MNIW(M, V, sym(eta.C - M @ eta.B.T), eta.d)


def transition_stats(x: jax.Array, y: jax.Array, weights: jax.Array | None = None) -> Stats:
    """Sufficient statistics of point transitions.

    Args:
      x: [N, p] inputs [s_t; a_t].
      y: [N, n] next states s_{t+1}.
      weights: optional [N] weights (e.g. a mask).

    Returns:
      `Stats` summed over N.
    """
    w = jnp.ones(x.shape[:1], x.dtype) if weights is None else weights
    return Stats(
        jnp.einsum("i,ip,iq->pq", w, x, x),
        jnp.einsum("i,in,ip->np", w, y, x),
        jnp.einsum("i,in,ik->nk", w, y, y),
        jnp.sum(w),
    )


def add_stats(eta: NatParams, stats: Stats, scale: float | jax.Array = 1.0) -> NatParams:
    """eta + scale * stats (the conjugate update when scale = 1)."""
    return NatParams(
        eta.A + scale * stats.Sxx,
        eta.B + scale * stats.Syx,
        sym(eta.C + scale * stats.Syy),
        eta.d + scale * stats.N,
    )


def posterior(prior: MNIW, stats: Stats) -> MNIW:
    """Conjugate MNIW posterior given transition statistics (Bayesian linear regression)."""
    return from_natural(add_stats(to_natural(prior), stats))


def svi_step(
    q: MNIW, prior: MNIW, stats: Stats, step_size: float | jax.Array, scale: float | jax.Array
) -> MNIW:
    """One natural-gradient SVI step on q(F, Sigma) (Johnson et al. 2016, Eq. 6).

    eta_q <- (1 - rho) eta_q + rho (eta_prior + scale * E[stats]); with rho = 1 and the statistics
    of the whole data set (scale = 1) this is `posterior(prior, stats)`.

    Args:
      q: current variational factor.
      prior: p(F, Sigma).
      stats: expected sufficient statistics of a minibatch.
      step_size: rho in (0, 1].
      scale: N / B, data-set size over minibatch size.
    """
    t = posterior_stable(prior, stats, scale)
    rho = step_size
    A_q, A_t = _chol_inv(q.V), _chol_inv(t.V)
    A = (1.0 - rho) * A_q + rho * A_t
    V = _chol_inv(A)
    M = ((1.0 - rho) * q.M @ A_q + rho * t.M @ A_t) @ V
    # Psi as a sum of PSD terms (not C - M V^-1 M^T, which loses definiteness in float32 once
    # the statistics are large): the weighted-variance identity of the convex combination.
    dq, dt = q.M - M, t.M - M
    Psi = (1.0 - rho) * (q.Psi + dq @ A_q @ dq.T) + rho * (t.Psi + dt @ A_t @ dt.T)
    return MNIW(M, V, sym(Psi), (1.0 - rho) * q.nu + rho * t.nu)


def posterior_stable(prior: MNIW, stats: Stats, scale: float | jax.Array = 1.0) -> MNIW:
    """`posterior(prior, scale * stats)` with Psi computed as prior + residual terms.

    Psi' = Psi + (M - M') V^-1 (M - M')^T + scale (Syy - Syx M'^T - M' Syx^T + M' Sxx M'^T);
    the last term is the expected residual scatter, PSD for moments of a Gaussian.
    """
    A0 = _chol_inv(prior.V)
    A = A0 + scale * stats.Sxx
    V = _chol_inv(A)
    M = (prior.M @ A0 + scale * stats.Syx) @ V
    d = prior.M - M
    resid = stats.Syy - stats.Syx @ M.T - M @ stats.Syx.T + M @ stats.Sxx @ M.T
    Psi = prior.Psi + d @ A0 @ d.T + scale * sym(resid)
    return MNIW(M, V, sym(Psi), prior.nu + scale * stats.N)


class Expected(NamedTuple):
    """Expectations under q(F, Sigma) used by inference and the ELBO.

    Attributes:
      F: [n, p] E[F] = M.
      Sigma_inv: [n, n] E[Sigma^-1] = nu Psi^-1.
      Sigma_inv_F: [n, p] E[Sigma^-1 F] = nu Psi^-1 M.
      FT_Sigma_inv_F: [p, p] E[F^T Sigma^-1 F] = n V + M^T E[Sigma^-1] M.
      logdet_Sigma: [] E[log |Sigma|].
    """

    F: jax.Array
    Sigma_inv: jax.Array
    Sigma_inv_F: jax.Array
    FT_Sigma_inv_F: jax.Array
    logdet_Sigma: jax.Array


def expected(q: MNIW) -> Expected:
    """E[F], E[Sigma^-1], E[Sigma^-1 F], E[F^T Sigma^-1 F], E[log|Sigma|] under q."""
    n = q.Psi.shape[-1]
    sigma_inv = q.nu * _chol_inv(q.Psi)
    sigma_inv_f = sigma_inv @ q.M
    ftf = sym(n * q.V + q.M.T @ sigma_inv_f)
    i = jnp.arange(1, n + 1, dtype=q.Psi.dtype)
    logdet = _logdet(q.Psi) - n * jnp.log(2.0) - jnp.sum(digamma((q.nu - i + 1.0) / 2.0))
    return Expected(q.M, sigma_inv, sigma_inv_f, ftf, logdet)


def plugin_dynamics(q: MNIW) -> tuple[jax.Array, jax.Array]:
    """Plug-in Gaussian dynamics (E[F], E[Sigma^-1]^-1 = Psi / nu) used by the smoother."""
    return q.M, q.Psi / q.nu


def mean_dynamics(q: MNIW) -> tuple[jax.Array, jax.Array]:
    """Posterior-mean dynamics (M, E[Sigma] = Psi / (nu - n - 1)); nu must exceed n + 1."""
    n = q.Psi.shape[-1]
    return q.M, q.Psi / (q.nu - n - 1.0)


def expected_log_likelihood(q: MNIW, Exx: jax.Array, Eyx: jax.Array, Eyy: jax.Array) -> jax.Array:
    """E_q(F,Sigma) E[log N(y; F x, Sigma)] from second moments E[xx^T], E[yx^T], E[yy^T].

    Moments may be summed over transitions; then pass the count via broadcasting of the
    normaliser yourself. Here one transition: Exx [p, p], Eyx [n, p], Eyy [n, n] -> [].
    """
    e = expected(q)
    n = e.Sigma_inv.shape[-1]
    quad = (
        jnp.sum(e.Sigma_inv * Eyy)
        - 2.0 * jnp.sum(e.Sigma_inv_F * Eyx)
        + jnp.sum(e.FT_Sigma_inv_F * Exx)
    )
    return -0.5 * (n * jnp.log(2.0 * jnp.pi) + e.logdet_Sigma + quad)


def kl(q: MNIW, p: MNIW) -> jax.Array:
    """KL(q(F, Sigma) || p(F, Sigma)) in closed form.

    KL = KL_IW(q(Sigma) || p(Sigma)) + E_q(Sigma)[KL(MN(Mq, Sigma, Vq) || MN(Mp, Sigma, Vp))], with
      KL_MN = 1/2 [n tr(Vp^-1 Vq) + tr(Vp^-1 D^T Sigma^-1 D) - n p + n log|Vp|/|Vq|], D = Mq - Mp,
      KL_IW = nu_q/2 log|Psi_q| - nu_p/2 log|Psi_p| - (nu_q - nu_p) n/2 log 2
              - log Gamma_n(nu_q/2) + log Gamma_n(nu_p/2) - (nu_q - nu_p)/2 E[log|Sigma|]
              - nu_q n / 2 + nu_q/2 tr(Psi_p Psi_q^-1).
    """
    n, p_dim = q.M.shape[-2], q.M.shape[-1]
    e = expected(q)
    vp_inv = _chol_inv(p.V)
    diff = q.M - p.M
    kl_mn = 0.5 * (
        n * jnp.sum(vp_inv * q.V)
        + jnp.sum(vp_inv * (diff.T @ e.Sigma_inv @ diff))
        - n * p_dim
        + n * (_logdet(p.V) - _logdet(q.V))
    )
    psi_q_inv = _chol_inv(q.Psi)
    kl_iw = (
        0.5 * q.nu * _logdet(q.Psi)
        - 0.5 * p.nu * _logdet(p.Psi)
        - 0.5 * (q.nu - p.nu) * n * jnp.log(2.0)
        - multigammaln(q.nu / 2.0, n)
        + multigammaln(p.nu / 2.0, n)
        - 0.5 * (q.nu - p.nu) * e.logdet_Sigma
        - 0.5 * q.nu * n
        + 0.5 * q.nu * jnp.sum(p.Psi * psi_q_inv)
    )
    return kl_mn + kl_iw


def stack(q: MNIW, length: int) -> MNIW:
    """Tile one MNIW along a new leading axis (time-varying dynamics initialised from `q`)."""
    return jax.tree.map(lambda x: jnp.broadcast_to(x, (length, *jnp.shape(x))), q)

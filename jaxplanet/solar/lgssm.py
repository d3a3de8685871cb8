"""Structured inference in SOLAR's latent linear-Gaussian state space model.

SOLAR (Zhang et al., ICML 2019, Sec. 4.2) infers q(s_{1:T}) as a product of experts: the LDS
prior p(s_1) prod_t p(s_{t+1} | s_t, a_t) times one Gaussian potential psi_t(s_t; o_t) from the
encoder per frame. With psi_t(s_t) = N(y_t; s_t, R_t) (a pseudo-observation y_t = the encoder mean
with covariance R_t) q is exactly the Kalman smoothing posterior (Johnson et al. 2016, Sec. 4),
computed here by a Kalman filter and RTS smoother under `lax.scan`; vmap for batches.

Shapes: latent n, action m, length T. Dynamics s_{t+1} ~ N(F_t [s_t; a_t], Q_t) with
F [T-1, n, n+m], Q [T-1, n, n], actions [T-1, m].
All solves use Cholesky factors; covariances are symmetrised.

`check_psd` is the host-side guard for bad input: it names the matrix and the time step that is
not symmetric positive definite instead of letting NaNs appear downstream.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.linalg import cho_solve, solve_triangular

__all__ = [
    "Smoothed",
    "PairStats",
    "sym",
    "kalman_filter",
    "smooth_full",
    "smooth",
    "sample",
    "pair_stats",
    "potential_log_expectation",
    "check_psd",
    "filter_step",
]

_LOG2PI = float(np.log(2.0 * np.pi))


class Smoothed(NamedTuple):
    """Posterior of q(s_{1:T}) ∝ p(s_{1:T} | a) prod_t psi_t(s_t).

    Attributes:
      means: [T, n] marginal means.
      covs: [T, n, n] marginal covariances.
      cross: [T-1, n, n] Cov(s_{t+1}, s_t).
      log_z: [] log normaliser: log of the integral of the prior times the potentials, i.e.
        log p(y_{1:T}) of the pseudo-observations.
      filt_means: [T, n] filtered means E[s_t | y_{1:t}].
      filt_covs: [T, n, n] filtered covariances.
      gains: [T-1, n, n] RTS gains G_t (s_t | s_{t+1} has mean m_t + G_t (s_{t+1} - m_{t+1|t})).
      pred_means: [T-1, n] predicted means m_{t+1|t}.
    """

    means: jax.Array
    covs: jax.Array
    cross: jax.Array
    log_z: jax.Array
    filt_means: jax.Array
    filt_covs: jax.Array
    gains: jax.Array
    pred_means: jax.Array


def sym(x: jax.Array) -> jax.Array:
    """(X + X^T) / 2 over the last two axes."""
    return 0.5 * (x + jnp.swapaxes(x, -1, -2))


def _mvn_logpdf_chol(x: jax.Array, mean: jax.Array, chol: jax.Array) -> jax.Array:
    z = solve_triangular(chol, x - mean, lower=True)
    logdet = 2.0 * jnp.sum(jnp.log(jnp.diagonal(chol)))
    return -0.5 * (x.shape[-1] * _LOG2PI + logdet + jnp.sum(z * z))


def _update(mean, cov, y, r):
    """Condition N(mean, cov) on y = s + N(0, r): returns mean, cov, log N(y; mean, cov + r)."""
    chol = jnp.linalg.cholesky(sym(cov + r))
    ll = _mvn_logpdf_chol(y, mean, chol)
    gain_t = cho_solve((chol, True), cov)  # S^-1 P (= K^T)
    new_mean = mean + gain_t.T @ (y - mean)
    new_cov = sym(cov - cov @ gain_t)
    return new_mean, new_cov, ll


def _predict(mean, cov, F, Q, action):
    n = mean.shape[-1]
    Fs = F[:, :n]
    return F @ jnp.concatenate([mean, action]), sym(Fs @ cov @ Fs.T + Q)


def kalman_filter(
    m0: jax.Array,
    P0: jax.Array,
    F: jax.Array,
    Q: jax.Array,
    actions: jax.Array,
    pot_means: jax.Array,
    pot_covs: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Kalman filter with encoder potentials as pseudo-observations.

    Returns:
      filt_means [T, n], filt_covs [T, n, n], pred_means [T-1, n], pred_covs [T-1, n, n] and
      log_z [] (sum of the one-step predictive log-likelihoods of the potentials).
    """
    m1, p1, ll1 = _update(m0, P0, pot_means[0], pot_covs[0])

    def body(carry, inputs):
        mean, cov = carry
        F_t, Q_t, a_t, y, r = inputs
        pm, pc = _predict(mean, cov, F_t, Q_t, a_t)
        mean, cov, ll = _update(pm, pc, y, r)
        return (mean, cov), (mean, cov, pm, pc, ll)

    inputs = (F, Q, actions, pot_means[1:], pot_covs[1:])
    _, (ms, ps, pms, pcs, lls) = jax.lax.scan(body, (m1, p1), inputs)
    means = jnp.concatenate([m1[None], ms])
    covs = jnp.concatenate([p1[None], ps])
    return means, covs, pms, pcs, ll1 + jnp.sum(lls)


def smooth_full(
    m0: jax.Array,
    P0: jax.Array,
    F: jax.Array,
    Q: jax.Array,
    actions: jax.Array,
    pot_means: jax.Array,
    pot_covs: jax.Array,
) -> Smoothed:
    """Kalman filter + RTS smoother; see `smooth` for the arguments. Returns `Smoothed`."""
    n = m0.shape[-1]
    fm, fc, pm, pc, log_z = kalman_filter(m0, P0, F, Q, actions, pot_means, pot_covs)

    def body(carry, inputs):
        sm_next, sc_next = carry
        m, p, F_t, pm_t, pc_t = inputs
        Fs = F_t[:, :n]
        chol = jnp.linalg.cholesky(pc_t)
        gain = cho_solve((chol, True), Fs @ p).T  # P F^T Ppred^-1 (Ppred symmetric)
        sm = m + gain @ (sm_next - pm_t)
        sc = sym(p + gain @ (sc_next - pc_t) @ gain.T)
        return (sm, sc), (sm, sc, sc_next @ gain.T, gain)

    inputs = (fm[:-1], fc[:-1], F, pm, pc)
    _, (sms, scs, cross, gains) = jax.lax.scan(body, (fm[-1], fc[-1]), inputs, reverse=True)
    means = jnp.concatenate([sms, fm[-1:]])
    covs = jnp.concatenate([scs, fc[-1:]])
    return Smoothed(means, covs, cross, log_z, fm, fc, gains, pm)


def smooth(
    m0: jax.Array,
    P0: jax.Array,
    F: jax.Array,
    Q: jax.Array,
    actions: jax.Array,
    pot_means: jax.Array,
    pot_covs: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Marginals of q(s_t) ∝ p(s_1) prod p(s_{t+1} | s_t, a_t) prod psi_t(s_t).

    Args:
      m0: [n] mean of p(s_1).
      P0: [n, n] covariance of p(s_1).
      F: [T-1, n, n+m] dynamics matrices (s_{t+1} ~ N(F_t [s_t; a_t], Q_t)).
      Q: [T-1, n, n] dynamics noise covariances.
      actions: [T-1, m].
      pot_means: [T, n] potential means: psi_t(s_t) = N(pot_means_t; s_t, pot_covs_t).
      pot_covs: [T, n, n] potential covariances.

    Returns:
      means [T, n], covs [T, n, n]. `smooth_full` also gives cross-covariances and log Z.
    """
    out = smooth_full(m0, P0, F, Q, actions, pot_means, pot_covs)
    return out.means, out.covs


def sample(post: Smoothed, Q: jax.Array, F: jax.Array, key: jax.Array) -> jax.Array:
    """One joint sample s_{1:T} ~ q by forward-filter backward-sample (reparameterised).

    s_T ~ N(m_T, P_T); s_t | s_{t+1} ~ N(m_t + G_t (s_{t+1} - m_{t+1|t}), P_t - G_t Ppred G_t^T),
    with Ppred = F_s P_t F_s^T + Q_t.

    Args:
      post: `smooth_full` output.
      Q: [T-1, n, n] and F: [T-1, n, n+m] the dynamics used for smoothing.
      key: PRNG key.

    Returns:
      [T, n] sample.
    """
    T, n = post.filt_means.shape
    noise = jax.random.normal(key, (T, n), post.filt_means.dtype)
    jitter = 1e-6 * jnp.eye(n, dtype=noise.dtype)
    last = post.filt_means[-1] + jnp.linalg.cholesky(post.filt_covs[-1] + jitter) @ noise[-1]

    def body(s_next, inputs):
        m, p, F_t, Q_t, gain, pm, eps = inputs
        Fs = F_t[:, :n]
        ppred = sym(Fs @ p @ Fs.T + Q_t)
        cov = sym(p - gain @ ppred @ gain.T)
        s = m + gain @ (s_next - pm) + jnp.linalg.cholesky(cov + jitter) @ eps
        return s, s

    inputs = (
        post.filt_means[:-1],
        post.filt_covs[:-1],
        F,
        Q,
        post.gains,
        post.pred_means,
        noise[:-1],
    )
    _, states = jax.lax.scan(body, last, inputs, reverse=True)
    return jnp.concatenate([states, last[None]])


class PairStats(NamedTuple):
    """Expected second moments of q for each transition t -> t+1 (x_t = [s_t; a_t], y = s_{t+1}).

    Attributes:
      Exx: [T-1, p, p] E[x x^T];  Eyx: [T-1, n, p] E[y x^T];  Eyy: [T-1, n, n] E[y y^T].
    """

    Exx: jax.Array
    Eyx: jax.Array
    Eyy: jax.Array


def pair_stats(post: Smoothed, actions: jax.Array) -> PairStats:
    """E_q[x_t x_t^T], E_q[s_{t+1} x_t^T], E_q[s_{t+1} s_{t+1}^T] from the smoothed posterior."""
    m, P = post.means, post.covs
    x = jnp.concatenate([m[:-1], actions], axis=-1)
    n, p = m.shape[-1], x.shape[-1]
    Exx = jnp.einsum("ti,tj->tij", x, x)
    Exx = Exx.at[:, :n, :n].add(P[:-1])
    Eyx = jnp.einsum("ti,tj->tij", m[1:], x)
    Eyx = Eyx.at[:, :, :n].add(post.cross)
    Eyy = jnp.einsum("ti,tj->tij", m[1:], m[1:]) + P[1:]
    del p
    return PairStats(Exx, Eyx, Eyy)


def potential_log_expectation(
    post: Smoothed, pot_means: jax.Array, pot_covs: jax.Array
) -> jax.Array:
    """sum_t E_q[log N(y_t; s_t, R_t)] (used in the local KL term). Returns []."""

    def one(m, P, y, r):
        chol = jnp.linalg.cholesky(sym(r))
        tr = jnp.trace(cho_solve((chol, True), P))
        return _mvn_logpdf_chol(y, m, chol) - 0.5 * tr

    return jnp.sum(jax.vmap(one)(post.means, post.covs, pot_means, pot_covs))


def check_psd(name: str, matrices: jax.Array | np.ndarray, max_cond: float = 1e7) -> None:
    """Host-side guard: raise ValueError naming `name` and the index of a bad matrix.

    A matrix is bad if it has a non-finite entry, is not symmetric (relative 1e-4), is not
    positive definite, or its condition number exceeds `max_cond`. Call outside `jit`
    (e.g. on the inputs of a jitted smoother, or on returned covariances).

    Args:
      name: what the matrices are ("Q", "pot_covs", ...), used in the message.
      matrices: [..., n, n]; the leading axes index the steps.
    """
    x = np.asarray(matrices, np.float64)
    lead = x.shape[:-2]
    flat = x.reshape((-1,) + x.shape[-2:])
    for i, a in enumerate(flat):
        where = f"{name}[{', '.join(map(str, np.unravel_index(i, lead)))}]" if lead else name
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{where} has non-finite entries")
        scale = max(np.abs(a).max(), 1e-30)
        if np.abs(a - a.T).max() > 1e-4 * scale:
            raise ValueError(f"{where} is not symmetric")
        eig = np.linalg.eigvalsh(0.5 * (a + a.T))
        if eig[0] <= 0:
            raise ValueError(f"{where} is not positive definite (min eigenvalue {eig[0]:.3g})")
        if eig[-1] / eig[0] > max_cond:
            raise ValueError(
                f"{where} is ill-conditioned (condition number {eig[-1] / eig[0]:.3g} > "
                f"{max_cond:.3g})"
            )


def filter_step(
    mean: jax.Array,
    cov: jax.Array,
    F: jax.Array,
    Q: jax.Array,
    action: jax.Array,
    pot_mean: jax.Array,
    pot_cov: jax.Array,
    first: jax.Array | bool,
) -> tuple[jax.Array, jax.Array]:
    """One online Kalman step for acting: predict with (F, Q, action) unless `first`, then
    condition on the potential N(pot_mean; s, pot_cov).

    Args:
      mean, cov: [n], [n, n] previous filtered belief (the prior p(s_1) when `first`).
      F, Q: [n, n+m], [n, n] dynamics of the last transition; action: [m].
      pot_mean, pot_cov: [n], [n, n] the encoder potential of the new frame.
      first: bool [], skip the prediction.

    Returns:
      filtered mean [n], covariance [n, n].
    """
    pm, pc = _predict(mean, cov, F, Q, action)
    pm = jnp.where(first, mean, pm)
    pc = jnp.where(first, cov, pc)
    new_mean, new_cov, _ = _update(pm, pc, pot_mean, pot_cov)
    return new_mean, new_cov

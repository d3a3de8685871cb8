"""SOLAR's model fits for control (Zhang et al., ICML 2019, Sec. 5), on top of the latent
model in `jaxplanet.solar`:

* `fit_local_dynamics`: time-varying local dynamics (F_t, Sigma_t) by EM on new rollouts, with
  q(F, Sigma) as the prior (empirical Bayes);
* `fit_cost`: the quadratic cost refit on inferred states (C = L L^T stays PSD);
* `inferred_states`: the posterior latent means those fits use;
* `latent_step`: the linear-Gaussian latent model in the planners' ``step(state, action, key)``
  protocol (the MPC baseline).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxplanet.solar import lgssm, mniw
from jaxplanet.solar.model import ModelConfig, encode_rollouts, per_step, plugin, predict_cost

__all__ = ["fit_local_dynamics", "inferred_states", "fit_cost", "latent_step"]


def fit_local_dynamics(
    params: dict,
    cfg: ModelConfig,
    q: mniw.MNIW,
    obs: jax.Array,
    actions: jax.Array,
    data_strength: float,
    em_iterations: int,
) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
    """EM fit of time-varying local dynamics (F_t, Sigma_t) with q(F, Sigma) as the prior.

    Empirical Bayes (SOLAR Sec. 5): the E-step smooths the rollouts with the current (F_t, Sigma_t);
    the M-step takes the MNIW posterior mean with prior q(F, Sigma) and the rollouts' average
    expected statistics weighted by `data_strength` (pseudo-rollouts).

    Args:
      obs: uint8 [N, T+1, 64, 64, 3] new rollouts; actions: [N, T, m].

    Returns:
      F [T, n, n+m], Sigma [T, n, n], and the initial state mean [n], covariance [n, n].
    """
    n, T = cfg.latent, actions.shape[1]
    pm, pv = encode_rollouts(params, cfg, obs)
    pc = jax.vmap(jax.vmap(jnp.diag))(pv)
    q_t = per_step(q, cfg, T)
    F, Q = jax.vmap(mniw.plugin_dynamics)(q_t)
    m0, P0 = jnp.zeros(n), jnp.eye(n)

    def smooth_all(F, Q):
        fn = lambda a, y, r: lgssm.smooth_full(m0, P0, F, Q, a, y, r)  # noqa: E731
        return jax.vmap(fn)(actions, pm, pc)

    def em(carry, _):
        F, Q = carry
        post = smooth_all(F, Q)
        pairs = jax.vmap(lgssm.pair_stats)(post, actions)
        stats = mniw.Stats(pairs.Exx.mean(0), pairs.Eyx.mean(0), pairs.Eyy.mean(0), jnp.ones((T,)))
        fit = jax.vmap(lambda q1, s: mniw.posterior_stable(q1, s, data_strength))(q_t, stats)
        return jax.vmap(mniw.mean_dynamics)(fit), None

    (F, Q), _ = jax.lax.scan(em, (F, Q), None, em_iterations)
    post = smooth_all(F, Q)
    mu0 = post.means[:, 0].mean(0)
    d = post.means[:, 0] - mu0
    sigma0 = lgssm.sym(post.covs[:, 0].mean(0) + d.T @ d / d.shape[0]) + 1e-6 * jnp.eye(n)
    return F, Q, mu0, sigma0


def inferred_states(
    params: dict, cfg: ModelConfig, q: mniw.MNIW, obs: jax.Array, actions: jax.Array
) -> jax.Array:
    """Posterior means of the latents of a batch of rollouts (smoothed; the encoder's own means
    in the VAE ablation): obs uint8 [N, T+1, 64, 64, 3], actions [N, T, m] -> [N, T+1, n]."""
    pm, pv = encode_rollouts(params, cfg, obs)
    if cfg.variant == "vae":
        return pm
    n, T = cfg.latent, actions.shape[1]
    F, Q = plugin(q, cfg, T)
    pc = jax.vmap(jax.vmap(jnp.diag))(pv)
    fn = lambda a, y, r: lgssm.smooth_full(jnp.zeros(n), jnp.eye(n), F, Q, a, y, r).means  # noqa: E731
    return jax.vmap(fn)(actions, pm, pc)


def fit_cost(
    params: dict,
    cfg: ModelConfig,
    q: mniw.MNIW,
    batch: dict,
    steps: int,
    lr: float,
) -> tuple[dict, jax.Array]:
    """Refit the quadratic cost on inferred states (the released code's cost refit, C = L L^T).

    The joint ELBO moves the cost parameters by at most ~lr per Adam step, far too slowly to
    follow a representation that is still changing; this fits them to convergence on the
    current latents: `steps` full-batch Adam steps (warm-started from ``params["cost"]``) on the
    Gaussian negative log-likelihood of the observed costs given the posterior means.

    Args:
      batch: a SOLAR batch: obs uint8 [N, T+1, 64, 64, 3], action [N, T, m], cost [N, T].
      steps: Adam steps; lr: their learning rate.

    Returns:
      (new ``params["cost"]``, root-mean-square cost error [] after the fit).
    """
    s = inferred_states(params, cfg, q, batch["obs"], batch["action"])
    s = jax.lax.stop_gradient(s[:, :-1].reshape(-1, cfg.latent))
    a = batch["action"].reshape(s.shape[0], -1)
    y = batch["cost"].reshape(-1)

    def nll(cost):
        err = (y - predict_cost({"cost": cost}, s, a)) * jnp.exp(-cost["log_std"])
        return jnp.mean(0.5 * err**2 + cost["log_std"])

    opt = optax.adam(lr)

    def body(carry, _):
        cost, state = carry
        grads = jax.grad(nll)(cost)
        updates, state = opt.update(grads, state, cost)
        return (optax.apply_updates(cost, updates), state), None

    cost = params["cost"]
    (cost, _), _ = jax.lax.scan(body, (cost, opt.init(cost)), None, steps)
    rmse = jnp.sqrt(jnp.mean((y - predict_cost({"cost": cost}, s, a)) ** 2))
    return cost, rmse


def latent_step(params: dict, cfg: ModelConfig, F: jax.Array, Q: jax.Array, action_cost: float):
    """`step((s, t), action, key) -> ((s', t + 1), reward)` on the linear-Gaussian latent model.

    Samples s' ~ N(F_t [s; a], Q_t) (t clipped to the last step) and rewards minus the learned
    cost plus the known action cost 1/2 a^T R a. F [T, n, n+m], Q [T, n, n].
    """
    chol = jnp.linalg.cholesky(Q)

    def step(state, action, key):
        s, t = state
        i = jnp.minimum(t, F.shape[0] - 1)
        mean = F[i] @ jnp.concatenate([s, action])
        nxt = mean + chol[i] @ jax.random.normal(key, s.shape, s.dtype)
        cost = predict_cost(params, s, action) + 0.5 * action_cost * jnp.sum(action**2)
        return (nxt, t + 1), -cost

    return step

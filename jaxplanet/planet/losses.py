"""PlaNet losses: the negative ELBO with free nats and latent overshooting.

Hafner et al., "Learning Latent Dynamics for Planning from Pixels", ICML 2019, Eq. 3 and Eq. 7,
with the reductions and weights of the authors' released code.

Loss (minimised) for a batch of B chunks of T steps, reduced as a SUM over pixels and latent
dims and a MEAN over batch and time:

  loss       = image_scale * image_nll + reward_scale * reward_nll + KL term
  image_nll  = mean_{b,t} 0.5 * sum_pixels (x_t - mu_x(h_t, s_t))^2
  reward_nll = mean_{b,t} 0.5 * (r_t - mu_r(h_t, s_t))^2

Both likelihoods are unit-variance Gaussians; their constant 0.5 * log(2 pi) per dimension is
left out, so the NLLs are 0 for a perfect prediction. x_t is the 5-bit image with
dequantisation noise in [-0.5, 0.5]. The released code weighs the reward by 10.

Free nats: the KL summed over latent dims is clamped per (b, t) pair, max(KL, free_nats),
before averaging, so pairs whose KL is already below ``free_nats`` contribute no gradient.

KL term, with KL_1(b, t) = KL(q(s_t | o_<=t) || p(s_t | s_t-1)) (the standard ELBO's) and, for
d >= 2, KL_d(b, t) = KL(sg(q(s_t)) || p(s_t | s_t-d)) where p(s_t | s_t-d) rolls the prior d steps
(sampling) from the posterior sample at t - d with the recorded actions (sg = stop-gradient on
the posterior target, as in the paper):

  KL term = kl_scale * mean_{b,t} max(KL_1, free_nats)
            + beta * mean_{(b,t,d) valid, 2 <= d <= D} max(KL_d, free_nats)

D = ``overshooting_distance``, beta = ``overshooting_kl_scale``. As in the released code, the
one-step KL keeps its weight and the d >= 2 terms are added, averaged over all their valid
pairs; a pair is valid when its window stays inside the chunk and crosses no episode start
(is_first). D <= 1 is exactly the standard ELBO (value and gradients). (The paper's Eq. 7
instead averages KL_1..KL_D with weights beta_d / D; the released agent of Table 1 runs without
overshooting, D = 0.) ``overshooting_reward_scale`` (0, as released) adds the reward NLL of the
d >= 2 priors, averaged over the same pairs.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jaxplanet.nn.networks import preprocess
from jaxplanet.planet import rssm
from jaxplanet.planet.model import ModelConfig, WorldModel, _apply, reward

__all__ = [
    "kl_loss",
    "loss",
]

f32 = jnp.float32


def _overshooting(
    params: dict, cfg: ModelConfig, post: rssm.State, batch: dict, key: jax.Array
) -> dict[str, jax.Array]:
    """Latent overshooting sums for d = 2..D, one ``lax.scan`` over d = 1..D.

    All B * T posteriors start a prior rollout at once; step d uses actions[t + d].
    Returns per-d sums [D] (index d - 1) of the clamped KL, raw KL, valid-pair count and
    reward NLL.
    """
    dist, steps = cfg.overshooting_distance, batch["is_first"].shape[1]

    def pad(x: jax.Array, value: float | bool) -> jax.Array:
        fill = jnp.full((x.shape[0], dist) + x.shape[2:], value, x.dtype)
        return jnp.concatenate([x, fill], axis=1)

    def shift(x: jax.Array, d: jax.Array) -> jax.Array:
        return jax.lax.dynamic_slice_in_dim(x, d, steps, axis=1)

    sg = jax.lax.stop_gradient
    action, first = pad(batch["action"], 0.0), pad(batch["is_first"], True)
    tgt_mean, tgt_std = pad(sg(post.mean), 0.0), pad(sg(post.std), 1.0)
    rewards = pad(batch["reward"].astype(f32), 0.0)

    def body(carry: tuple, inputs: tuple) -> tuple[tuple, dict]:
        state, valid = carry
        d, key_d = inputs
        valid = valid & ~shift(first, d)
        state = rssm.img_step(params, cfg, state, shift(action, d), key_d)
        target = state._replace(mean=shift(tgt_mean, d), std=shift(tgt_std, d))
        kl = rssm.kl(cfg, target, state)
        w = valid.astype(f32)
        out = {
            "kl_fn": jnp.sum(jnp.maximum(kl, cfg.free_nats) * w),
            "kl": jnp.sum(kl * w),
            "count": jnp.sum(w),
        }
        if cfg.overshooting_reward_scale:
            pred = reward(params, cfg, rssm.features(state))
            out["reward_nll"] = jnp.sum(0.5 * jnp.square(shift(rewards, d) - pred) * w)
        return (state, valid), out

    valid0 = jnp.ones(batch["is_first"].shape, bool)
    inputs = (jnp.arange(1, dist + 1), jax.random.split(key, dist))
    _, out = jax.lax.scan(body, (post, valid0), inputs)
    return out


def kl_loss(
    params: dict, cfg: ModelConfig, post: rssm.State, prior: rssm.State, batch: dict, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Latent part of the loss: free-nats KL plus latent overshooting (module docstring).

    Args:
      params: world-model variables (RSSM cell; reward head for the overshooting reward term).
      cfg: model config.
      post, prior: State[B, T] from :func:`rssm.observe`.
      batch: 'action' [B, T, A], 'is_first' [B, T] and 'reward' [B, T].
      key: PRNG key for the overshooting prior samples.

    Returns:
      (KL term + weighted overshooting reward term, metrics: kl (one-step, after free nats),
      kl_raw, overshooting_kl (mean raw KL of the valid d >= 2 pairs), overshooting_reward_nll).
    """
    kl_t = rssm.kl(cfg, post, prior)  # [B, T], summed over latent dims
    kl = jnp.mean(jnp.maximum(kl_t, cfg.free_nats))  # free nats per (b, t)
    term = cfg.kl_scale * kl
    over_kl = over_reward = jnp.zeros((), f32)
    if cfg.overshooting_distance > 1:
        out = _overshooting(params, cfg, post, batch, key)
        count = jnp.maximum(out["count"][1:].sum(), 1.0)  # valid pairs with d >= 2
        term = term + cfg.overshooting_kl_scale * out["kl_fn"][1:].sum() / count
        over_kl = out["kl"][1:].sum() / count
        if cfg.overshooting_reward_scale:
            over_reward = out["reward_nll"][1:].sum() / count
            term = term + cfg.overshooting_reward_scale * over_reward
    metrics = {
        "kl": kl,
        "kl_raw": jnp.mean(kl_t),
        "overshooting_kl": over_kl,
        "overshooting_reward_nll": over_reward,
    }
    return term, metrics


def loss(
    params: dict, cfg: ModelConfig, batch: dict, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative ELBO of a replay batch (see the module docstring for every term).

    Args:
      params: world-model variables.
      cfg: model config (static under jit).
      batch: 'obs' uint8 [B, T, 64, 64, 3], 'action' [B, T, A], 'reward' [B, T],
        'is_first' bool [B, T].
      key: PRNG key, split into (dequantisation noise, posterior samples, overshooting).

    Returns:
      (loss scalar, metrics dict of scalars: loss, image_nll, reward_nll, the :func:`kl_loss`
      metrics, prior_std, post_std and, except for "rnn", prior_entropy / post_entropy).
    """
    k_noise, k_post, k_over = jax.random.split(key, 3)
    obs = preprocess(batch["obs"], k_noise, cfg.bits)
    embed = _apply(params, cfg, WorldModel.encode, obs)
    post, prior = rssm.observe(params, cfg, embed, batch["action"], batch["is_first"], k_post)
    feat = rssm.features(post)
    image = _apply(params, cfg, WorldModel.decode, feat)
    image_nll = jnp.mean(0.5 * jnp.sum(jnp.square(obs - image), axis=(-3, -2, -1)))
    reward_pred = _apply(params, cfg, WorldModel.predict_reward, feat)
    reward_nll = jnp.mean(0.5 * jnp.square(batch["reward"].astype(f32) - reward_pred))
    latent, latent_metrics = kl_loss(params, cfg, post, prior, batch, k_over)
    total = cfg.image_scale * image_nll + cfg.reward_scale * reward_nll + latent
    metrics = {
        "loss": total,
        "image_nll": image_nll,
        "reward_nll": reward_nll,
        **latent_metrics,
        "prior_std": jnp.mean(prior.std),
        "post_std": jnp.mean(post.std),
    }
    if cfg.variant != "rnn":
        metrics["prior_entropy"] = jnp.mean(rssm.entropy(prior))
        metrics["post_entropy"] = jnp.mean(rssm.entropy(post))
    return total, metrics

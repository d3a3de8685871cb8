"""PlaNet world model: config, Linen module, ELBO with free nats and latent overshooting, training.

Hafner et al., "Learning Latent Dynamics for Planning from Pixels", ICML 2019.

Loss (minimised; the negative of the paper's bound, Eq. 3 / Eq. 7) for a batch of B chunks of
T steps, reduced as a SUM over pixels and latent dims and a MEAN over batch and time:

  loss       = image_scale * image_nll + reward_scale * reward_nll + KL term
  image_nll  = mean_{b,t} 0.5 * sum_pixels (x_t - mu_x(h_t, s_t))^2
  reward_nll = mean_{b,t} 0.5 * (r_t - mu_r(h_t, s_t))^2

Both likelihoods are unit-variance Gaussians; their constant 0.5 * log(2 pi) per dimension is
left out, so the NLLs are 0 for a perfect prediction. x_t is the 5-bit image with
dequantisation noise in [-0.5, 0.5].

Free nats (PlaNet's choice): the KL summed over latent dims is clamped per time step,
max(KL_t, free_nats), before averaging over batch and time, so steps whose KL is already below
``free_nats`` contribute no gradient.

KL term. Without overshooting (D = ``overshooting_distance`` = 0):
kl_scale * mean_t max(KL(q(s_t | o_<=t) || p(s_t | s_t-1)), free_nats). With latent overshooting
(D >= 1) it is Eq. 7, (1 / D) * sum_{d=1..D} beta_d * KL_d with
  * KL_1 the one-step term above, beta_1 = ``kl_scale`` (gradients reach the posterior);
  * KL_d (d >= 2) = sum over valid t of max(KL(sg(q(s_t)) || p(s_t | s_t-d)), free_nats) / (B T),
    where p(s_t | s_t-d) rolls the prior d steps (sampling) from the posterior sample at t - d
    with the recorded actions; sg = stop-gradient on the posterior target, as in the paper; pairs
    whose window runs past the chunk or crosses an episode start (is_first) are left out;
    beta_d = ``overshooting_kl_scale``.
So D = 1 is exactly the standard ELBO (value and gradients); for D > 1 the one-step KL weighs
kl_scale / D, as in Eq. 7 (overshooting_kl_scale = 0 does not restore the standard ELBO; D = 0
does). ``overshooting_reward_scale``
(default 0, as in PlaNet's released config) adds the reward NLL of the d-step priors, averaged
the same way over d = 1..D.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxplanet import rssm
from jaxplanet.networks import MLP, ConvDecoder, ConvEncoder, postprocess, preprocess

f32 = jnp.float32


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """PlaNet model, loss and optimiser settings; defaults are the paper's."""

    depth: int = _field(32, "conv channel multiplier (encoder 32/64/128/256)")
    deter: int = _field(200, "deterministic GRU state size")
    stoch: int = _field(30, "stochastic state size")
    hidden: int = _field(200, "RSSM hidden layer size")
    min_std: float = _field(0.1, "minimum std of prior/posterior")
    variant: Literal["rssm", "ssm", "rnn"] = _field("rssm", "latent model (paper ablations)")
    gru_update_bias: float = _field(-1.0, "bias on the GRU update gate")
    reward_hidden: int = _field(200, "reward MLP hidden size")
    reward_layers: int = _field(2, "reward MLP hidden layers")
    bits: int = _field(5, "image bit depth after quantisation")
    free_nats: float = _field(3.0, "KL free nats per time step")
    kl_scale: float = _field(1.0, "beta_1: weight of the one-step KL")
    overshooting_distance: int = _field(50, "latent overshooting distance D (0 disables)")
    overshooting_kl_scale: float = _field(1.0, "beta_d for d > 1 (Eq. 7)")
    overshooting_reward_scale: float = _field(0.0, "weight of the d-step reward NLL")
    image_scale: float = _field(1.0, "weight of the image NLL")
    reward_scale: float = _field(1.0, "weight of the reward NLL")
    lr: float = _field(1e-3, "Adam learning rate")
    adam_eps: float = _field(1e-4, "Adam epsilon")
    grad_clip: float = _field(1000.0, "global gradient-norm clip")
    dtype: str = _field("float32", "compute dtype (params stay float32)")
    conv_impl: str = _field("auto", "conv implementation: auto | xla | fast (networks.py)")

    def __post_init__(self) -> None:
        if self.variant not in rssm.VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {rssm.VARIANTS}")
        if self.overshooting_distance < 0:
            raise ValueError("overshooting_distance must be >= 0")

    @property
    def embed_dim(self) -> int:
        """Encoder output size for 64x64 images (1024 at depth 32)."""
        return 32 * self.depth

    @classmethod
    def paper(cls, **changes: Any) -> ModelConfig:
        """The published settings (the defaults), with ``changes``."""
        return dataclasses.replace(cls(), **changes)

    @classmethod
    def tiny(cls, **changes: Any) -> ModelConfig:
        """A very small model for tests and smoke runs."""
        small = dict(depth=4, deter=16, stoch=4, hidden=16, reward_hidden=16)
        return dataclasses.replace(cls(overshooting_distance=0, **small), **changes)


class WorldModel(nn.Module):
    """Encoder, RSSM cell, image decoder and reward head; variables under their names."""

    cfg: ModelConfig

    def setup(self) -> None:
        cfg, dtype = self.cfg, jnp.dtype(self.cfg.dtype)
        self.encoder = ConvEncoder(cfg.depth, cfg.conv_impl, dtype)
        self.decoder = ConvDecoder(cfg.depth, 3, cfg.conv_impl, dtype)
        self.rssm = rssm.make_cell(cfg)
        self.reward = MLP((cfg.reward_hidden,) * cfg.reward_layers + (1,), dtype=dtype)

    def encode(self, obs: jax.Array) -> jax.Array:
        """Preprocessed images [..., 64, 64, 3] -> embeddings [..., E]."""
        return self.encoder(obs)

    def decode(self, feat: jax.Array) -> jax.Array:
        """Features [..., D + S] -> image means [..., 64, 64, 3]."""
        return self.decoder(feat)

    def predict_reward(self, feat: jax.Array) -> jax.Array:
        """Features [..., D + S] -> reward means [...]."""
        return self.reward(feat)[..., 0]

    def __call__(self, obs: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array]:
        embed = self.encode(obs)
        state = rssm.initial_state(self.cfg, obs.shape[:-3])
        post, _ = self.rssm(state, action, embed)
        feat = rssm.features(post)
        return self.decode(feat), self.predict_reward(feat)


def init(cfg: ModelConfig, key: jax.Array, action_dim: int) -> dict:
    """World-model variables ``{"params": {encoder, decoder, rssm, reward}}``."""
    obs = jnp.zeros((1, 64, 64, 3), f32)
    return WorldModel(cfg).init(key, obs, jnp.zeros((1, action_dim), f32))


def _apply(params: dict, cfg: ModelConfig, method: Any, *args: Any) -> Any:
    return WorldModel(cfg).apply(params, *args, method=method)


def encode(
    params: dict, cfg: ModelConfig, obs: jax.Array, key: jax.Array | None = None
) -> jax.Array:
    """uint8 images [..., 64, 64, 3] -> embeddings [..., E] (dequantisation noise with key)."""
    return _apply(params, cfg, WorldModel.encode, preprocess(obs, key, cfg.bits))


def decode(params: dict, cfg: ModelConfig, feat: jax.Array) -> jax.Array:
    """Features [..., D + S] -> image means [..., 64, 64, 3] in model space ([-0.5, 0.5])."""
    return _apply(params, cfg, WorldModel.decode, feat)


def reward(params: dict, cfg: ModelConfig, feat: jax.Array) -> jax.Array:
    """Features [..., D + S] -> predicted rewards [...]."""
    return _apply(params, cfg, WorldModel.predict_reward, feat)


def _overshooting(
    params: dict, cfg: ModelConfig, post: rssm.State, batch: dict, key: jax.Array
) -> dict[str, jax.Array]:
    """Latent overshooting sums for d = 1..D (Eq. 7), one ``lax.scan`` over d.

    All B * T posteriors start a prior rollout at once; step d uses actions[t + d].
    Returns per-d sums [D] of the clamped KL, raw KL, valid-pair count and reward NLL.
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
    """Latent part of the loss: free-nats KL and latent overshooting (Eq. 7).

    Args:
      params: world-model variables (RSSM cell; reward head for the overshooting reward term).
      cfg: model config.
      post, prior: State[B, T] from :func:`rssm.observe`.
      batch: 'action' [B, T, A], 'is_first' [B, T] and 'reward' [B, T].
      key: PRNG key for the overshooting prior samples.

    Returns:
      (weighted KL term + weighted overshooting reward term, metrics: kl (after free nats),
      kl_raw, overshooting_kl (mean raw KL of the valid d >= 2 pairs), overshooting_reward_nll).
    """
    kl_t = rssm.kl(cfg, post, prior)  # [B, T], summed over latent dims
    kl = jnp.mean(jnp.maximum(kl_t, cfg.free_nats))  # free nats per time step
    over_kl = over_reward = jnp.zeros((), f32)
    if cfg.overshooting_distance:
        dist, n = cfg.overshooting_distance, kl_t.size
        out = _overshooting(params, cfg, post, batch, key)
        beta = cfg.overshooting_kl_scale
        term = (cfg.kl_scale * kl + beta * out["kl_fn"][1:].sum() / n) / dist  # Eq. 7
        over_kl = out["kl"][1:].sum() / jnp.maximum(out["count"][1:].sum(), 1.0)
        if cfg.overshooting_reward_scale:
            over_reward = out["reward_nll"].sum() / (n * dist)
            term = term + cfg.overshooting_reward_scale * over_reward
    else:
        term = cfg.kl_scale * kl
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


@flax.struct.dataclass
class TrainState:
    """Parameters, optimiser state and update counter (int32 [])."""

    params: Any
    opt_state: Any
    step: jax.Array


class NonFiniteLossError(FloatingPointError):
    """A training step produced a non-finite loss, loss term or gradient norm."""


def make_optimizer(cfg: ModelConfig) -> optax.GradientTransformation:
    """Global-norm clipping then Adam (paper: clip 1000, lr 1e-3, eps 1e-4)."""
    return optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr, eps=cfg.adam_eps)
    )


def init_train_state(cfg: ModelConfig, key: jax.Array, action_dim: int) -> TrainState:
    """Fresh parameters and optimiser state."""
    params = init(cfg, key, action_dim)
    return TrainState(params, make_optimizer(cfg).init(params), jnp.zeros((), jnp.int32))


def train_step(
    state: TrainState, batch: dict, key: jax.Array, cfg: ModelConfig
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam update on :func:`loss`; pure, jit with ``static_argnames="cfg"``.

    Where the loss or gradient norm is non-finite the parameters and optimiser state are kept
    (the step counter still advances) and ``metrics["finite"]`` is False; call
    :func:`check_finite` on the host to stop the run.

    Returns:
      (new state, metrics: the loss metrics plus grad_norm and finite (bool)).
    """
    (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state.params, cfg, batch, key)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    keep = lambda new, old: jnp.where(finite, new, old)
    new = TrainState(
        jax.tree.map(keep, params, state.params),
        jax.tree.map(keep, opt_state, state.opt_state),
        state.step + 1,
    )
    return new, {**metrics, "grad_norm": grad_norm, "finite": finite}


def check_finite(metrics: dict, step: int) -> None:
    """Raise :class:`NonFiniteLossError` naming ``step`` and every non-finite metric."""
    bad = {
        name: np.asarray(value)
        for name, value in metrics.items()
        if name != "finite" and not np.all(np.isfinite(np.asarray(value)))
    }
    if bad or not bool(np.all(np.asarray(metrics.get("finite", True)))):
        terms = ", ".join(f"{k}={v}" for k, v in bad.items()) or "gradients"
        raise NonFiniteLossError(f"non-finite training values at step {step}: {terms}")


def latent_step(params: dict, cfg: ModelConfig):
    """Transition for planners: ``step(state: State[...], action [..., A]) -> (State, reward)``.

    Uses the prior mean (deterministic; the CEM contract has no key) and the reward head on the
    next state's features.
    """

    def step(state: rssm.State, action: jax.Array) -> tuple[rssm.State, jax.Array]:
        next_state = rssm.img_step(params, cfg, state, action)
        return next_state, reward(params, cfg, rssm.features(next_state))

    return step


class PlanState(NamedTuple):
    """Planning state of :func:`fused_latent_step`.

    ``stoch_proj`` is the prior mean (less its output bias, which is folded into the consumers'
    biases) times ``[img_in's stoch rows | reward dense0's stoch rows]``: the next step's input
    layer and this step's reward features both read it.
    """

    deter: jax.Array  # [..., D] GRU state
    stoch_proj: jax.Array  # [..., hidden + reward_hidden]


class FusedStep(NamedTuple):
    """What :func:`fused_latent_step` returns; plan with
    ``cem.plan(f.step, f.start(belief), key, action_dim=A, readout=f.readout)``.

    Attributes:
      start: ``start(State[...]) -> PlanState[...]``, once per plan (identity when not fused).
      step: ``step(PlanState[...], action [..., A]) -> (PlanState, features [..., R])`` where
        ``features`` is the reward head's last hidden layer (``latent_step`` and a scalar reward
        when not fused).
      readout: ``readout(features [..., R], weight []) -> reward [...]``, the reward head's
        output layer ``features @ w + weight * b``; the planner applies it once to the
        (discounted) sum of a sequence's features (``cem.evaluate``). ``None`` when not fused.
    """

    start: Callable[[rssm.State], Any]
    step: Callable[[Any, jax.Array], tuple[Any, jax.Array]]
    readout: Callable[[jax.Array, jax.Array], jax.Array] | None


def fuses_latent_step(cfg: ModelConfig) -> bool:
    """Whether :func:`fused_latent_step` fuses for ``cfg`` (the "rssm" variant in float32)."""
    return cfg.variant == "rssm" and jnp.dtype(cfg.dtype) == jnp.float32


def fused_latent_step(params: dict, cfg: ModelConfig) -> FusedStep:
    """:func:`latent_step` regrouped for planning: ``FusedStep(start, step, readout)``.

    Computes the same prior-mean transition and (through ``readout``) the same rewards as
    ``latent_step``, equal up to float rounding, with fewer and larger matmuls and fewer
    per-step ops:

    * the new GRU state feeds one ``[D, hidden + R]`` matmul (the RSSM's hidden layer and the
      reward head's first layer);
    * the prior mean feeds one ``[S, hidden + R]`` matmul (the next step's input layer and the
      reward head's first layer); its bias is folded into those layers' biases, and the prior
      std (which the planner never uses) is not computed;
    * the 6-wide action projection is a fused multiply-add instead of a thin matmul;
    * the reward head's scalar output layer is left to ``readout``, which the planner applies
      once per action sequence to the summed features instead of once per step.

    About 7 % faster per CEM call at paper size on CPU than ``latent_step``
    (``python -m benchmarks.planning --step latent`` compares). Where
    :func:`fuses_latent_step` is False it returns ``latent_step`` with ``start`` = identity and
    ``readout`` = None.
    """
    if not fuses_latent_step(cfg):
        return FusedStep(lambda state: state, latent_step(params, cfg), None)
    cell, head = params["params"]["rssm"], params["params"]["reward"]
    d, s, h = cfg.deter, cfg.stoch, cfg.hidden
    w_in = cell["img_in"]["kernel"]
    w_in_stoch, w_in_action = w_in[:s], w_in[s:]
    w_gru, b_gru = cell["gru"]["kernel"], cell["gru"]["bias"]
    w0 = head["dense0"]["kernel"]
    w_deter = jnp.concatenate([cell["img_hidden"]["kernel"], w0[:d]], axis=1)  # [D, H + R]
    b_hidden = cell["img_hidden"]["bias"]
    w_mean, b_mean = cell["img_out"]["kernel"][:, :s], cell["img_out"]["bias"][:s]
    w_stoch = jnp.concatenate([w_in_stoch, w0[d:]], axis=1)  # [S, H + R]
    b_in = cell["img_in"]["bias"] + b_mean @ w_in_stoch  # folded prior-mean bias
    b0 = head["dense0"]["bias"] + b_mean @ w0[d:]
    hidden_layers = [head[f"dense{i}"] for i in range(1, cfg.reward_layers)]
    last = head[f"dense{cfg.reward_layers}"]
    w_last, b_last = last["kernel"][:, 0], last["bias"][0]

    def start(state: rssm.State) -> PlanState:
        return PlanState(state.deter, (state.stoch - b_mean) @ w_stoch)

    def step(state: PlanState, action: jax.Array) -> tuple[PlanState, jax.Array]:
        action_in = sum(action[..., i : i + 1] * w_in_action[i] for i in range(action.shape[-1]))
        x = jax.nn.relu(state.stoch_proj[..., :h] + action_in + b_in)
        parts = jnp.concatenate([x, state.deter], -1) @ w_gru + b_gru
        deter = rssm.gru_gates(parts, state.deter, cfg.gru_update_bias)
        from_deter = deter @ w_deter
        stoch_proj = jax.nn.relu(from_deter[..., :h] + b_hidden) @ w_mean @ w_stoch
        x = jax.nn.relu(from_deter[..., h:] + stoch_proj[..., h:] + b0)
        for layer in hidden_layers:
            x = jax.nn.relu(x @ layer["kernel"] + layer["bias"])
        return PlanState(deter, stoch_proj), x

    def readout(features: jax.Array, weight: jax.Array) -> jax.Array:
        return features @ w_last + weight * b_last

    return FusedStep(start, step, readout)


def posterior_step(
    params: dict,
    cfg: ModelConfig,
    state: rssm.State,
    prev_action: jax.Array,
    obs: jax.Array,
    is_first: jax.Array,
    key: jax.Array | None = None,
) -> rssm.State:
    """Online belief update for one env step (agent side).

    Args:
      state: previous posterior State[...].
      prev_action: [..., A] the action that led to ``obs``.
      obs: uint8 [..., 64, 64, 3].
      is_first: bool [...]; resets the belief where True.
      key: sample (dequantisation noise, posterior) when given, else deterministic means.

    Returns:
      posterior State[...].
    """
    k_noise, k_post = (None, None) if key is None else jax.random.split(key)
    embed = encode(params, cfg, obs, k_noise)
    post, _ = rssm.obs_step(params, cfg, state, prev_action, embed, is_first, k_post)
    return post


def open_loop_predictions(
    params: dict, cfg: ModelConfig, batch: dict, context: int, key: jax.Array | None = None
) -> jax.Array:
    """Model frames for eval videos: posterior reconstructions for the first ``context`` steps,
    then open-loop prior predictions from the last posterior with the recorded actions
    (episode starts after ``context`` are ignored).

    Args:
      batch: 'obs' uint8 [B, T, 64, 64, 3], 'action' [B, T, A], 'is_first' [B, T].
      context: number of observed steps (static, 1 <= context <= T).
      key: sample posterior / prior when given, else use means.

    Returns:
      uint8 [B, T, 64, 64, 3].
    """
    keys = [None] * 3 if key is None else list(jax.random.split(key, 3))
    obs, action, first = batch["obs"], batch["action"], batch["is_first"]
    embed = encode(params, cfg, obs[:, :context], keys[0])
    post, _ = rssm.observe(params, cfg, embed, action[:, :context], first[:, :context], keys[1])
    last = jax.tree.map(lambda x: x[:, -1], post)
    prior = rssm.imagine(params, cfg, last, action[:, context:], keys[2])
    feat = jnp.concatenate([rssm.features(post), rssm.features(prior)], axis=1)
    return postprocess(decode(params, cfg, feat), cfg.bits)

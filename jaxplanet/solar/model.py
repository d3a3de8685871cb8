"""SOLAR's latent model: conv encoder potentials, MNIW linear dynamics, quadratic cost, ELBO.

Zhang, Vikram, Smith, Abbeel, Johnson, Levine, "SOLAR: Deep Structured Representations for
Model-Based Reinforcement Learning", ICML 2019, Sec. 4. The model of one rollout:

    s_0 ~ N(0, I),  s_{t+1} ~ N(F_t [s_t; a_t], Sigma_t),  (F, Sigma) ~ MNIW   (global or per t)
    o_t ~ Bernoulli(decoder(s_t)),  c_t ~ N(1/2 x^T C x + c^T x + b, sigma^2),  x = [s_t; a_t],
    C = L L^T (positive semi-definite by construction).

Inference (Sec. 4.2, after Johnson et al. 2016): the encoder gives a Gaussian potential
psi_t(s_t) = N(y_t; s_t, R_t) per frame and q(s) ∝ p(s | E_q[F, Sigma]) prod_t psi_t is computed
exactly by Kalman smoothing (`jaxplanet.solar.lgssm`). The ELBO of one rollout is

    L = E_q[log p(o|s)] + E_q[log p(c|s,a)] - KL(q(s) || p(s | q(F, Sigma))) - KL(q(F,Sigma) || p),
    KL_local = E_q[log psi] - log Z
               + sum_t (n/2 tr(V_t E[x x^T]) + 1/2 (E log|Sigma_t| - log|Qbar_t|))

where Qbar = E[Sigma^-1]^-1 is the plug-in noise of the smoother and the last sum is the exact
gap between E_{q(F,Sigma)} log p(s'|x) and the plug-in Gaussian. Encoder, decoder and cost are
trained by Adam on -L; q(F, Sigma) by natural-gradient SVI (`jaxplanet.solar.mniw.svi_step`).

`variant="vae"` is the paper's VAE ablation: q(s_t) is the encoder's Gaussian per frame with a
N(0, I) prior (no dynamics in the loss); the linear dynamics q(F, Sigma) are fit to its
posteriors by the same SVI updates, without feeding back into the representation.

Reductions: pixels, latent dims and time are summed; the batch is averaged; the loss is divided
by the number of frames per sequence (a per-frame negative ELBO).

The fits for control (local dynamics by EM, the cost refit, the latent model as a planner step)
live in `jaxplanet.solar.fit`.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxplanet.nn import networks
from jaxplanet.solar import lgssm, mniw

__all__ = [
    "ModelConfig",
    "FLAT_VAR",
    "observed",
    "Encoder",
    "SpatialSoftmaxEncoder",
    "Decoder",
    "TrainState",
    "init_params",
    "init_canvas",
    "encode",
    "encode_rollouts",
    "windows",
    "decode",
    "cost_matrices",
    "predict_cost",
    "prior_dynamics",
    "per_step",
    "plugin",
    "infer",
    "loss",
    "make_optimizer",
    "init_train_state",
    "svi_stats",
    "train_step",
    "episode_batch",
]


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """SOLAR model hyperparameters (defaults: the released reacher configuration)."""

    latent: int = _field(10, "latent state size n")
    channels: tuple[int, ...] = _field(
        (64, 32, 8), "channels of the 3 encoder convs (the decoder mirrors them)"
    )
    hidden: int = _field(256, "units of the encoder's and decoder's dense layer")
    dynamics: Literal["global", "time_varying"] = _field(
        "time_varying", "q(F, Sigma): one for the whole rollout, or one per time step"
    )
    variant: Literal["solar", "vae"] = _field(
        "solar", "solar: Kalman-smoothed posterior; vae: the paper's per-frame VAE ablation"
    )
    prior_scale: float = _field(2.0, "MNIW prior: inverse-Wishart scale Psi = prior_scale * I")
    min_potential_var: float = _field(1e-3, "floor of the encoder potentials' variance")
    softmax_temperature: float = _field(
        1.0,
        "spatial_softmax encoder: initial temperature of its softmax (learned; not in the paper)",
    )
    lr: float = _field(1e-3, "Adam learning rate of encoder, decoder and cost")
    grad_clip: float = _field(5.0, "global gradient-norm clip")
    svi_step: float = _field(0.1, "natural-gradient SVI step size rho of q(F, Sigma), in (0, 1]")
    conv_impl: str = _field("auto", "conv implementation (auto: fast on CPU, XLA elsewhere)")
    # Not in the paper: a per-pixel decoder output bias set to the mean pretraining frame (opt-in;
    # `init_canvas`), so a small CPU budget is not spent learning the static background.
    canvas: bool = _field(
        False, "decoder output bias starting at the mean pretraining frame (not in the paper)"
    )
    # Not in the paper: "spatial_softmax" replaces the conv encoder by small convs, a spatial
    # soft-argmax per channel and a linear map to the potential mean (Finn et al. 2016, deep
    # spatial autoencoders; `SpatialSoftmaxEncoder`), so the mean is affine in where things are.
    encoder: Literal["conv", "spatial_softmax"] = _field(
        "conv", "conv: the paper's; spatial_softmax: feature points (not in the paper)"
    )
    # The ICML paper's project page: "we use sliding windows of past observations" (both tasks).
    # One frame shows where the arm is, not how fast it moves; with 2 the encoder sees velocity.
    frames: int = _field(
        1, "frames the encoder sees: the current one and frames - 1 before it (sliding window)"
    )
    # Not in the paper: an arm is a second-order system (a torque changes its velocity; one
    # step moves its position by ~1/100 of what 15 held steps do), so in a latent of positions
    # alone the control matrix is near zero. With ``velocity`` the latent's second half is a
    # velocity that no frame measures: it is inferred by the smoother from how the first half
    # moves (`encode`, `decode`, `prior_dynamics`).
    velocity: bool = _field(
        False,
        "the latent's second half is the first half's velocity: the encoder and decoder see the "
        "first half only, and the MNIW prior's mean is p' = p + v, v' = v (not in the paper)",
    )


_KERNELS, _STRIDES, _DECONV_KERNELS = (7, 5, 3), (1, 2, 2), (3, 6, 7)

#: With ``velocity``: the variance of the flat potential on the velocity half (no frame
#: measures it; 1e4 against latents of order 1 leaves it to the dynamics).
FLAT_VAR = 1e4


def observed(cfg: ModelConfig) -> int:
    """How many latent entries the encoder measures and the decoder draws (n, or n / 2 with
    ``velocity``)."""
    return cfg.latent // 2 if cfg.velocity else cfg.latent


class _PotentialEncoder(nn.Module):
    """Fields shared by the encoders: frames uint8 [..., 64, 64, 3] -> (mean, var) [..., n]."""

    latent: int
    channels: tuple[int, ...]
    hidden: int
    min_var: float
    impl: str = "auto"
    temperature: float = 1.0  # the spatial-softmax encoder's initial softmax temperature


def _flat_frames(obs: jax.Array) -> tuple[tuple[int, ...], jax.Array]:
    """(leading batch shape, frames f32 [N, 64, 64, C] in [0, 1]) from uint8 [..., 64, 64, C]."""
    return obs.shape[:-3], obs.reshape((-1,) + obs.shape[-3:]).astype(jnp.float32) / 255.0


class Encoder(_PotentialEncoder):
    """64x64x3 -> Gaussian potential (mean [n], var [n]): convs 7/5/3, strides 1/2/2, dense."""

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        batch, x = _flat_frames(obs)
        for i, (ch, k, s) in enumerate(zip(self.channels, _KERNELS, _STRIDES, strict=True)):
            x = nn.relu(networks.conv(ch, k, s, impl=self.impl, name=f"conv{i}")(x))
        x = nn.relu(nn.Dense(self.hidden, name="dense")(x.reshape(x.shape[0], -1)))
        out = nn.Dense(2 * self.latent, name="out")(x)
        mean, raw = jnp.split(out, 2, axis=-1)
        var = jax.nn.softplus(raw) + self.min_var
        return mean.reshape(batch + (-1,)), var.reshape(batch + (-1,))


class Decoder(nn.Module):
    """Latent [n] -> Bernoulli logits [64, 64, 3], mirroring the encoder (13 -> 27 -> 58 -> 64)."""

    channels: tuple[int, ...]
    hidden: int
    impl: str = "auto"
    canvas: bool = False

    @nn.compact
    def __call__(self, s: jax.Array) -> jax.Array:
        batch = s.shape[:-1]
        x = nn.relu(nn.Dense(self.hidden, name="dense")(s.reshape(-1, s.shape[-1])))
        x = nn.relu(nn.Dense(13 * 13 * self.channels[-1], name="dense_img")(x))
        x = x.reshape(-1, 13, 13, self.channels[-1])
        outs = (*self.channels[-2::-1], 3)
        for i, (ch, k, st) in enumerate(zip(outs, _DECONV_KERNELS, _STRIDES[::-1], strict=True)):
            x = networks.conv_transpose(ch, k, st, impl=self.impl, name=f"deconv{i}")(x)
            if i < len(outs) - 1:
                x = nn.relu(x)
        if self.canvas:  # per-pixel output bias (`init_canvas` sets it to the mean frame)
            x = x + self.param("canvas", nn.initializers.zeros, x.shape[1:])
        return x.reshape(batch + x.shape[1:])


_SOFTMAX_KERNELS, _SOFTMAX_STRIDES = (5, 3, 3), (2, 1, 1)


class SpatialSoftmaxEncoder(_PotentialEncoder):
    """64x64x3 -> Gaussian potential via feature points (Finn et al., ICRA 2016).

    Convs 5/3/3 with strides 2/1/1 (64 -> 30 -> 28 -> 26, far cheaper on CPU than the released
    encoder's stride-1 7x7 conv at 64x64), then per channel a softmax over the 26x26 positions
    with a learned temperature and its expected image coordinates in [-1, 1] (2 per channel).
    The mean is a linear map of these feature points, so an object moving on a uniform
    background moves the mean affinely; the variance comes from a small MLP on them.
    """

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        batch, x = _flat_frames(obs)
        layers = zip(self.channels, _SOFTMAX_KERNELS, _SOFTMAX_STRIDES, strict=True)
        for i, (ch, k, s) in enumerate(layers):
            x = networks.conv(ch, k, s, impl=self.impl, name=f"conv{i}")(x)
            if i < len(self.channels) - 1:
                x = nn.relu(x)
        N, H, W, C = x.shape
        log_temp = self.param(
            "log_temperature", nn.initializers.constant(jnp.log(self.temperature)), ()
        )
        attn = jax.nn.softmax(x.reshape(N, H * W, C) / jnp.exp(log_temp), axis=1)
        rows, cols = jnp.meshgrid(jnp.linspace(-1, 1, H), jnp.linspace(-1, 1, W), indexing="ij")
        grid = jnp.stack([rows.reshape(-1), cols.reshape(-1)], -1)  # [H*W, 2]
        points = jnp.einsum("npc,pk->nck", attn, grid).reshape(N, 2 * C)
        mean = nn.Dense(self.latent, name="mean")(points)
        h = nn.relu(nn.Dense(self.hidden, name="dense")(points))
        var = jax.nn.softplus(nn.Dense(self.latent, name="var")(h)) + self.min_var
        return mean.reshape(batch + (-1,)), var.reshape(batch + (-1,))


def _encoder(cfg: ModelConfig) -> nn.Module:
    if cfg.encoder == "spatial_softmax":
        return SpatialSoftmaxEncoder(
            observed(cfg),
            cfg.channels,
            cfg.hidden,
            cfg.min_potential_var,
            cfg.conv_impl,
            temperature=cfg.softmax_temperature,
        )
    return Encoder(observed(cfg), cfg.channels, cfg.hidden, cfg.min_potential_var, cfg.conv_impl)


def _decoder(cfg: ModelConfig) -> Decoder:
    return Decoder(cfg.channels, cfg.hidden, cfg.conv_impl, cfg.canvas)


def init_params(cfg: ModelConfig, key: jax.Array, action_dim: int) -> dict:
    """Encoder, decoder and cost parameters (the cost: L [p, p], c [p], b, log_std)."""
    k_enc, k_dec = jax.random.split(key)
    obs = jnp.zeros((1, 64, 64, 3 * cfg.frames), jnp.uint8)
    p = cfg.latent + action_dim
    return {
        "enc": _encoder(cfg).init(k_enc, obs)["params"],
        "dec": _decoder(cfg).init(k_dec, jnp.zeros((1, observed(cfg))))["params"],
        "cost": {
            "L": 0.1 * jnp.eye(p),
            "c": jnp.zeros((p,)),
            "b": jnp.zeros(()),
            "log_std": jnp.zeros(()),
        },
    }


def init_canvas(params: dict, obs: Any) -> dict:
    """Sets the decoder's per-pixel output bias (``canvas=True``) to the logits of the mean frame.

    obs: uint8 [..., 64, 64, 3] frames (the pretraining data). With the static background already
    explained at step 0, the pixel likelihood's gradient is about the moving parts from the start
    (without it a small CPU budget is spent learning the background; see the quick preset).
    """
    frames = jnp.asarray(obs).reshape((-1, 64, 64, 3))
    mean = jnp.mean(frames.astype(jnp.float32) / 255.0, axis=0)
    mean = jnp.clip(mean, 1e-3, 1.0 - 1e-3)
    dec = dict(params["dec"], canvas=jnp.log(mean) - jnp.log1p(-mean))
    return dict(params, dec=dec)


def encode(params: dict, cfg: ModelConfig, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Windows uint8 [..., 64, 64, 3 * frames] -> potential means, variances [..., n]
    (with ``velocity``, the velocity half's potential is flat: mean 0, variance `FLAT_VAR`)."""
    mean, var = _encoder(cfg).apply({"params": params["enc"]}, obs)
    if not cfg.velocity:
        return mean, var
    flat = cfg.latent - mean.shape[-1]
    zeros = jnp.zeros(mean.shape[:-1] + (flat,), mean.dtype)
    return jnp.concatenate([mean, zeros], -1), jnp.concatenate([var, zeros + FLAT_VAR], -1)


def windows(obs: jax.Array, frames: int) -> jax.Array:
    """Sliding windows of a rollout's frames: uint8 [..., T+1, 64, 64, 3] ->
    [..., T+1, 64, 64, 3 * frames], frame t then t-1, ..., t-frames+1 on the channel axis (the
    first frame stands in for those before it); ``frames`` 1 returns ``obs``."""
    if frames == 1:
        return obs
    t = jnp.arange(obs.shape[-4])
    past = [jnp.take(obs, jnp.maximum(t - k, 0), axis=-4) for k in range(frames)]
    return jnp.concatenate(past, axis=-1)


def encode_rollouts(params: dict, cfg: ModelConfig, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Rollout frames uint8 [..., T+1, 64, 64, 3] -> potential means, variances [..., T+1, n]
    (each step encoded from its window of ``cfg.frames`` frames)."""
    return encode(params, cfg, windows(obs, cfg.frames))


def decode(params: dict, cfg: ModelConfig, s: jax.Array) -> jax.Array:
    """Latents [..., n] -> Bernoulli logits [..., 64, 64, 3] (from the first `observed`
    entries)."""
    return _decoder(cfg).apply({"params": params["dec"]}, s[..., : observed(cfg)])


def cost_matrices(params: dict) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(C = L L^T [p, p], c [p], b []) of the learned cost 1/2 x^T C x + c^T x + b."""
    L = jnp.tril(params["cost"]["L"])
    return L @ L.T, params["cost"]["c"], params["cost"]["b"]


def predict_cost(params: dict, s: jax.Array, a: jax.Array) -> jax.Array:
    """Mean cost for latents s [..., n] and actions a [..., m] -> [...]."""
    C, c, b = cost_matrices(params)
    x = jnp.concatenate([s, a], -1)
    return 0.5 * jnp.einsum("...i,ij,...j->...", x, C, x) + x @ c + b


def prior_dynamics(cfg: ModelConfig, action_dim: int, transitions: int) -> mniw.MNIW:
    """MNIW prior: one (global) or one per transition (time-varying, leading axis)."""
    prior = mniw.default_prior(cfg.latent, action_dim, cfg.prior_scale)
    if cfg.velocity:  # positions move by their velocities: M0 = [[I, I, 0], [0, I, 0]]
        h = observed(cfg)
        prior = prior._replace(M=prior.M.at[:h, h : 2 * h].set(jnp.eye(h, dtype=prior.M.dtype)))
    return prior if cfg.dynamics == "global" else mniw.stack(prior, transitions)


def per_step(q: mniw.MNIW, cfg: ModelConfig, transitions: int) -> mniw.MNIW:
    """q(F, Sigma) with a leading transition axis (tiles a global q)."""
    return mniw.stack(q, transitions) if cfg.dynamics == "global" else q


def plugin(q: mniw.MNIW, cfg: ModelConfig, transitions: int) -> tuple[jax.Array, jax.Array]:
    """Smoother dynamics (E[F], E[Sigma^-1]^-1) per transition: [T, n, p], [T, n, n]."""
    return jax.vmap(mniw.plugin_dynamics)(per_step(q, cfg, transitions))


def infer(
    params: dict, cfg: ModelConfig, q: mniw.MNIW, obs: jax.Array, actions: jax.Array
) -> tuple[lgssm.Smoothed, jax.Array, jax.Array]:
    """Structured posterior of one rollout: obs [T+1, 64, 64, 3], actions [T, m].

    Returns:
      (`lgssm.Smoothed`, potential means [T+1, n], potential covariances [T+1, n, n]).
    """
    n, T = cfg.latent, actions.shape[0]
    pm, pv = encode_rollouts(params, cfg, obs)
    pc = jax.vmap(jnp.diag)(pv)
    F, Q = plugin(q, cfg, T)
    post = lgssm.smooth_full(jnp.zeros(n), jnp.eye(n), F, Q, actions, pm, pc)
    return post, pm, pc


def _latent_terms(cfg, q, pm, pv, actions, key):
    """Posterior sample, local KL and expected transition moments of one rollout.

    pm, pv: encoder potentials [T+1, n]; actions [T, m]. Returns (s [T+1, n], kl [], PairStats).
    """
    n, T = cfg.latent, actions.shape[0]
    if cfg.variant == "solar":
        pc = jax.vmap(jnp.diag)(pv)
        F, Q = plugin(q, cfg, T)
        post = lgssm.smooth_full(jnp.zeros(n), jnp.eye(n), F, Q, actions, pm, pc)
        s = lgssm.sample(post, Q, F, key)
        pairs = lgssm.pair_stats(post, actions)
        qs = per_step(q, cfg, T)
        e = jax.vmap(mniw.expected)(qs)
        gap = 0.5 * n * jnp.einsum("tij,tji->t", qs.V, pairs.Exx) + 0.5 * (
            e.logdet_Sigma - jnp.linalg.slogdet(Q)[1]
        )
        kl = lgssm.potential_log_expectation(post, pm, pc) - post.log_z + jnp.sum(gap)
    else:  # VAE ablation: independent per-frame posteriors, N(0, I) prior.
        s = pm + jnp.sqrt(pv) * jax.random.normal(key, pm.shape)
        kl = 0.5 * jnp.sum(pv + pm**2 - 1.0 - jnp.log(pv))
        x = jnp.concatenate([pm[:-1], actions], -1)
        Exx = jnp.einsum("ti,tj->tij", x, x).at[:, :n, :n].add(jax.vmap(jnp.diag)(pv[:-1]))
        Eyy = jnp.einsum("ti,tj->tij", pm[1:], pm[1:]) + jax.vmap(jnp.diag)(pv[1:])
        pairs = lgssm.PairStats(Exx, jnp.einsum("ti,tj->tij", pm[1:], x), Eyy)
    return s, kl, pairs


def loss(
    params: dict,
    cfg: ModelConfig,
    q: mniw.MNIW,
    batch: dict,
    key: jax.Array,
    kl_weight: float | jax.Array = 1.0,
) -> tuple[jax.Array, tuple[dict, lgssm.PairStats]]:
    """Per-frame negative ELBO of a batch of rollouts.

    The conv nets run once on the whole batch [B * (T+1)] (a `vmap` over rollouts around them
    turns their kernel gradients into grouped convolutions, ~5x slower on XLA:CPU); only the
    structured inference is vmapped.

    Args:
      batch: obs uint8 [B, T+1, 64, 64, 3], action [B, T, m] (a_t taken at s_t), cost [B, T].
      kl_weight: weight of the local KL (annealed from 1e-4 during pretraining).

    Returns:
      (loss, (metrics dict of batch means, expected transition moments [B, T, ...])).
    """
    obs, actions, costs = batch["obs"], batch["action"], batch["cost"]
    B, T1 = obs.shape[:2]
    pm, pv = encode_rollouts(params, cfg, obs)  # [B, T+1, n]
    keys = jax.random.split(key, B)
    s, kl, pairs = jax.vmap(functools.partial(_latent_terms, cfg, q))(pm, pv, actions, keys)
    logits = decode(params, cfg, s)
    target = obs.astype(jnp.float32) / 255.0
    recon = jnp.sum(
        target * jax.nn.log_sigmoid(logits) + (1 - target) * jax.nn.log_sigmoid(-logits),
        axis=(1, 2, 3, 4),
    )
    std = jnp.exp(params["cost"]["log_std"])
    err = (costs - predict_cost(params, s[:, :-1], actions)) / std
    cost_ll = jnp.sum(-0.5 * err**2 - params["cost"]["log_std"] - 0.5 * jnp.log(2 * jnp.pi), -1)
    elbo = recon + cost_ll - kl
    objective = recon + cost_ll - kl_weight * kl
    terms = {"recon": recon, "cost_ll": cost_ll, "kl_local": kl, "elbo": elbo}
    metrics = {k: jnp.mean(v) / T1 for k, v in terms.items()}
    pairs = jax.tree.map(jax.lax.stop_gradient, pairs)
    return -jnp.mean(objective) / T1, (metrics, pairs)


@flax.struct.dataclass
class TrainState:
    """params (Adam), opt_state, q (MNIW, natural gradient), prior (MNIW) and step."""

    params: Any
    opt_state: Any
    q: mniw.MNIW
    prior: mniw.MNIW
    step: jax.Array


def make_optimizer(cfg: ModelConfig) -> optax.GradientTransformation:
    """Adam with global-norm clipping (released code: lr 1e-3, clip 5)."""
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr))


def init_train_state(
    cfg: ModelConfig, key: jax.Array, action_dim: int, transitions: int
) -> TrainState:
    """Fresh parameters; q(F, Sigma) starts at the prior. `transitions`: T (actions per rollout)."""
    params = init_params(cfg, key, action_dim)
    prior = prior_dynamics(cfg, action_dim, transitions)
    opt_state = make_optimizer(cfg).init(params)
    return TrainState(params, opt_state, prior, prior, jnp.zeros((), jnp.int32))


def svi_stats(cfg: ModelConfig, pairs: lgssm.PairStats) -> mniw.Stats:
    """Sum expected moments [B, T, ...] over the batch (and time for global dynamics)."""
    B, T = pairs.Exx.shape[:2]
    if cfg.dynamics == "global":
        sums = [x.sum((0, 1)) for x in pairs]
        return mniw.Stats(*sums, jnp.asarray(B * T, pairs.Exx.dtype))
    sums = [x.sum(0) for x in pairs]
    return mniw.Stats(*sums, jnp.full((T,), B, pairs.Exx.dtype))


def train_step(
    state: TrainState,
    batch: dict,
    key: jax.Array,
    cfg: ModelConfig,
    num_sequences: int | jax.Array,
    kl_weight: float | jax.Array = 1.0,
) -> tuple[TrainState, dict]:
    """One Adam step on the networks and one natural-gradient step on q(F, Sigma).

    Args:
      num_sequences: rollouts in the data set (N in the SVI scale N / B).

    Returns:
      (new state, metrics incl. `loss`, `grad_norm`, `kl_dynamics` (per frame) and `finite`).
    """
    grad_fn = jax.value_and_grad(loss, has_aux=True)
    (value, (metrics, pairs)), grads = grad_fn(state.params, cfg, state.q, batch, key, kl_weight)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    B, T1 = batch["obs"].shape[:2]
    stats = svi_stats(cfg, pairs)
    svi = functools.partial(mniw.svi_step, step_size=cfg.svi_step, scale=num_sequences / B)
    q = (
        svi(state.q, state.prior, stats)
        if cfg.dynamics == "global"
        else jax.vmap(svi)(state.q, state.prior, stats)
    )
    kl_dyn = (
        mniw.kl(q, state.prior)
        if cfg.dynamics == "global"
        else jnp.sum(jax.vmap(mniw.kl)(q, state.prior))
    )
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(value) & jnp.isfinite(grad_norm) & jnp.all(jnp.isfinite(q.Psi))
    metrics = {
        **metrics,
        "loss": value,
        "grad_norm": grad_norm,
        "kl_dynamics": kl_dyn / (num_sequences * T1),
        "finite": finite,
    }
    new = TrainState(params, opt_state, q, state.prior, state.step + 1)
    return new, metrics


def episode_batch(obs: jax.Array, action: jax.Array, reward: jax.Array) -> dict:
    """Episodes in the record convention ([N, T+1] records) -> a SOLAR batch.

    Record t holds (obs_t, the action that led to it, the reward it received), so a_t = action
    record t+1 and the cost of (s_t, a_t) is -reward record t+1.
    """
    return {"obs": obs, "action": action[..., 1:, :], "cost": -reward[..., 1:]}

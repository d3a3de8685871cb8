"""World Models M: the MDN-RNN of Ha & Schmidhuber, "World Models" (2018), Sec. A.2.

An LSTM (256 units; 512 in the authors' Doom code) reads (z_t, a_t) and its output gives, for
every latent dimension independently, a mixture of K = 5 Gaussians over z_{t+1} (the authors'
`mdn-rnn`: mixture weights are per dimension), plus optional heads: the logit of `done_{t+1}`
(Doom) and the reward r_{t+1} (used by the point_reach / CarRacing dreams of this library).

Mixture densities are computed in log space (`log_softmax` + `logsumexp`); `log_stds` are clipped
to [LOG_STD_MIN, LOG_STD_MAX] so no input gives NaN. Sampling at temperature tau follows the
authors' code: mixture logits are divided by tau and component stds multiplied by sqrt(tau).

Loss (reductions made explicit): the z term is the NLL summed over latent dims divided by
Z (the authors average over dims), mean over valid steps whose z target is real (`z_mask`: a
blank terminal frame is not); the done term is a binary cross entropy with positives weighted by
`done_pos_weight` (the authors' `restart_factor` = 10); the reward term is a squared error;
terms are added with weights from the config. `train_step` starts every sequence from a zero
LSTM state; `stream_train_step` carries the state from one batch to the next (consecutive chunks
of episode streams, the authors' Doom M), zeroing it where `reset` marks an episode's first frame.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Any, Literal, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

__all__ = [
    "MDNConfig",
    "MDNOutput",
    "MDNRNN",
    "MDNStreamState",
    "MDNTrainState",
    "init",
    "gradient_clip",
    "init_train_state",
    "initial_state",
    "learning_rate",
    "log_prob",
    "loss_fn",
    "make_optimizer",
    "observe",
    "sample",
    "step",
    "stream_train_step",
    "train_step",
]

LOG_STD_MIN, LOG_STD_MAX = -10.0, 10.0
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class MDNConfig:
    """M's architecture, heads and optimiser (paper defaults).

    Attributes:
      z_dim: latent size Z (must match V).
      hidden: LSTM units (256; the authors' Doom M: 512).
      mixtures: Gaussians per latent dim K (5).
      done_head: predict done_{t+1} (Doom).
      reward_head: predict r_{t+1} (dreams that need a reward: point_reach, CarRacing).
      done_pos_weight: weight of positive `done` targets in the cross entropy (authors: 10).
      done_scale: weight of the done term in the loss.
      reward_scale: weight of the reward term in the loss.
      lr: Adam learning rate (authors: 1e-3).
      grad_clip: gradient clip threshold (authors: 1.0).
      grad_clip_mode: "norm" clips the global gradient norm at `grad_clip`; "value" clips
        each gradient entry to [-grad_clip, grad_clip] (the authors' `tf.clip_by_value`).
      lr_decay, min_lr: the learning rate of update n is (lr - min_lr) * lr_decay^n + min_lr
        (the authors' Doom M: 0.99999 and 1e-5; CarRacing: constant, lr_decay = 1).
      forget_bias: initial bias of the LSTM's forget gate. TF's `LayerNormBasicLSTMCell` (the
        authors' cell) adds a constant 1.0 to a zero-initialised learned bias; starting the
        learned bias at 1.0 gives the same function and the same gradients at every step.
    """

    z_dim: int = _field(32, "latent size Z, as V's (a World Models run sets it from --z_dim)")
    hidden: int = _field(256, "LSTM units (in a World Models run 0 = the task's: 256, Doom 512)")
    mixtures: int = _field(5, "Gaussians per latent dim K")
    done_head: bool = _field(False, "predict done_{t+1} (a World Models run: the task decides)")
    reward_head: bool = _field(False, "predict r_{t+1} (a World Models run: the task decides)")
    done_pos_weight: float = _field(
        10.0, "weight of positive done targets in the cross entropy (authors: 10)"
    )
    done_scale: float = _field(1.0, "weight of the done term in M's loss")
    reward_scale: float = _field(1.0, "weight of the reward term in M's loss")
    lr: float = _field(1e-3, "Adam learning rate (the start of the lr_decay schedule)")
    grad_clip: float = _field(1.0, "gradient clip threshold (see grad_clip_mode)")
    grad_clip_mode: Literal["norm", "value"] = _field(
        "norm", "norm: clip the global gradient norm; value: clip each entry (the authors')"
    )
    lr_decay: float = _field(
        1.0,
        "lr of update n = (lr - min_lr) * lr_decay^n + min_lr; 1 = constant (in a World Models "
        "run 0 = the task's schedule, min_lr included)",
    )
    min_lr: float = _field(0.0, "the learning rate lr_decay decays towards")
    forget_bias: float = _field(
        0.0, "initial bias of the LSTM forget gate (1.0: as TF's LayerNormBasicLSTMCell)"
    )


class MDNOutput(NamedTuple):
    """Predictions for step t + 1 (leading batch axes omitted).

    Attributes:
      logits: f32 [Z, K] unnormalised mixture weights per latent dim.
      means: f32 [Z, K] component means.
      log_stds: f32 [Z, K] component log standard deviations.
      done_logit: f32 [] logit of done_{t+1} (zeros without the done head).
      reward: f32 [] predicted r_{t+1} (zeros without the reward head).
    """

    logits: jax.Array
    means: jax.Array
    log_stds: jax.Array
    done_logit: jax.Array
    reward: jax.Array


class MDNRNN(nn.Module):
    """One step of M: (carry, z [.., Z], action [.., A]) -> (carry, MDNOutput)."""

    cfg: MDNConfig

    @nn.compact
    def __call__(self, carry, z: jax.Array, action: jax.Array):
        cfg = self.cfg
        x = jnp.concatenate([z, action], axis=-1)
        carry, h = nn.OptimizedLSTMCell(cfg.hidden, name="lstm")(carry, x)
        out = nn.Dense(cfg.z_dim * cfg.mixtures * 3, name="mdn")(h)
        out = out.reshape(out.shape[:-1] + (cfg.z_dim, cfg.mixtures, 3))
        zeros = jnp.zeros(h.shape[:-1], jnp.float32)
        done = nn.Dense(1, name="done")(h)[..., 0] if cfg.done_head else zeros
        reward = nn.Dense(1, name="reward")(h)[..., 0] if cfg.reward_head else zeros
        return carry, MDNOutput(out[..., 0], out[..., 1], out[..., 2], done, reward)


def initial_state(cfg: MDNConfig, batch_shape: tuple[int, ...] = ()) -> tuple[jax.Array, ...]:
    """Zero LSTM state (c, h), each f32 [*batch_shape, hidden]."""
    zeros = jnp.zeros((*batch_shape, cfg.hidden), jnp.float32)
    return (zeros, zeros)


@functools.partial(jax.jit, static_argnames=("cfg", "action_dim"))
def init(cfg: MDNConfig, key: jax.Array, action_dim: int) -> Any:
    """M's parameters for actions of size `action_dim`."""
    z = jnp.zeros((1, cfg.z_dim), jnp.float32)
    a = jnp.zeros((1, action_dim), jnp.float32)
    params = MDNRNN(cfg).init(key, initial_state(cfg, (1,)), z, a)["params"]
    if cfg.forget_bias:
        lstm = params["lstm"]
        forget = {**lstm["hf"], "bias": lstm["hf"]["bias"] + cfg.forget_bias}
        params = {**params, "lstm": {**lstm, "hf": forget}}
    return params


def step(params: Any, cfg: MDNConfig, carry: Any, z: jax.Array, action: jax.Array):
    """One LSTM step. carry (c, h) [..., H], z [..., Z], action [..., A] -> (carry, MDNOutput)."""
    return MDNRNN(cfg).apply({"params": params}, carry, z, action)


def observe(
    params: Any,
    cfg: MDNConfig,
    z: jax.Array,
    action: jax.Array,
    carry: Any = None,
    reset: jax.Array | None = None,
):
    """Runs M over sequences with `lax.scan`.

    Args:
      z: f32 [B, T, Z] latents z_0 .. z_{T-1}.
      action: f32 [B, T, A] actions a_0 .. a_{T-1} (a_t taken after seeing z_t).
      carry: initial LSTM state (default zeros).
      reset: bool [B, T] or None: where true, the state is zeroed before reading (z_t, a_t)
        (an episode's first frame).

    Returns:
      (final carry, MDNOutput with a [B, T] prefix: predictions of step t + 1 at index t,
      and `h` f32 [B, T, hidden], the LSTM output after reading (z_t, a_t)).
    """
    if carry is None:
        carry = initial_state(cfg, z.shape[:1])
    if reset is None:
        reset = jnp.zeros(z.shape[:2], bool)

    def body(c, inputs):
        first, *xs = inputs
        c = jax.tree.map(lambda x: jnp.where(first[:, None], 0.0, x), c)
        c, out = step(params, cfg, c, *xs)
        return c, (out, c[1])

    xs = (jnp.swapaxes(reset, 0, 1), jnp.swapaxes(z, 0, 1), jnp.swapaxes(action, 0, 1))
    carry, (out, h) = jax.lax.scan(body, carry, xs)
    out = jax.tree.map(lambda x: jnp.swapaxes(x, 0, 1), out)
    return carry, out, jnp.swapaxes(h, 0, 1)


def log_prob(logits: jax.Array, means: jax.Array, log_stds: jax.Array, z: jax.Array) -> jax.Array:
    """Log density of z under the per-dimension mixtures, summed over dims.

    Args:
      logits, means, log_stds: f32 [..., Z, K].
      z: f32 [..., Z].

    Returns:
      f32 [...]: sum_d log sum_k softmax(logits)_dk N(z_d; means_dk, exp(log_stds_dk)).
    """
    log_stds = jnp.clip(log_stds, LOG_STD_MIN, LOG_STD_MAX)
    scaled = (z[..., None] - means) * jnp.exp(-log_stds)
    log_normal = -0.5 * jnp.square(scaled) - log_stds - _HALF_LOG_2PI
    log_weights = jax.nn.log_softmax(logits, axis=-1)
    return jnp.sum(jax.nn.logsumexp(log_weights + log_normal, axis=-1), axis=-1)


def sample(
    key: jax.Array,
    logits: jax.Array,
    means: jax.Array,
    log_stds: jax.Array,
    temperature: float | jax.Array = 1.0,
) -> jax.Array:
    """Samples z from the per-dimension mixtures at temperature tau.

    Args:
      key: PRNG key.
      logits, means, log_stds: f32 [..., Z, K].
      temperature: tau > 0; logits / tau pick the component, its std is scaled by sqrt(tau).

    Returns:
      f32 [..., Z].
    """
    k_comp, k_noise = jax.random.split(key)
    comp = jax.random.categorical(k_comp, logits / temperature, axis=-1)
    pick = functools.partial(jnp.take_along_axis, indices=comp[..., None], axis=-1)
    mean, log_std = pick(means)[..., 0], pick(jnp.clip(log_stds, LOG_STD_MIN, LOG_STD_MAX))[..., 0]
    noise = jax.random.normal(k_noise, mean.shape)
    return mean + jnp.exp(log_std) * jnp.sqrt(temperature) * noise


def loss_fn(
    params: Any, cfg: MDNConfig, batch: dict[str, jax.Array], key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """M's loss on a batch of z-sequences (z sampled from V's posterior, as the authors do).

    Args:
      batch: `z_mean`, `z_std` f32 [B, T + 1, Z]; `action` f32 [B, T, A] (a_t taken at z_t);
        `reward` f32 [B, T] (r_{t+1}); `done` f32 [B, T] (episode ended at t + 1);
        `mask` f32 [B, T] (1 for real transitions, 0 for padding); optional `z_mask` f32
        [B, T] (0 where z_{t+1} is not a target: a blank terminal frame; default `mask`) and
        `reset` bool [B, T] (zero M's state before step t; see `observe`).
      key: PRNG key of the z samples.

    Returns:
      (loss, metrics) with `loss`, `z_nll` (per frame, summed over dims), `z_nll_per_dim`,
      `done_bce`, `reward_mse`.
    """
    loss, (metrics, _) = _loss(params, cfg, batch, key, None)
    return loss, metrics


def _loss(params: Any, cfg: MDNConfig, batch: dict[str, jax.Array], key: jax.Array, carry: Any):
    """`loss_fn` from LSTM state ``carry`` (None: zeros): (loss, (metrics, final carry))."""
    z = batch["z_mean"] + batch["z_std"] * jax.random.normal(key, batch["z_mean"].shape)
    carry, out, _ = observe(params, cfg, z[:, :-1], batch["action"], carry, batch.get("reset"))
    valid = batch["mask"] > 0
    z_valid = valid & (batch.get("z_mask", batch["mask"]) > 0)

    def mean(x, where=valid):  # over valid steps; `where`, so inf/NaN padding cannot leak
        return jnp.sum(jnp.where(where, x, 0.0)) / jnp.maximum(jnp.sum(where), 1)

    z_nll = mean(-log_prob(out.logits, out.means, out.log_stds, z[:, 1:]), z_valid)
    loss = z_nll / cfg.z_dim
    metrics = {"z_nll": z_nll, "z_nll_per_dim": z_nll / cfg.z_dim}
    if cfg.done_head:
        done = batch["done"]
        logit = out.done_logit
        bce = -(cfg.done_pos_weight * done * jax.nn.log_sigmoid(logit))
        bce = bce - (1.0 - done) * jax.nn.log_sigmoid(-logit)
        metrics["done_bce"] = mean(bce)
        loss = loss + cfg.done_scale * metrics["done_bce"]
    if cfg.reward_head:
        metrics["reward_mse"] = mean(jnp.square(out.reward - batch["reward"]))
        loss = loss + cfg.reward_scale * metrics["reward_mse"]
    return loss, ({"loss": loss, **metrics}, carry)


class MDNTrainState(NamedTuple):
    """M's parameters, Adam state and update counter."""

    params: Any
    opt_state: Any
    step: jax.Array


class MDNStreamState(NamedTuple):
    """`MDNTrainState` plus the LSTM state (c, h) f32 [B, hidden] carried to the next batch."""

    train: MDNTrainState
    carry: tuple[jax.Array, jax.Array]

    @property
    def params(self) -> Any:
        """M's parameters."""
        return self.train.params

    @property
    def step(self) -> jax.Array:
        """Update counter."""
        return self.train.step


def learning_rate(cfg: MDNConfig, update: jax.Array | int) -> jax.Array:
    """Learning rate of update ``update`` (0-based): (lr - min_lr) * lr_decay^n + min_lr."""
    if cfg.lr_decay <= 0:
        raise ValueError(f"lr_decay: must be > 0, got {cfg.lr_decay}")
    # exp(n log d) with log d taken in float64: d = 0.99999 rounded to float32 first is off by
    # 3e-4 relative after 24,400 updates.
    decay = jnp.exp(jnp.asarray(update, jnp.float32) * math.log(cfg.lr_decay))
    return (cfg.lr - cfg.min_lr) * decay + cfg.min_lr


def gradient_clip(cfg: MDNConfig) -> optax.GradientTransformation:
    """Clipping by global norm or, as the authors do, by value (see `MDNConfig`)."""
    if cfg.grad_clip_mode == "value":
        return optax.clip(cfg.grad_clip)
    if cfg.grad_clip_mode == "norm":
        return optax.clip_by_global_norm(cfg.grad_clip)
    raise ValueError(f"grad_clip_mode: expected 'norm' or 'value', got {cfg.grad_clip_mode!r}")


def make_optimizer(cfg: MDNConfig) -> optax.GradientTransformation:
    """Gradient clipping (`gradient_clip`), then Adam at `learning_rate`."""
    lr = cfg.lr if cfg.lr_decay == 1.0 else functools.partial(learning_rate, cfg)
    return optax.chain(gradient_clip(cfg), optax.adam(lr))


@functools.partial(jax.jit, static_argnames=("cfg", "action_dim"))
def init_train_state(cfg: MDNConfig, key: jax.Array, action_dim: int) -> MDNTrainState:
    """Fresh parameters and optimiser state."""
    params = init(cfg, key, action_dim)
    return MDNTrainState(params, make_optimizer(cfg).init(params), jnp.zeros((), jnp.int32))


@functools.partial(jax.jit, static_argnames="cfg")
def train_step(
    state: MDNTrainState, batch: dict[str, jax.Array], key: jax.Array, cfg: MDNConfig
) -> tuple[MDNTrainState, dict[str, jax.Array]]:
    """One Adam step on a batch (see `loss_fn`); metrics gain `grad_norm`."""
    state, _, metrics = _update(state, None, batch, key, cfg)
    return state, metrics


@functools.partial(jax.jit, static_argnames="cfg")
def stream_train_step(
    state: MDNStreamState, batch: dict[str, jax.Array], key: jax.Array, cfg: MDNConfig
) -> tuple[MDNStreamState, dict[str, jax.Array]]:
    """`train_step` from the carried LSTM state; keeps the final one for the next batch.

    Gradients stop at the batch's first step (truncated backpropagation through time).
    """
    train, carry, metrics = _update(state.train, state.carry, batch, key, cfg)
    return MDNStreamState(train, carry), metrics


def _update(state: MDNTrainState, carry: Any, batch: dict[str, jax.Array], key, cfg: MDNConfig):
    grad_fn = jax.value_and_grad(_loss, has_aux=True)
    (_, (metrics, carry)), grads = grad_fn(state.params, cfg, batch, key, carry)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
    return MDNTrainState(params, opt_state, state.step + 1), carry, metrics

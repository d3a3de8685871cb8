"""World Models V: the convolutional VAE of Ha & Schmidhuber, "World Models" (2018), Sec. A.1.

Frames 64x64x3 are scaled to [0, 1]. The encoder is 4 convs (kernel 4, stride 2, ReLU,
32/64/128/256 channels; `networks.ConvEncoder`) to 1024 features, then two dense layers give
the mean and the log-variance of a diagonal Gaussian over z (32 dims for CarRacing, 64 for Doom).
The decoder is a dense layer to 1024 and 4 transposed convs (kernels 5, 5, 6, 6, stride 2;
`networks.ConvDecoder`) followed by a sigmoid: the mean of the pixels.

Loss (the authors' `vae.py`, made explicit here):
    reconstruction = sum over pixels of (x - x_hat)^2                           (per frame)
    kl             = sum over z dims of KL(N(mu, sigma) || N(0, I))            (per frame)
    kl_clipped     = max(kl, kl_tolerance * z_dim)  (free bits: 0.5 nats per dim by default)
    loss           = mean over the batch of (reconstruction + kl_clipped)
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from jaxplanet.nn import networks

__all__ = [
    "VAE",
    "VAEConfig",
    "VAETrainState",
    "decode",
    "encode",
    "init",
    "init_train_state",
    "loss_fn",
    "reconstruct",
    "to_float",
    "to_uint8",
    "train_step",
]

IMAGE_SHAPE = (64, 64, 3)


def _field(default: Any, help: str) -> Any:
    return dataclasses.field(default=default, metadata={"help": help})


@dataclasses.dataclass(frozen=True)
class VAEConfig:
    """V's architecture and optimiser (paper defaults for CarRacing).

    Attributes:
      z_dim: latent size (32 CarRacing, 64 Doom).
      depth: conv channel multiplier (32: 32/64/128/256 channels, 1024 features).
      kl_tolerance: KL free bits per latent dim (the authors' 0.5); the per-frame KL is floored
        at `kl_tolerance * z_dim`. The floor is a budget for the whole frame, so a small
        `z_dim` leaves little of it: on point_reach (depth 8, batch 32, lr 1e-3) V with z = 8
        (4 free nats) began drawing the small agent disc after ~4,500 updates, with the task's
        z = 32 (16 free nats) after ~2,000.
      lr: Adam learning rate (authors: 1e-4).
      grad_clip: global gradient-norm clip.
      conv_impl: conv implementation ("auto": the fast custom-VJP convs on CPU, XLA elsewhere).
    """

    z_dim: int = _field(32, "latent size Z (a World Models run sets it from --z_dim)")
    depth: int = _field(32, "conv channel multiplier (32: 32/64/128/256 channels)")
    kl_tolerance: float = _field(
        0.5, "KL free bits per latent dim: the per-frame KL is floored at kl_tolerance * Z"
    )
    lr: float = _field(1e-4, "Adam learning rate")
    grad_clip: float = _field(1000.0, "global gradient-norm clip")
    conv_impl: str = _field("auto", "conv implementation (auto: fast on CPU, XLA elsewhere)")


class VAE(nn.Module):
    """Conv VAE: `encode` frames in [0, 1] to (mean, std), `decode` z to pixel means."""

    cfg: VAEConfig

    def setup(self):
        self.encoder = networks.ConvEncoder(self.cfg.depth, impl=self.cfg.conv_impl)
        self.mean_head = nn.Dense(self.cfg.z_dim)
        self.logvar_head = nn.Dense(self.cfg.z_dim)
        self.decoder = networks.ConvDecoder(self.cfg.depth, impl=self.cfg.conv_impl)

    def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        """x f32 [..., 64, 64, 3] in [0, 1] -> (mean, std) f32 [..., Z]."""
        feat = self.encoder(x)
        return self.mean_head(feat), jnp.exp(0.5 * self.logvar_head(feat))

    def decode(self, z: jax.Array) -> jax.Array:
        """z f32 [..., Z] -> pixel means f32 [..., 64, 64, 3] in (0, 1)."""
        return nn.sigmoid(self.decoder(z))

    def __call__(self, x: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        mean, std = self.encode(x)
        z = mean + std * jax.random.normal(key, mean.shape)
        return self.decode(z), mean, std


def to_float(obs: jax.Array) -> jax.Array:
    """uint8 [..., H, W, C] -> f32 in [0, 1] (the authors' scaling)."""
    return jnp.asarray(obs).astype(jnp.float32) / 255.0


def to_uint8(x: jax.Array) -> jax.Array:
    """f32 pixels in [0, 1] -> uint8 (for videos)."""
    return jnp.round(jnp.clip(x, 0.0, 1.0) * 255.0).astype(jnp.uint8)


@functools.partial(jax.jit, static_argnames="cfg")
def init(cfg: VAEConfig, key: jax.Array) -> Any:
    """V's parameters (a pytree; one jitted call: eager init compiles op by op)."""
    k_init, k_noise = jax.random.split(key)
    dummy = jnp.zeros((1, *IMAGE_SHAPE), jnp.float32)
    return VAE(cfg).init(k_init, dummy, k_noise)["params"]


def encode(params: Any, cfg: VAEConfig, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """uint8 frames [..., 64, 64, 3] -> (mean, std) f32 [..., Z] of q(z | x)."""
    return VAE(cfg).apply({"params": params}, to_float(obs), method=VAE.encode)


def decode(params: Any, cfg: VAEConfig, z: jax.Array) -> jax.Array:
    """z f32 [..., Z] -> pixel means f32 [..., 64, 64, 3] in (0, 1)."""
    return VAE(cfg).apply({"params": params}, z, method=VAE.decode)


def reconstruct(params: Any, cfg: VAEConfig, obs: jax.Array) -> jax.Array:
    """uint8 frames [..., 64, 64, 3] -> uint8 reconstructions from the posterior means."""
    mean, _ = encode(params, cfg, obs)
    return to_uint8(decode(params, cfg, mean))


def loss_fn(
    params: Any, cfg: VAEConfig, obs: jax.Array, key: jax.Array
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """Negative ELBO with the authors' KL tolerance.

    Args:
      params: V's parameters.
      cfg: V's config.
      obs: uint8 frames [B, 64, 64, 3].
      key: PRNG key of the reparameterised sample.

    Returns:
      (loss f32 [], metrics) with `loss`, `reconstruction` (sum over pixels, mean over batch),
      `kl` (sum over z dims, mean over batch, before the floor), `kl_clipped` (what the loss
      uses), `elbo` (-(reconstruction + kl): the unclipped bound up to the Gaussian's constant)
      and `std_mean` (mean posterior std).
    """
    x = to_float(obs)
    recon, mean, std = VAE(cfg).apply({"params": params}, x, key)
    rec = jnp.sum(jnp.square(x - recon), axis=(-3, -2, -1))
    kl = 0.5 * jnp.sum(jnp.square(mean) + jnp.square(std) - 1.0 - 2.0 * jnp.log(std), axis=-1)
    kl_clipped = jnp.maximum(kl, cfg.kl_tolerance * cfg.z_dim)
    loss = jnp.mean(rec + kl_clipped)
    metrics = {
        "loss": loss,
        "reconstruction": jnp.mean(rec),
        "kl": jnp.mean(kl),
        "kl_clipped": jnp.mean(kl_clipped),
        "elbo": -jnp.mean(rec + kl),
        "std_mean": jnp.mean(std),
    }
    return loss, metrics


class VAETrainState(NamedTuple):
    """V's parameters, Adam state and update counter."""

    params: Any
    opt_state: Any
    step: jax.Array


def make_optimizer(cfg: VAEConfig) -> optax.GradientTransformation:
    """Adam with global-norm clipping."""
    return optax.chain(optax.clip_by_global_norm(cfg.grad_clip), optax.adam(cfg.lr))


@functools.partial(jax.jit, static_argnames="cfg")
def init_train_state(cfg: VAEConfig, key: jax.Array) -> VAETrainState:
    """Fresh parameters and optimiser state."""
    params = init(cfg, key)
    return VAETrainState(params, make_optimizer(cfg).init(params), jnp.zeros((), jnp.int32))


@functools.partial(jax.jit, static_argnames="cfg")
def train_step(
    state: VAETrainState, obs: jax.Array, key: jax.Array, cfg: VAEConfig
) -> tuple[VAETrainState, dict[str, jax.Array]]:
    """One Adam step on a batch of uint8 frames [B, 64, 64, 3]; metrics gain `grad_norm`."""
    (_, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.params, cfg, obs, key)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    metrics = {**metrics, "grad_norm": optax.tree.norm(grads)}
    return VAETrainState(params, opt_state, state.step + 1), metrics

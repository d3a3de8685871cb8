"""PlaNet world model: config, Linen module (encoder, RSSM cell, decoder, reward head), and
the pure functions that apply it.

Hafner et al., "Learning Latent Dynamics for Planning from Pixels", ICML 2019. The losses live
in `jaxplanet.planet.losses`, the optimiser and train step in `jaxplanet.planet.train`, the
planning transition in `jaxplanet.planet.planning`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxplanet.nn.networks import (
    MLP,
    ConvDecoder,
    ConvEncoder,
    check_chunk,
    postprocess,
    preprocess,
)
from jaxplanet.planet import rssm

__all__ = [
    "ModelConfig",
    "WorldModel",
    "decode",
    "encode",
    "init",
    "open_loop_predictions",
    "posterior_step",
    "reward",
]

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
    reward_hidden: int = _field(100, "reward MLP hidden size (released code: 100)")
    reward_layers: int = _field(2, "reward MLP hidden layers")
    bits: int = _field(5, "image bit depth after quantisation")
    free_nats: float = _field(3.0, "KL free nats per time step")
    kl_scale: float = _field(1.0, "beta_1: weight of the one-step KL")
    overshooting_distance: int = _field(
        0, "latent overshooting distance D (0 = off, as released; the paper's ablation used 50)"
    )
    overshooting_kl_scale: float = _field(1.0, "beta: weight of the mean d >= 2 KL")
    overshooting_reward_scale: float = _field(0.0, "weight of the mean d >= 2 reward NLL")
    image_scale: float = _field(1.0, "weight of the image NLL")
    reward_scale: float = _field(10.0, "weight of the reward NLL (released code: 10)")
    lr: float = _field(1e-3, "Adam learning rate")
    lr_warmup: int = _field(10_000, "updates over which the learning rate ramps up from 0")
    adam_eps: float = _field(1e-4, "Adam epsilon")
    grad_clip: float = _field(1000.0, "global gradient-norm clip")
    dtype: Literal["float32", "bfloat16", "float16"] = _field(
        "float32", "compute dtype (params stay float32)"
    )
    conv_impl: Literal["auto", "xla", "fast"] = _field(
        "auto", "conv implementation (auto: fast on CPU, XLA elsewhere; see convs.py)"
    )
    conv_chunk: int = _field(
        -1,
        "frames per slice the encoder/decoder convs run on (-1 auto: 50 on CPU for batches whose "
        "activations exceed 32 MiB, e.g. the paper's 50 x 50; 0 whole batch; networks.py)",
    )

    def __post_init__(self) -> None:
        check_chunk(self.conv_chunk, "conv_chunk")
        if self.variant not in rssm.VARIANTS:
            raise ValueError(f"unknown variant {self.variant!r}; expected one of {rssm.VARIANTS}")
        if self.overshooting_distance < 0:
            raise ValueError("overshooting_distance must be >= 0")
        if self.lr_warmup < 0:
            raise ValueError("lr_warmup must be >= 0")

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
        small = dict(depth=4, deter=16, stoch=4, hidden=16, reward_hidden=16, lr_warmup=0)
        return dataclasses.replace(cls(**small), **changes)


class WorldModel(nn.Module):
    """Encoder, RSSM cell, image decoder and reward head; variables under their names."""

    cfg: ModelConfig

    def setup(self) -> None:
        cfg, dtype = self.cfg, jnp.dtype(self.cfg.dtype)
        self.encoder = ConvEncoder(cfg.depth, cfg.conv_impl, dtype, cfg.conv_chunk)
        self.decoder = ConvDecoder(cfg.depth, 3, cfg.conv_impl, dtype, cfg.conv_chunk)
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

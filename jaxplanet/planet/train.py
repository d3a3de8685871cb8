"""PlaNet optimisation: Adam with a linear learning-rate ramp, gradient clipping, skipping of
non-finite updates, and the pure train step.

Settings of the authors' released code: Adam (lr 1e-3, eps 1e-4), global-norm clip 1000, the
learning rate ramped linearly from 0 over the first 10,000 updates.
"""

from __future__ import annotations

from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxplanet.planet.losses import loss
from jaxplanet.planet.model import ModelConfig, init

__all__ = [
    "MAX_CONSECUTIVE_NON_FINITE",
    "NonFiniteLossError",
    "TrainState",
    "check_finite",
    "init_train_state",
    "learning_rate",
    "make_optimizer",
    "train_step",
]


@flax.struct.dataclass
class TrainState:
    """Parameters, optimiser state and update counter (int32 [])."""

    params: Any
    opt_state: Any
    step: jax.Array


class NonFiniteLossError(FloatingPointError):
    """A training step produced a non-finite loss, loss term or gradient norm."""


def learning_rate(cfg: ModelConfig) -> optax.Schedule:
    """lr * min((n + 1) / lr_warmup, 1) at update n (constant lr when lr_warmup = 0)."""
    if not cfg.lr_warmup:
        return optax.constant_schedule(cfg.lr)
    return lambda n: cfg.lr * jnp.minimum((n + 1) / cfg.lr_warmup, 1.0)


# Non-finite gradients are skipped (parameters and Adam moments kept) for up to this many updates
# in a row; the agent stops the run at the first one anyway (`check_finite`).
MAX_CONSECUTIVE_NON_FINITE = 1_000_000


def make_optimizer(cfg: ModelConfig) -> optax.GradientTransformation:
    """Skip non-finite gradients; else global-norm clip then Adam with the lr ramp."""
    inner = optax.chain(
        optax.clip_by_global_norm(cfg.grad_clip),
        optax.adam(learning_rate(cfg), eps=cfg.adam_eps),
    )
    return optax.apply_if_finite(inner, MAX_CONSECUTIVE_NON_FINITE)


def init_train_state(cfg: ModelConfig, key: jax.Array, action_dim: int) -> TrainState:
    """Fresh parameters and optimiser state."""
    params = init(cfg, key, action_dim)
    return TrainState(params, make_optimizer(cfg).init(params), jnp.zeros((), jnp.int32))


def train_step(
    state: TrainState, cfg: ModelConfig, batch: dict, key: jax.Array
) -> tuple[TrainState, dict[str, jax.Array]]:
    """One Adam update on :func:`losses.loss`; pure, jit with ``static_argnames="cfg"``.

    Same argument order as ``loss(params, cfg, batch, key)``. Where the gradients are
    non-finite the update is skipped (``optax.apply_if_finite``: parameters and Adam moments
    kept, the counter still advances) and ``metrics["finite"]`` is False; call
    :func:`check_finite` on the host to stop the run.

    Returns:
      (new state, metrics: the loss metrics plus grad_norm, lr and finite (bool)).
    """
    (_, metrics), grads = jax.value_and_grad(loss, has_aux=True)(state.params, cfg, batch, key)
    grad_norm = optax.tree.norm(grads)
    finite = jnp.isfinite(metrics["loss"]) & jnp.isfinite(grad_norm)
    updates, opt_state = make_optimizer(cfg).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    lr = learning_rate(cfg)(state.step)
    new = TrainState(params, opt_state, state.step + 1)
    extra = {"grad_norm": grad_norm, "lr": jnp.asarray(lr, jnp.float32), "finite": finite}
    return new, {**metrics, **extra}


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

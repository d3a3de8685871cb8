"""Cross-entropy method (CEM) planner over any latent or true transition function.

The planner of PlaNet (Hafner et al., "Learning Latent Dynamics for Planning from Pixels",
ICML 2019, Sec. 3 and Alg. 2): a diagonal Gaussian over action sequences of length `horizon`
starts at N(0, I); at every iteration `candidates` sequences are sampled, each is scored by
imagining its trajectory with the model and summing the predicted rewards, and the Gaussian is
refit to the `top_k` best ("elite") sequences. The agent executes the first action of the final
mean and resets the distribution at every environment step.

The planner is generic: it only sees the transition protocol shared by every model and
simulator in jaxplanet,

    step(state, action [A], key) -> (next_state, reward [])

for one unbatched `state` (any pytree: an RSSM belief, an MDN-RNN dream state, a linear-Gaussian
latent, the state of a pure-JAX simulator). Deterministic steps ignore `key`. Every candidate,
every horizon step and every iteration gets its own key, so a stochastic step draws independent
noise per candidate. The planner never imports a model.

Loose ends of the paper made explicit here:
  * Action bounds: candidate actions are sampled from N(mean, std) and then clipped to [-1, 1]
    (the contract's action range). Elites are therefore inside the box, so the refit mean - and
    the returned plan - always lies in [-1, 1].
  * The refit std is sqrt(var + `var_eps`) of the elites (biased, 1/top_k variance), floored at
    `min_std`. The paper says nothing; PlaNet's released code uses var_eps = 1e-6.
  * Returns are the sum of rewards over the horizon, discounted by `discount` (the paper says a
    plain sum, discount 1; the released code discounts by 0.99).

Performance layout: the candidates are the leading batch axis of every array the model sees, so
each dense layer of a vmapped `step` becomes one `[candidates, K] x [K, N]` matmul; one
iteration is a single `lax.scan` of `jax.vmap(step)` over the horizon; iterations are a
`lax.scan` too, so a whole planning call is one XLA computation with static shapes and no host
round trips. Under `jax.vmap` over a batch of states the matmuls become
`[batch * candidates, K] x [K, N]`. The PlaNet agent jits its planning step with
`jaxplanet.core.compile.compiler_options("act")` (XLA options chosen by measurement; see there).

Example (a learned PlaNet model, the step built inside jit from traced params):

    plan_fn = jax.jit(
        lambda params, belief, key: cem.plan(
            planet.latent_step(params, cfg), belief, key, horizon=12, action_dim=A))
    mean = plan_fn(params, belief, key)                  # [12, A]; execute mean[0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Step = Callable[[Any, jax.Array, jax.Array], tuple[Any, jax.Array]]

__all__ = [
    "CEMConfig",
    "CEMInfo",
    "Step",
    "evaluate",
    "plan",
    "plan_with",
    "random_shooting",
]


@dataclasses.dataclass(frozen=True)
class CEMConfig:
    """CEM hyperparameters; defaults are the PlaNet paper's (Sec. 3, App. A).

    Attributes:
      horizon: planning horizon H (number of imagined steps).
      iterations: number of refits of the action distribution.
      candidates: number of sampled action sequences per iteration.
      top_k: number of elite sequences the distribution is refit to.
      min_std: floor of the refit standard deviation.
      var_eps: added to the elites' variance before the square root (released code: 1e-6).
      discount: per-step discount of the imagined rewards (1.0 = plain sum).
      unroll: unroll factor of the horizon scan (speed/compile-time trade-off).
    """

    horizon: int = dataclasses.field(default=12, metadata={"help": "planning horizon H"})
    iterations: int = dataclasses.field(default=10, metadata={"help": "CEM refits per plan"})
    candidates: int = dataclasses.field(
        default=1000, metadata={"help": "action sequences sampled per iteration"}
    )
    top_k: int = dataclasses.field(default=100, metadata={"help": "elites refit to"})
    min_std: float = dataclasses.field(default=0.0, metadata={"help": "floor of the refit std"})
    var_eps: float = dataclasses.field(
        default=0.0, metadata={"help": "refit std = sqrt(var + var_eps) (released code: 1e-6)"}
    )
    discount: float = dataclasses.field(
        default=1.0, metadata={"help": "discount of imagined rewards (1 = plain sum)"}
    )
    unroll: int = dataclasses.field(default=1, metadata={"help": "unroll of the horizon scan"})

    def __post_init__(self) -> None:
        for name in ("horizon", "iterations", "candidates", "top_k", "unroll"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CEMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.top_k > self.candidates:
            raise ValueError(f"top_k ({self.top_k}) must be <= candidates ({self.candidates})")
        if self.min_std < 0 or self.var_eps < 0:
            raise ValueError(f"min_std, var_eps must be >= 0, got {self.min_std}, {self.var_eps}")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError(f"discount must be in (0, 1], got {self.discount}")


class CEMInfo(NamedTuple):
    """Diagnostics of one planning call (shapes for one state; vmap adds leading axes).

    Attributes:
      best_return: [iterations] best candidate return at each iteration.
      elite_return: [iterations] mean return of the elites at each iteration.
      std: [horizon, action_dim] the final standard deviation.
    """

    best_return: jax.Array
    elite_return: jax.Array
    std: jax.Array


def _returns_time_major(
    step: Step, state: Any, actions: jax.Array, key: jax.Array, discount: float, unroll: int
) -> jax.Array:
    """`evaluate` on time-major actions [H, N, A] (the planner's layout; no transpose)."""
    horizon, n = actions.shape[:2]
    states = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), state)
    batched_step = jax.vmap(step)
    step_keys = jax.random.split(key, horizon)
    _, reward_shape = jax.eval_shape(batched_step, states, actions[0], jax.random.split(key, n))
    if reward_shape.shape != (n,):
        raise ValueError(
            "step(state, action, key) must return (next_state, reward) with a scalar reward per "
            f"state, got reward shape {reward_shape.shape[1:]}"
        )

    def body(carry, inputs):
        states, total, scale = carry
        action_t, key_t = inputs
        states, reward = batched_step(states, action_t, jax.random.split(key_t, n))
        total = total + scale * reward.astype(total.dtype)
        return (states, total, scale * discount), None

    init = (states, jnp.zeros((n,), jnp.float32), jnp.ones((), jnp.float32))
    (_, total, _), _ = jax.lax.scan(body, init, (actions, step_keys), unroll=unroll)
    return total


def evaluate(
    step: Step,
    state: Any,
    actions: jax.Array,
    key: jax.Array,
    *,
    discount: float = 1.0,
    unroll: int = 1,
) -> jax.Array:
    """Returns of many action sequences from one start state.

    Candidate n at horizon step t calls `step` with its own key
    `split(split(key, H)[t], N)[n]`, so stochastic steps draw independent noise per candidate.

    Args:
      step: `step(state, action [A], key) -> (next_state, reward [])` for a single state.
      state: pytree, the start state (no candidate axis).
      actions: [N, H, A] action sequences (N candidates, horizon H).
      key: PRNG key of this evaluation.
      discount: reward discount per step.
      unroll: unroll factor of the scan over H.

    Returns:
      [N] float32 sum over the horizon of (discounted) rewards.
    """
    actions = jnp.asarray(actions)
    if actions.ndim != 3:
        raise ValueError(f"actions must have shape [N, H, A], got {actions.shape}")
    return _returns_time_major(step, state, jnp.swapaxes(actions, 0, 1), key, discount, unroll)


def plan(
    step: Step,
    state: Any,
    key: jax.Array,
    *,
    horizon: int = 12,
    action_dim: int,
    iterations: int = 10,
    candidates: int = 1000,
    top_k: int = 100,
    init_mean: jax.Array | None = None,
    init_std: jax.Array | float | None = None,
    min_std: float = 0.0,
    var_eps: float = 0.0,
    discount: float = 1.0,
    unroll: int = 1,
    return_info: bool = False,
) -> jax.Array | tuple[jax.Array, CEMInfo]:
    """Plans an action sequence with the cross-entropy method.

    Works under `jax.jit` (all sizes are static Python ints) and `jax.vmap` over `(state, key)`
    (e.g. `jax.vmap(lambda s, k: plan(step, s, k, action_dim=A))(states, keys)`).

    Args:
      step: `step(state, action [A], key) -> (next_state, reward [])` for one unbatched state.
      state: pytree, the current belief / simulator state (no candidate axis).
      key: PRNG key; iteration i samples its candidates and evaluates them with its own keys.
      horizon: H, planning horizon.
      action_dim: A, action dimension.
      iterations: number of CEM refits.
      candidates: number of sampled sequences per iteration.
      top_k: number of elites.
      init_mean: [H, A] initial mean (default zeros).
      init_std: [H, A] or scalar initial std (default ones).
      min_std: floor of the refit std.
      var_eps: refit std = sqrt(var + var_eps).
      discount: per-step reward discount.
      unroll: unroll factor of the horizon scan.
      return_info: also return a `CEMInfo`.

    Returns:
      [H, A] float32 mean action sequence in [-1, 1]; with `return_info`, `(mean, CEMInfo)`.
    """
    config = CEMConfig(horizon, iterations, candidates, top_k, min_std, var_eps, discount, unroll)
    mean = jnp.zeros((horizon, action_dim), jnp.float32)
    if init_mean is not None:
        mean = jnp.broadcast_to(jnp.asarray(init_mean, jnp.float32), (horizon, action_dim))
    std = jnp.ones((horizon, action_dim), jnp.float32)
    if init_std is not None:
        std = jnp.broadcast_to(jnp.asarray(init_std, jnp.float32), (horizon, action_dim))

    def iteration(carry, key):
        mean, std = carry
        k_sample, k_eval = jax.random.split(key)
        # Time-major [H, N, A] so the horizon scan slices without a transpose.
        noise = jax.random.normal(k_sample, (horizon, candidates, action_dim), jnp.float32)
        actions = jnp.clip(mean[:, None] + std[:, None] * noise, -1.0, 1.0)
        returns = _returns_time_major(step, state, actions, k_eval, discount, unroll)
        elite_returns, elite_idx = jax.lax.top_k(returns, top_k)
        elites = jnp.take(actions, elite_idx, axis=1)  # [H, K, A]
        mean = elites.mean(axis=1)
        std = jnp.maximum(jnp.sqrt(elites.var(axis=1) + var_eps), min_std)
        return (mean, std), (elite_returns[0], elite_returns.mean())

    keys = jax.random.split(key, config.iterations)
    (mean, std), (best, elite) = jax.lax.scan(iteration, (mean, std), keys)
    if return_info:
        return mean, CEMInfo(best_return=best, elite_return=elite, std=std)
    return mean


def plan_with(
    config: CEMConfig,
    step: Step,
    state: Any,
    key: jax.Array,
    action_dim: int,
    **kwargs: Any,
) -> jax.Array | tuple[jax.Array, CEMInfo]:
    """`plan` with the hyperparameters taken from a `CEMConfig`.

    Args:
      config: CEM hyperparameters.
      step, state, key: as in `plan`.
      action_dim: A.
      **kwargs: `init_mean`, `init_std`, `return_info`.

    Returns:
      As `plan`: [H, A] mean action sequence (and `CEMInfo` with `return_info=True`).
    """
    return plan(
        step,
        state,
        key,
        horizon=config.horizon,
        action_dim=action_dim,
        iterations=config.iterations,
        candidates=config.candidates,
        top_k=config.top_k,
        min_std=config.min_std,
        var_eps=config.var_eps,
        discount=config.discount,
        unroll=config.unroll,
        **kwargs,
    )


def random_shooting(
    step: Step,
    state: Any,
    key: jax.Array,
    *,
    horizon: int = 12,
    action_dim: int,
    candidates: int = 1000,
    discount: float = 1.0,
    unroll: int = 1,
) -> jax.Array:
    """Random shooting: the best of `candidates` sequences drawn from N(0, I) clipped to [-1, 1].

    Exactly CEM with one iteration and `top_k=1` (the mean of a single elite is that elite).

    Returns:
      [H, A] the best sampled action sequence.
    """
    return plan(
        step,
        state,
        key,
        horizon=horizon,
        action_dim=action_dim,
        iterations=1,
        candidates=candidates,
        top_k=1,
        discount=discount,
        unroll=unroll,
    )

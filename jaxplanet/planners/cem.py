"""Cross-entropy method (CEM) planner over any latent or true transition function.

The planner of PlaNet (Hafner et al., "Learning Latent Dynamics for Planning from Pixels",
ICML 2019, Sec. 3 and Alg. 2): a diagonal Gaussian over action sequences of length `horizon`
starts at N(0, I); at every iteration `candidates` sequences are sampled, each is scored by
imagining its trajectory with the model and summing the predicted rewards, and the Gaussian is
refit to the `top_k` best ("elite") sequences. The agent executes the first action of the final
mean and resets the distribution at every environment step.

The planner is generic: it only sees `step(state, action) -> (next_state, reward)` where `state`
is any pytree (an RSSM belief, the state of a pure-JAX simulator, ...). It never imports a model.
A model whose reward is affine in some per-step features (a reward head's last layer) may instead
return those features and pass `readout`: the features are summed over the horizon and the
reward layer is applied once per sequence, not once per step (see `evaluate`).

Loose ends of the paper made explicit here:
  * Action bounds: candidate actions are sampled from N(mean, std) and then clipped to [-1, 1]
    (the contract's action range). Elites are therefore inside the box, so the refit mean - and
    the returned plan - always lies in [-1, 1]. An optimum outside the box is approached at the
    bound, where clipping puts probability mass.
  * The refit std is the (biased, 1/top_k) standard deviation of the elites, floored at
    `min_std` (0 by default, as in the paper).
  * Returns are the sum of rewards over the horizon, optionally discounted by `discount`.

Performance layout: the candidates are the leading batch axis of every array the model sees, so
each dense layer of a vmapped `step` becomes one `[candidates, K] x [K, N]` matmul; one
iteration is a single `lax.scan` of `jax.vmap(step)` over the horizon; iterations are a
`lax.scan` too, so a whole planning call is one XLA computation with static shapes and no host
round trips. Under `jax.vmap` over a batch of states the matmuls become
`[batch * candidates, K] x [K, N]`. On XLA:CPU, jit with `compiler_options()` (XLA's own dot
instead of YNNPACK's; ~15 % faster at paper size, see benchmarks/planning.py).

Example (PlaNet agent, one environment):

    step = planet.latent_step(params, model_cfg)
    mean = cem.plan(step, belief, key, action_dim=A)       # [12, A]; execute mean[0]
    fused = planet.fused_latent_step(params, model_cfg)    # same plans, ~7 % faster
    mean = cem.plan(fused.step, fused.start(belief), key, action_dim=A, readout=fused.readout)
    plan_fn = jax.jit(lambda p, b, k: cem.plan(planet.latent_step(p, cfg), b, k, action_dim=A),
                      compiler_options=cem.compiler_options())
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

Step = Callable[[Any, jax.Array], tuple[Any, jax.Array]]
Readout = Callable[[jax.Array, jax.Array], jax.Array]

__all__ = [
    "CEMConfig",
    "CEMInfo",
    "compiler_options",
    "evaluate",
    "plan",
    "plan_with",
    "random_shooting",
]


@dataclasses.dataclass(frozen=True)
class CEMConfig:
    """CEM hyperparameters; defaults are the PlaNet paper's.

    Attributes:
      horizon: planning horizon H (number of imagined steps).
      iterations: number of refits of the action distribution.
      candidates: number of sampled action sequences per iteration.
      top_k: number of elite sequences the distribution is refit to.
      min_std: floor of the refit standard deviation.
      discount: per-step discount of the imagined rewards (1.0 = plain sum).
      unroll: unroll factor of the horizon scan (speed/compile-time trade-off).
    """

    horizon: int = 12
    iterations: int = 10
    candidates: int = 1000
    top_k: int = 100
    min_std: float = 0.0
    discount: float = 1.0
    unroll: int = 1

    def __post_init__(self) -> None:
        for name in ("horizon", "iterations", "candidates", "top_k", "unroll"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"CEMConfig.{name} must be >= 1, got {getattr(self, name)}")
        if self.top_k > self.candidates:
            raise ValueError(f"top_k ({self.top_k}) must be <= candidates ({self.candidates})")
        if self.min_std < 0:
            raise ValueError(f"min_std must be >= 0, got {self.min_std}")


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


def evaluate(
    step: Step,
    state: Any,
    actions: jax.Array,
    *,
    discount: float = 1.0,
    unroll: int = 1,
    readout: Readout | None = None,
) -> jax.Array:
    """Returns of many action sequences from one start state.

    Args:
      step: `step(state, action [A]) -> (next_state, reward [])` for a single state; with
        `readout`, `step(state, action) -> (next_state, features [F])` instead.
      state: pytree, the start state (no candidate axis).
      actions: [H, N, A] action sequences, time-major (N candidates).
      discount: reward discount per step.
      unroll: unroll factor of the scan over H.
      readout: optional `readout(features [N, F], weight []) -> [N]` for steps whose reward is
        affine in their features, reward_t = g(f_t) + b with g linear. It must satisfy
        `readout(f, w) = g(f) + w * b`; the return is then `readout(sum_t d^t f_t, sum_t d^t)`,
        equal to sum_t d^t reward_t (d = `discount`) up to float rounding, with the reward
        layer applied once per sequence instead of once per step.

    Returns:
      [N] float32 sum over the horizon of (discounted) rewards.
    """
    n = actions.shape[1]
    states = jax.tree.map(lambda x: jnp.broadcast_to(x, (n, *jnp.shape(x))), state)
    batched_step = jax.vmap(step)
    _, out_shape = jax.eval_shape(batched_step, states, actions[0])
    if readout is None and out_shape.shape != (n,):
        raise ValueError(
            f"step must return a scalar reward per state, got shape {out_shape.shape[1:]}; "
            "a step that returns reward features needs `readout`"
        )

    def body(carry, action_t):
        states, total, scale = carry
        states, out = batched_step(states, action_t)
        total = total + scale * out.astype(total.dtype)
        return (states, total, scale * discount), None

    init = (states, jnp.zeros(out_shape.shape, jnp.float32), jnp.ones((), jnp.float32))
    (_, total, _), _ = jax.lax.scan(body, init, actions, unroll=unroll)
    if readout is None:
        return total
    weight = sum(discount**t for t in range(actions.shape[0]))
    returns = readout(total, jnp.float32(weight))
    if returns.shape != (n,):
        raise ValueError(f"readout must return one return per candidate [{n}], got {returns.shape}")
    return returns.astype(jnp.float32)


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
    discount: float = 1.0,
    unroll: int = 1,
    readout: Readout | None = None,
    return_info: bool = False,
) -> jax.Array | tuple[jax.Array, CEMInfo]:
    """Plans an action sequence with the cross-entropy method.

    Works under `jax.jit` (all sizes are static Python ints) and `jax.vmap` over `(state, key)`
    (e.g. `jax.vmap(lambda s, k: plan(step, s, k, action_dim=A))(states, keys)`).

    Args:
      step: `step(state, action [A]) -> (next_state, reward [])` for one unbatched state.
      state: pytree, the current belief / simulator state (no candidate axis).
      key: PRNG key.
      horizon: H, planning horizon.
      action_dim: A, action dimension.
      iterations: number of CEM refits.
      candidates: number of sampled sequences per iteration.
      top_k: number of elites.
      init_mean: [H, A] initial mean (default zeros).
      init_std: [H, A] or scalar initial std (default ones).
      min_std: floor of the refit std.
      discount: per-step reward discount.
      unroll: unroll factor of the horizon scan.
      readout: optional reward layer applied once per sequence; `step` then returns reward
        features (see `evaluate`).
      return_info: also return a `CEMInfo`.

    Returns:
      [H, A] float32 mean action sequence in [-1, 1]; with `return_info`, `(mean, CEMInfo)`.
    """
    config = CEMConfig(horizon, iterations, candidates, top_k, min_std, discount, unroll)
    mean = jnp.zeros((horizon, action_dim), jnp.float32)
    if init_mean is not None:
        mean = jnp.broadcast_to(jnp.asarray(init_mean, jnp.float32), (horizon, action_dim))
    std = jnp.ones((horizon, action_dim), jnp.float32)
    if init_std is not None:
        std = jnp.broadcast_to(jnp.asarray(init_std, jnp.float32), (horizon, action_dim))

    def iteration(carry, key):
        mean, std = carry
        # Time-major [H, N, A] so the horizon scan slices without a transpose.
        noise = jax.random.normal(key, (horizon, candidates, action_dim), jnp.float32)
        actions = jnp.clip(mean[:, None] + std[:, None] * noise, -1.0, 1.0)
        returns = evaluate(step, state, actions, discount=discount, unroll=unroll, readout=readout)
        elite_returns, elite_idx = jax.lax.top_k(returns, top_k)
        elites = jnp.take(actions, elite_idx, axis=1)  # [H, K, A]
        mean = elites.mean(axis=1)
        std = jnp.maximum(elites.std(axis=1), min_std)
        return (mean, std), (elite_returns[0], elite_returns.mean())

    keys = jax.random.split(key, config.iterations)
    (mean, std), (best, elite) = jax.lax.scan(iteration, (mean, std), keys)
    if return_info:
        return mean, CEMInfo(best_return=best, elite_return=elite, std=std)
    return mean


_CPU_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


@functools.cache
def _options_supported(backend: str, items: tuple[tuple[str, str], ...]) -> bool:
    try:
        x = jax.device_put(jnp.ones((2, 2)), jax.local_devices(backend=backend)[0])
        jax.jit(jnp.matmul, compiler_options=dict(items))(x, x).block_until_ready()
    except Exception:  # an XLA build that does not know the option
        return False
    return True


def compiler_options(backend: str | None = None) -> dict[str, str]:
    """XLA compiler options that speed up planning on `backend` (default: JAX's default).

    On XLA:CPU (jax 0.10.2) dots run through YNNPACK by default; for the planner's
    [candidates, K] x [K, N] matmuls (K, N ~ 200-600) XLA's own (Eigen) dot is faster, so this
    returns ``{"xla_cpu_experimental_ynn_fusion_type": ""}`` on CPU (measured in
    benchmarks/planning.py; see its --xla_defaults flag). Elsewhere, or where the installed XLA
    does not know the option, it returns ``{}``. Use as
    ``jax.jit(plan_fn, compiler_options=cem.compiler_options())``.
    """
    backend = backend or jax.default_backend()
    if backend != "cpu":
        return {}
    items = tuple(sorted(_CPU_OPTIONS.items()))
    return dict(_CPU_OPTIONS) if _options_supported(backend, items) else {}


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
      **kwargs: `init_mean`, `init_std`, `readout`, `return_info`.

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
    readout: Readout | None = None,
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
        readout=readout,
    )

"""World Models C and its evolution (Ha & Schmidhuber, "World Models", 2018, Sec. 2.3, A.3).

C is one linear layer on the concatenation of V's latent z and M's hidden state h:

    a = tanh(W [z, h] + b)                     # (32 + 256) * 3 + 3 = 867 parameters (CarRacing)

The authors' take_cover C (`doomrnn/model.py`, `config.py`) instead reads M's cell state too and
has no bias: a = tanh(W [z, c, h]), (64 + 2 * 512) * 1 = 1088 parameters (`init(..., cell=True,
bias=False)`; `act(params, z, h, c)`).

For VizDoom take_cover C has one output in [-1, 1], mapped as in the authors' code to a discrete
move: left below -1/3, right above 1/3, stay in between (`take_cover_action` returns it as
-1 / 1 / 0, the value the environment wrapper sees).

C is evolved with CMA-ES (`evosax.algorithms.CMA_ES`, evosax 0.3.2). evosax minimises, so
`Evolution` hands it negated returns; controller parameters travel as one flat vector
(`jax.flatten_util.ravel_pytree`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxplanet.envs.optional import require

__all__ = [
    "ActionMap",
    "Evolution",
    "act",
    "flatten",
    "init",
    "map_action",
    "num_params",
    "require_cma_es",
    "take_cover_action",
]

ActionMap = Literal["continuous", "take_cover"]
TAKE_COVER_THRESHOLD = 1.0 / 3.0


def init(
    key: jax.Array,
    z_dim: int,
    hidden: int,
    action_dim: int,
    scale: float = 0.0,
    *,
    cell: bool = False,
    bias: bool = True,
) -> Any:
    """C's parameters (zeros, or N(0, scale^2) entries).

    Returns {"w": [Z + H, A], "b": [A]}; with `cell` W also reads M's cell state c
    ([Z + 2H, A]); without `bias` there is no "b"; ``hidden=0`` is a C on z alone (the paper's
    "V model only" CarRacing agent).
    """
    k_w, k_b = jax.random.split(key)
    n_in = z_dim + (2 if cell else 1) * hidden
    params = {"w": scale * jax.random.normal(k_w, (n_in, action_dim), jnp.float32)}
    if bias:
        params["b"] = scale * jax.random.normal(k_b, (action_dim,), jnp.float32)
    return params


def num_params(
    z_dim: int, hidden: int, action_dim: int, *, cell: bool = False, bias: bool = True
) -> int:
    """(Z + H) * A + A; (Z + 2H) * A with `cell`; no "+ A" without `bias`."""
    return (z_dim + (2 if cell else 1) * hidden) * action_dim + (action_dim if bias else 0)


def act(params: Any, z: jax.Array, h: jax.Array | None, c: jax.Array | None = None) -> jax.Array:
    """a = tanh(W [z, h] + b), or tanh(W [z, c, h] (+ b)) given M's cell state c, or
    tanh(W z + b) with h None (a C on z alone).

    z [..., Z], h and c [..., H] -> f32 [..., A] in [-1, 1]. The bias is added when `params`
    has one ("b").
    """
    x = z if h is None else jnp.concatenate([z, h] if c is None else [z, c, h], axis=-1)
    y = x @ params["w"]
    return jnp.tanh(y + params["b"] if "b" in params else y)


def take_cover_action(a: jax.Array) -> jax.Array:
    """Authors' take_cover mapping: a [..., 1] -> -1 (left), 0 (stay) or 1 (right), f32."""
    return jnp.where(a > TAKE_COVER_THRESHOLD, 1.0, jnp.where(a < -TAKE_COVER_THRESHOLD, -1.0, 0.0))


def map_action(kind: ActionMap, a: jax.Array) -> jax.Array:
    """Applies the environment's action mapping ("continuous": identity)."""
    if kind == "continuous":
        return a
    if kind == "take_cover":
        return take_cover_action(a)
    raise ValueError(f"unknown action map {kind!r}; expected 'continuous' or 'take_cover'")


def require_cma_es() -> type:
    """evosax's `CMA_ES` class.

    Raises:
      ImportError: evosax is missing (it ships with the `worldmodels` extra); one line naming
        the install command.
    """
    return require("evosax.algorithms", "CMA-ES (evosax)").CMA_ES


def flatten(params: Any) -> tuple[jax.Array, Callable[[jax.Array], Any]]:
    """(flat f32 [P], unflatten) via `jax.flatten_util.ravel_pytree`."""
    return ravel_pytree(params)


class Evolution(NamedTuple):
    """CMA-ES over a flat parameter vector, maximising fitness.

    Built by `Evolution.make(template, population, sigma)`; `init`, `ask`, `tell` are pure
    (jittable) functions of an explicit state, as in evosax.

    Attributes:
      strategy: the `evosax.algorithms.CMA_ES` instance.
      es_params: its hyperparameters (std_init = sigma).
      unflatten: flat vector -> controller pytree.
      mean0: flat initial mean f32 [P].
    """

    strategy: Any
    es_params: Any
    unflatten: Callable[[jax.Array], Any]
    mean0: jax.Array

    @staticmethod
    def make(template: Any, population: int, sigma: float = 0.1) -> Evolution:
        """CMA-ES with `population` candidates around `template` (its initial mean).

        Raises:
          ImportError: evosax is missing (it ships with the `worldmodels` extra).
        """
        flat, unflatten = ravel_pytree(template)
        strategy = require_cma_es()(population_size=population, solution=flat)
        es_params = strategy.default_params.replace(std_init=jnp.asarray(sigma, jnp.float32))
        return Evolution(strategy, es_params, unflatten, flat)

    @property
    def population(self) -> int:
        """Candidates per generation."""
        return self.strategy.population_size

    def init(self, key: jax.Array, mean: jax.Array | None = None) -> Any:
        """CMA-ES state with mean `mean0` (or ``mean``, flat f32 [P]) and the initial sigma."""
        return self.strategy.init(key, self.mean0 if mean is None else mean, self.es_params)

    def ask(self, key: jax.Array, state: Any) -> tuple[jax.Array, Any]:
        """Candidates f32 [population, P] and the new state."""
        return self.strategy.ask(key, state, self.es_params)

    def tell(self, key: jax.Array, candidates: jax.Array, fitness: jax.Array, state: Any):
        """Updates the state with fitness [population] (higher is better). Returns (state, m)."""
        return self.strategy.tell(key, candidates, -fitness, state, self.es_params)

    def mean(self, state: Any) -> jax.Array:
        """Current distribution mean, flat f32 [P]."""
        return state.mean

    def best(self, state: Any) -> tuple[jax.Array, jax.Array]:
        """(best flat solution seen, its fitness, higher is better)."""
        return state.best_solution, -state.best_fitness

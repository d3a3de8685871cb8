"""PlaNet's planning transition over the learned model, in the planners' protocol.

Hafner et al. 2019, Sec. 3: "sampling a state trajectory starting at the current state belief,
and summing the mean rewards predicted along the sequence". The released code tiles one sample
of the current belief over all candidates, samples the prior at every imagined step, and sums
the reward head's means. ``sample=False`` instead follows the prior means (deterministic).
"""

from __future__ import annotations

from collections.abc import Callable

import jax

from jaxplanet.planet import rssm
from jaxplanet.planet.model import ModelConfig, reward

__all__ = [
    "latent_step",
    "plan_start",
]


def latent_step(
    params: dict, cfg: ModelConfig, sample: bool = True
) -> Callable[[rssm.State, jax.Array, jax.Array], tuple[rssm.State, jax.Array]]:
    """Transition for planners: ``step(state: State[...], action [..., A], key)``.

    Returns ``(next_state, reward [...])``: the next state samples the prior with ``key`` when
    ``sample`` (else takes its mean and ignores ``key``); the reward is the reward head's mean on
    the next state's features. Build it inside ``jit`` from traced ``params``.
    """

    def step(state: rssm.State, action: jax.Array, key: jax.Array) -> tuple[rssm.State, jax.Array]:
        next_state = rssm.img_step(params, cfg, state, action, key if sample else None)
        return next_state, reward(params, cfg, rssm.features(next_state))

    return step


def plan_start(belief: rssm.State, key: jax.Array, sample: bool = True) -> rssm.State:
    """The state a plan starts from: one sample of the belief's stochastic state (tiled over the
    candidates by the planner), or its mean when ``sample`` is False. State[...] -> State[...]."""
    if not sample:
        return belief._replace(stoch=belief.mean)
    noise = jax.random.normal(key, belief.mean.shape, belief.mean.dtype)
    return belief._replace(stoch=belief.mean + belief.std * noise)

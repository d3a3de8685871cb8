"""jaxplanet: model-based RL (PlaNet, World Models, SOLAR) as pure JAX functions.

Every piece is a pure function over pytrees that composes with your own JAX code. The
sub-packages are loaded on first attribute access, so ``import jaxplanet`` stays fast (it does
not import JAX); ``jaxplanet.planet`` or ``from jaxplanet import planners`` loads what it needs.

Systems, each a package with its model files, config, training loop and evaluation:
  * `planet`: PlaNet (`planet.rssm`, the world model, its ELBO and train step, `planet.agent`);
  * `worldmodels`: World Models (`vae`, `mdn_rnn`, `controllers`, `dream`, `worldmodels.agent`);
  * `solar`: SOLAR (`mniw`, `lgssm`, the structured VAE in `solar.model`, `solar.agent`).

Planners (they only see ``step(state, action, key) -> (next_state, reward)`` or an LQ model):
  * `planners`: `planners.cem` (CEM, random shooting), `planners.lqr` (LQR, LQR-FLM).

Shared:
  * `envs`: pure-JAX tasks, dm_control from pixels, the gymnasium pixel adapter, batched
    environments (`envs.vector`) and the optional dependencies (`envs.optional`);
  * `nn`: conv encoders/decoders and MLP heads (`nn.networks`, `nn.convs`);
  * `core`: run machinery: `replay`, `episodes`, `checkpoint`, `resume`, `config`, `logging`,
    `console`, `plot`, `video`, `timing`, `compile`, `parallel`;
  * `cli`: the console scripts (``jaxplanet-planet`` etc.).

Example:
    import jax, jax.numpy as jnp
    from jaxplanet.planners import cem

    def step(state, action, key):          # state [2], action [2]
        next_state = state + 0.1 * action
        return next_state, -jnp.sum(next_state**2)

    plan = jax.jit(lambda s, k: cem.plan(step, s, k, horizon=10, action_dim=2))
    actions = plan(jnp.ones(2), jax.random.key(0))   # [10, 2]
"""

from __future__ import annotations

from jaxplanet import _lazy

__version__ = "0.1.0"

__all__ = [
    "cli",
    "core",
    "envs",
    "nn",
    "planet",
    "planners",
    "solar",
    "worldmodels",
]


__getattr__, __dir__ = _lazy.submodules(__name__, __all__)

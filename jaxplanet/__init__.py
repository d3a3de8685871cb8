"""jaxplanet: model-based RL (PlaNet, World Models, SOLAR) as pure JAX functions.

Every piece is a pure function over pytrees that composes with your own JAX code. The
sub-modules are loaded on first attribute access, so ``import jaxplanet`` stays fast (it does
not import JAX); ``jaxplanet.rssm`` or ``from jaxplanet import planners`` loads what it needs.

Models:
  * `rssm`: PlaNet's recurrent state-space model (and its SSM / RNN ablations);
  * `planet`: the PlaNet world model, its ELBO, train step and planning transition;
  * `vae`, `mdn_rnn`, `controllers`, `dream`: World Models' V, M, C and the pure-JAX dream;
  * `mniw`, `lgssm`, `solar`: SOLAR's MNIW prior, linear-Gaussian SSM and structured VAE.

Planners (they only see ``step(state, action, key) -> (next_state, reward)`` or an LQ model):
  * `planners`: `planners.cem` (CEM, random shooting), `planners.lqr` (LQR, LQR-FLM).

Infrastructure: `networks`, `convs` (conv layers), `replay` (functional uint8 replay),
`envs` (pure-JAX tasks, dm_control, gymnasium), `checkpoint` (orbax), `config` (frozen
dataclass configs), `logging` (jsonl, TensorBoard, videos), `plot` (learning curves),
`resume`, `console` (banner, progress, Ctrl-C), `video`, `parallel` (meshes, sharded training
and planning, multi-host), and `agents` (the training loops).

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
    "agents",
    "checkpoint",
    "config",
    "console",
    "controllers",
    "convs",
    "dream",
    "envs",
    "lgssm",
    "logging",
    "mdn_rnn",
    "mniw",
    "networks",
    "parallel",
    "planet",
    "planners",
    "plot",
    "replay",
    "resume",
    "rssm",
    "solar",
    "vae",
    "video",
]


__getattr__, __dir__ = _lazy.submodules(__name__, __all__)

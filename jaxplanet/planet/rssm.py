"""Recurrent state-space model (RSSM) of PlaNet and the paper's SSM / RNN ablations.

Hafner et al., "Learning Latent Dynamics for Planning from Pixels", ICML 2019, Sec. 3 / Fig. 2.
The state is ``State(deter, stoch, mean, std)``: a deterministic GRU state h [..., D] and a
diagonal-Gaussian stochastic state s [..., S] (its sample, mean and std). One transition
(``img_step``) is shared by filtering (``observe``) and open-loop prediction (``imagine``), as in
dreamerv3; both scan it over time with ``jax.lax.scan``.

* ``img_step`` (prior):   x = relu(W [s, a]);  h' = GRU(h, x);  p(s' | h') = N(mu, sigma) from
  relu(W h'); sigma = softplus(raw) + min_std.
* ``obs_step`` (posterior): prior first, then q(s' | h', e) = N(mu, sigma) from relu(W [h', e]).

Variants (``cfg.variant``):

* ``"rssm"`` (default): as above.
* ``"ssm"``: purely stochastic: no deterministic path, ``deter`` is a zero-size array [..., 0]
  so ``State`` keeps one shape. Transition p(s' | s, a) from relu(W [s, a]); posterior from
  relu(W [prior mean, prior std, e]) as in PlaNet's released ``ssm.py``.
* ``"rnn"``: purely deterministic: the GRU path of the RSSM, but the "stochastic" part is a
  deterministic function (prior s = mu(h), posterior s = mu(h, e), ``std`` is reported as 0 and
  sampling returns the mean). The posterior s is fed to the next GRU step, so observations
  enter the recurrence while filtering. The KL between two point masses is undefined; the
  divergence term of this variant (:func:`kl`) is its fixed-unit-variance limit
  0.5 * ||mu_q - mu_p||^2 (the KL between N(mu_q, I) and N(mu_p, I)). Dropping it entirely
  would leave the prior mu(h) untrained, so planning (which only sees the prior) would use an
  untrained transition.

The GRU is fused: one Dense on concat([x, h]) produces the reset, candidate and update
pre-activations (dreamer's cell): r = sigmoid(.), c = tanh(r * c_pre), u = sigmoid(u_pre + b),
h' = u * c + (1 - u) * h with b = ``gru_update_bias`` (-1: mostly keep the state at
initialisation, like the +1 update-gate bias of TF's GRUCell used by PlaNet). The posterior's
first layer is split as W_h h' + W_e e so that ``observe`` projects all embeddings [B, T, E] in
one matmul outside the scan.

Parameters live inside the world model's variables under ``params["params"]["rssm"]``; every
function here takes ``(params, cfg, ...)`` where ``params`` is either those world-model
variables or the cell's own variables (see :func:`init`). ``cfg`` is any object with fields
``deter, stoch, hidden, min_std, variant, gru_update_bias, dtype`` (e.g. ``planet.ModelConfig``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxplanet.nn.networks import diag_normal

__all__ = [
    "RSSMCell",
    "State",
    "VARIANTS",
    "cell_variables",
    "deter_size",
    "entropy",
    "feature_size",
    "features",
    "gru_gates",
    "imagine",
    "img_step",
    "init",
    "initial_state",
    "kl",
    "make_cell",
    "obs_step",
    "observe",
]

VARIANTS = ("rssm", "ssm", "rnn")
f32 = jnp.float32


class State(NamedTuple):
    """Latent state; leaves share leading batch dims [...]."""

    deter: jax.Array  # [..., D] deterministic GRU state (D = 0 for "ssm")
    stoch: jax.Array  # [..., S] sample of the stochastic state (mean when not sampling)
    mean: jax.Array  # [..., S]
    std: jax.Array  # [..., S] (0 for "rnn")


def gru_gates(parts: jax.Array, h: jax.Array, update_bias: float) -> jax.Array:
    """The fused GRU's new state from its pre-activations ``parts`` [..., 3D] and ``h`` [..., D].

    ``parts`` = Dense(concat([x, h])) split as (reset, candidate, update); see the module
    docstring. Shared by the cell and ``planet.fused_latent_step``.
    """
    reset, cand, update = jnp.split(parts, 3, axis=-1)
    cand = jnp.tanh(jax.nn.sigmoid(reset) * cand)
    update = jax.nn.sigmoid(update + update_bias)
    return update * cand + (1.0 - update) * h


class RSSMCell(nn.Module):
    """One RSSM step (prior and posterior) as a Linen module; see the module docstring."""

    deter: int = 200
    stoch: int = 30
    hidden: int = 200
    min_std: float = 0.1
    variant: str = "rssm"
    gru_update_bias: float = -1.0
    dtype: Any = f32

    def setup(self) -> None:
        if self.variant not in VARIANTS:
            raise ValueError(f"unknown RSSM variant {self.variant!r}; expected one of {VARIANTS}")
        out = self.stoch if self.variant == "rnn" else 2 * self.stoch
        self.img_in = nn.Dense(self.hidden, dtype=self.dtype)
        if self.variant != "ssm":
            self.gru = nn.Dense(3 * self.deter, dtype=self.dtype)
            self.img_hidden = nn.Dense(self.hidden, dtype=self.dtype)
        self.img_out = nn.Dense(out, dtype=self.dtype)
        self.obs_embed = nn.Dense(self.hidden, dtype=self.dtype)
        self.obs_state = nn.Dense(self.hidden, use_bias=False, dtype=self.dtype)
        self.obs_out = nn.Dense(out, dtype=self.dtype)

    def _dense(self, layer: nn.Module, x: jax.Array) -> jax.Array:
        return layer(x.astype(self.dtype)).astype(f32)

    def _gaussian(self, layer: nn.Module, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        if self.variant == "rnn":
            mean = self._dense(layer, x)
            return mean, jnp.zeros_like(mean)
        mean, raw = jnp.split(self._dense(layer, x), 2, axis=-1)
        return mean, jax.nn.softplus(raw) + self.min_std

    def _sample(self, mean: jax.Array, std: jax.Array, key: jax.Array | None) -> jax.Array:
        if key is None or self.variant == "rnn":
            return mean
        return mean + std * jax.random.normal(key, mean.shape, mean.dtype)

    def _gru(self, x: jax.Array, h: jax.Array) -> jax.Array:
        parts = self._dense(self.gru, jnp.concatenate([x, h], -1))
        return gru_gates(parts, h, self.gru_update_bias)

    def img_step(self, state: State, action: jax.Array, key: jax.Array | None = None) -> State:
        """Prior p(s' | h', ...) after ``action``; [..., A] -> State[...]."""
        x = nn.relu(self._dense(self.img_in, jnp.concatenate([state.stoch, action], -1)))
        if self.variant == "ssm":
            deter = state.deter
        else:
            deter = self._gru(x, state.deter)
            x = nn.relu(self._dense(self.img_hidden, deter))
        mean, std = self._gaussian(self.img_out, x)
        return State(deter, self._sample(mean, std, key), mean, std)

    def embed_proj(self, embed: jax.Array) -> jax.Array:
        """Embedding part of the posterior's first layer: [..., E] -> [..., hidden]."""
        return self._dense(self.obs_embed, embed)

    def obs_step(
        self, state: State, action: jax.Array, proj: jax.Array, key: jax.Array | None = None
    ) -> tuple[State, State]:
        """(posterior, prior) given the projected embedding ``proj`` [..., hidden].

        The prior's ``stoch`` is its mean (it is never fed forward while filtering).
        """
        prior = self.img_step(state, action)
        context = (
            jnp.concatenate([prior.mean, prior.std], -1) if self.variant == "ssm" else prior.deter
        )
        x = nn.relu(proj + self._dense(self.obs_state, context))
        mean, std = self._gaussian(self.obs_out, x)
        return State(prior.deter, self._sample(mean, std, key), mean, std), prior

    def __call__(self, state: State, action: jax.Array, embed: jax.Array) -> tuple[State, State]:
        """One posterior step from a raw embedding (touches every parameter; used by init)."""
        return self.obs_step(state, action, self.embed_proj(embed))


def make_cell(cfg: Any) -> RSSMCell:
    """The :class:`RSSMCell` described by ``cfg``."""
    return RSSMCell(
        deter=cfg.deter,
        stoch=cfg.stoch,
        hidden=cfg.hidden,
        min_std=cfg.min_std,
        variant=cfg.variant,
        gru_update_bias=cfg.gru_update_bias,
        dtype=jnp.dtype(cfg.dtype),
    )


def cell_variables(params: dict) -> dict:
    """The RSSM cell's variables, from world-model variables or from the cell's own."""
    inner = params.get("params", {})
    if "rssm" in inner:
        return {"params": inner["rssm"]}
    return params


def deter_size(cfg: Any) -> int:
    """Size of ``State.deter`` (0 for the "ssm" variant)."""
    return 0 if cfg.variant == "ssm" else cfg.deter


def feature_size(cfg: Any) -> int:
    """Size of :func:`features` (what the decoder and reward head see)."""
    return deter_size(cfg) + cfg.stoch


def features(state: State) -> jax.Array:
    """Decoder / reward-head input concat([h, s]): [..., D + S]."""
    return jnp.concatenate([state.deter, state.stoch], -1)


def initial_state(cfg: Any, batch_shape: tuple[int, ...] = ()) -> State:
    """All-zero state with leading dims ``batch_shape``."""
    zeros = jnp.zeros(tuple(batch_shape) + (cfg.stoch,), f32)
    return State(jnp.zeros(tuple(batch_shape) + (deter_size(cfg),), f32), zeros, zeros, zeros)


def init(cfg: Any, key: jax.Array, embed_dim: int, action_dim: int) -> dict:
    """Standalone cell variables (the world model creates its own under "rssm")."""
    state = initial_state(cfg, (1,))
    action, embed = jnp.zeros((1, action_dim), f32), jnp.zeros((1, embed_dim), f32)
    return make_cell(cfg).init(key, state, action, embed)


def img_step(
    params: dict, cfg: Any, state: State, action: jax.Array, key: jax.Array | None = None
) -> State:
    """Prior step: State[...], action [..., A] -> State[...] (sample with key, else mean)."""
    cell = make_cell(cfg)
    return cell.apply(cell_variables(params), state, action, key, method=RSSMCell.img_step)


def _reset(
    cfg: Any, state: State, action: jax.Array, is_first: jax.Array
) -> tuple[State, jax.Array]:
    """Zero the state and the previous action where ``is_first`` [...] is True."""
    mask = is_first[..., None]
    init_state = initial_state(cfg, is_first.shape)
    state = jax.tree.map(lambda z, s: jnp.where(mask, z, s), init_state, state)
    return state, jnp.where(mask, 0.0, action)


def obs_step(
    params: dict,
    cfg: Any,
    state: State,
    prev_action: jax.Array,
    embed: jax.Array,
    is_first: jax.Array,
    key: jax.Array | None = None,
) -> tuple[State, State]:
    """One filtering step.

    Args:
      params: world-model (or cell) variables.
      cfg: model config.
      state: previous posterior State[...].
      prev_action: [..., A], the action that led to this observation.
      embed: [..., E] encoder output for this observation.
      is_first: bool [...]; resets state and action to zero where True.
      key: sample the posterior when given, else use its mean.

    Returns:
      (posterior, prior), each State[...].
    """
    state, prev_action = _reset(cfg, state, prev_action, is_first)
    cell, variables = make_cell(cfg), cell_variables(params)
    proj = cell.apply(variables, embed, method=RSSMCell.embed_proj)
    return cell.apply(variables, state, prev_action, proj, key, method=RSSMCell.obs_step)


def _time_major(x: jax.Array, batch_ndim: int) -> jax.Array:
    return jnp.moveaxis(x, batch_ndim, 0)


def _batch_major(tree: Any, batch_ndim: int) -> Any:
    return jax.tree.map(lambda x: jnp.moveaxis(x, 0, batch_ndim), tree)


def observe(
    params: dict,
    cfg: Any,
    embed: jax.Array,
    action: jax.Array,
    is_first: jax.Array,
    key: jax.Array | None = None,
    state0: State | None = None,
) -> tuple[State, State]:
    """Filter a sequence: posteriors and priors for every step (one ``lax.scan``).

    Args:
      params: world-model (or cell) variables.
      cfg: model config.
      embed: [B, T, E] encoder outputs (any number of leading batch dims).
      action: [B, T, A]; action[:, t] led to observation t (zeros where is_first).
      is_first: bool [B, T]; state and previous action reset to zero where True.
      key: sample posteriors when given, else use means.
      state0: State[B] before step 0 (zeros when None).

    Returns:
      (posterior, prior), each State[B, T].
    """
    batch_shape, steps = is_first.shape[:-1], is_first.shape[-1]
    nb = len(batch_shape)
    cell, variables = make_cell(cfg), cell_variables(params)
    proj = cell.apply(variables, embed, method=RSSMCell.embed_proj)  # one big matmul
    if state0 is None:
        state0 = initial_state(cfg, batch_shape)
    keys = None if key is None else jax.random.split(key, steps)
    xs = (_time_major(proj, nb), _time_major(action, nb), _time_major(is_first, nb), keys)

    def body(state: State, inputs: tuple) -> tuple[State, tuple[State, State]]:
        proj_t, action_t, first_t, key_t = inputs
        state, action_t = _reset(cfg, state, action_t, first_t)
        post, prior = cell.apply(
            variables, state, action_t, proj_t, key_t, method=RSSMCell.obs_step
        )
        return post, (post, prior)

    _, (post, prior) = jax.lax.scan(body, state0, xs)
    return _batch_major(post, nb), _batch_major(prior, nb)


def imagine(
    params: dict, cfg: Any, state0: State, actions: jax.Array, key: jax.Array | None = None
) -> State:
    """Open-loop prior rollout (one ``lax.scan`` of :func:`img_step`).

    Args:
      params: world-model (or cell) variables.
      cfg: model config.
      state0: State[B] to start from (any batch dims, also none).
      actions: [B, H, A]; actions[:, k] is applied to reach step k.
      key: sample the prior when given (step k uses ``jax.random.split(key, H)[k]``), else use
        its mean (deterministic).

    Returns:
      State[B, H]: the states after each action.
    """
    nb = actions.ndim - 2
    cell, variables = make_cell(cfg), cell_variables(params)
    keys = None if key is None else jax.random.split(key, actions.shape[-2])

    def body(state: State, inputs: tuple) -> tuple[State, State]:
        action_t, key_t = inputs
        state = cell.apply(variables, state, action_t, key_t, method=RSSMCell.img_step)
        return state, state

    _, states = jax.lax.scan(body, state0, (_time_major(actions, nb), keys))
    return _batch_major(states, nb)


def kl(cfg: Any, lhs: State, rhs: State) -> jax.Array:
    """Divergence KL(lhs || rhs) summed over latent dims: [...].

    Diagonal Gaussians via distrax; for the "rnn" variant 0.5 * ||mu_lhs - mu_rhs||^2 (the KL
    between unit-variance Gaussians at the means; see the module docstring).
    """
    if cfg.variant == "rnn":
        return 0.5 * jnp.sum(jnp.square(lhs.mean - rhs.mean), -1)
    return diag_normal(lhs.mean, lhs.std).kl_divergence(diag_normal(rhs.mean, rhs.std))


def entropy(state: State) -> jax.Array:
    """Entropy of the diagonal Gaussian of ``state`` (not for "rnn", whose std is 0): [...]."""
    return diag_normal(state.mean, state.std).entropy()

"""The dream of World Models (Ha & Schmidhuber 2018, Sec. 4): M as a pure-JAX environment.

`dream_env(params, cfg, temperature)` returns a `JaxEnv` whose state is (LSTM state, z, key, t,
done). A step feeds (z_t, a_t) to M, samples z_{t+1} from its mixtures at temperature tau and,
with a done head, ends the episode by `done_rule`: "threshold" (the authors' `doomrnn.py`: done
where M's done logit > 0, no sampling) or "sample" (done_{t+1} ~ Bernoulli(`done_probability`),
M's done logit with the positive weight of its loss undone); the PRNG key lives in the state, so
`step(state, action)` is deterministic given the state. Observations (for videos) are V's
decoding of z. Rewards: "survival" (take_cover: 1 per step taken alive) or "head" (M's reward
head: point_reach, CarRacing). Once done, the state is frozen and steps accrue nothing.

`generation_returns` scores a whole CMA-ES population in the dream: population x rollouts
episodes, each a `lax.scan` over the episode length, all in one jitted `vmap`;
`open_loop_returns` does the same for fixed action sequences (random or constant policies: the
dream calibration).
`world_model_policy_step` is the agent on real frames (V encodes, C acts, M updates h), and
`jax_env_returns` runs it on a pure-JAX task (point_reach) the same way.

Parameters are the dict {"vae": V params, "mdn": M params, "initial_z": {"mean", "std"}
f32 [N0, Z]}: dream episodes start from z ~ N(mean_i, std_i) of a random recorded first frame i
(the authors' `initial_z`).
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Literal

import flax.struct
import jax
import jax.numpy as jnp

from jaxplanet.envs.base import EnvSpec, JaxEnv
from jaxplanet.worldmodels import controllers, mdn_rnn, vae

__all__ = [
    "DreamConfig",
    "DreamState",
    "controller_action",
    "done_probability",
    "dream_env",
    "exploring_policy_step",
    "generation_returns",
    "jax_env_returns",
    "open_loop_returns",
    "world_model_policy_step",
]


@dataclasses.dataclass(frozen=True)
class DreamConfig:
    """What the dream needs to know beyond the parameters.

    Attributes:
      vae: V's config.
      mdn: M's config.
      action_dim: A.
      max_steps: agent steps per dream episode (then done).
      reward: "survival" (1 per step taken alive) or "head" (M's reward head).
      action_map: "continuous" (identity) or "take_cover" (authors' thresholding).
      done_rule: with a done head, "sample" (Bernoulli of `done_probability`) or "threshold"
        (done where the done logit > 0, as the authors' Doom dream).
      controller_input: C reads "zh" ([z, h]), "zch" ([z, c, h], the authors' Doom C) or "z"
        (z alone, the paper's "V model only" CarRacing agent).
      m_action: M reads the action C chose after the action map ("mapped") or before it
        ("raw": C's tanh output clipped to [-1, 1], as the authors' Doom code feeds M).
    """

    vae: vae.VAEConfig = dataclasses.field(default_factory=vae.VAEConfig)
    mdn: mdn_rnn.MDNConfig = dataclasses.field(default_factory=mdn_rnn.MDNConfig)
    action_dim: int = 3
    max_steps: int = 1000
    reward: Literal["survival", "head"] = "head"
    action_map: controllers.ActionMap = "continuous"
    done_rule: Literal["sample", "threshold"] = "sample"
    controller_input: Literal["z", "zh", "zch"] = "zh"
    m_action: Literal["mapped", "raw"] = "mapped"


@flax.struct.dataclass
class DreamState:
    """One dream episode (add leading axes for batches).

    Attributes:
      carry: LSTM state (c, h), each f32 [hidden].
      z: f32 [Z] current latent.
      key: PRNG key of the next step's samples.
      t: int32 [] steps taken.
      done: bool [] episode over.
    """

    carry: tuple[jax.Array, jax.Array]
    z: jax.Array
    key: jax.Array
    t: jax.Array
    done: jax.Array


def initial_state(params: Any, cfg: DreamConfig, key: jax.Array) -> DreamState:
    """A dream episode's start: z from a random recorded first frame's posterior."""
    k_pick, k_z, k_state = jax.random.split(key, 3)
    init_z = params["initial_z"]
    i = jax.random.randint(k_pick, (), 0, init_z["mean"].shape[0])
    z = init_z["mean"][i] + init_z["std"][i] * jax.random.normal(k_z, (cfg.vae.z_dim,))
    return DreamState(
        carry=mdn_rnn.initial_state(cfg.mdn),
        z=z.astype(jnp.float32),
        key=k_state,
        t=jnp.zeros((), jnp.int32),
        done=jnp.zeros((), bool),
    )


def done_probability(done_logit: jax.Array, mdn_cfg: mdn_rnn.MDNConfig) -> jax.Array:
    """P(done) f32 [...] from M's done logit [...], undoing the positive weight of its loss.

    M's done head is trained with positives weighted by w = `done_pos_weight`, which multiplies
    the odds it predicts by w; the dream samples with the odds divided by w again,
    sigmoid(logit - log w), the calibrated probability (with w = 10 the raw sigmoid made the
    quick Doom dream ~3x too deadly away from real deaths).
    """
    return jax.nn.sigmoid(done_logit - jnp.log(jnp.float32(mdn_cfg.done_pos_weight)))


def controller_action(ctrl: Any, cfg: DreamConfig, z: jax.Array, carry: Any) -> jax.Array:
    """C's output f32 [..., A] in [-1, 1] (before the action map) on z and M's state (c, h)."""
    if cfg.controller_input == "z":
        return controllers.act(ctrl, z, None)
    c = carry[0] if cfg.controller_input == "zch" else None
    return controllers.act(ctrl, z, carry[1], c)


def _m_action(cfg: DreamConfig, action: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mapped action for the task, the action M reads) from C's output."""
    raw = jnp.clip(action, -1.0, 1.0)
    mapped = controllers.map_action(cfg.action_map, raw)
    return mapped, raw if cfg.m_action == "raw" else mapped


def transition(
    params: Any,
    cfg: DreamConfig,
    temperature: float | jax.Array,
    state: DreamState,
    action: jax.Array,
    key: jax.Array | None = None,
) -> tuple[DreamState, jax.Array]:
    """One dream step without rendering: (state, action f32 [A]) -> (state, reward f32 []).

    The samples use `key` when given, else the key stored in `state` (which always advances).
    """
    _, m_in = _m_action(cfg, action)
    carry, out = mdn_rnn.step(params["mdn"], cfg.mdn, state.carry, state.z, m_in)
    next_key, step_key = jax.random.split(state.key)
    k_z, k_done = jax.random.split(step_key if key is None else key)
    z = mdn_rnn.sample(k_z, out.logits, out.means, out.log_stds, temperature)
    t = state.t + 1
    done = t >= cfg.max_steps
    if cfg.mdn.done_head and cfg.done_rule == "threshold":
        done = done | (out.done_logit > 0.0)
    elif cfg.mdn.done_head:
        done = done | jax.random.bernoulli(k_done, done_probability(out.done_logit, cfg.mdn))
    reward = jnp.ones((), jnp.float32) if cfg.reward == "survival" else out.reward
    new = DreamState(carry=carry, z=z, key=next_key, t=t, done=done)
    frozen = state.replace(key=next_key)
    new = jax.tree.map(lambda a, b: jnp.where(state.done, a, b), frozen, new)
    return new, jnp.where(state.done, 0.0, reward).astype(jnp.float32)


def dream_env(params: Any, cfg: DreamConfig, temperature: float = 1.0) -> JaxEnv:
    """M (and V for observations) as a `JaxEnv`.

    Args:
      params: {"vae", "mdn", "initial_z"} (see the module docstring).
      cfg: `DreamConfig`.
      temperature: tau of M's samples (the paper trains take_cover at 1.15).

    Returns:
      `JaxEnv` with reset(key) -> (state, obs uint8 [64, 64, 3]), step(state, action) ->
      (state, obs, reward, done), transition(state, action, key=None) -> (state, reward),
      render(state) -> uint8 [64, 64, 3]. `spec.episode_length` is `max_steps`.
    """

    def render(state: DreamState) -> jax.Array:
        return vae.to_uint8(vae.decode(params["vae"], cfg.vae, state.z))

    def reset(key: jax.Array) -> tuple[DreamState, jax.Array]:
        state = initial_state(params, cfg, key)
        return state, render(state)

    def trans(state: DreamState, action: jax.Array, key: jax.Array | None = None):
        return transition(params, cfg, temperature, state, action, key)

    def step(state: DreamState, action: jax.Array):
        state, reward = trans(state, action)
        return state, render(state), reward, state.done

    spec = EnvSpec("dream", (64, 64, 3), cfg.action_dim, 1, cfg.max_steps)
    return JaxEnv(spec=spec, reset=reset, step=step, transition=trans, render=render)


def _dream_return(params, cfg, temperature, ctrl, key, steps):
    state = initial_state(params, cfg, key)

    def body(s, _):
        a = controller_action(ctrl, cfg, s.z, s.carry)
        s, r = transition(params, cfg, temperature, s, a)
        return s, r

    _, rewards = jax.lax.scan(body, state, None, length=steps)
    return jnp.sum(rewards)


@functools.partial(jax.jit, static_argnames=("cfg", "unflatten", "rollouts", "steps"))
def generation_returns(
    params: Any,
    cfg: DreamConfig,
    temperature: float | jax.Array,
    candidates: jax.Array,
    key: jax.Array,
    *,
    unflatten: Any,
    rollouts: int,
    steps: int | None = None,
) -> jax.Array:
    """Returns of every candidate controller in every dream rollout (one jitted vmap of scans).

    Args:
      params: dream parameters {"vae", "mdn", "initial_z"}.
      cfg: `DreamConfig`.
      temperature: tau.
      candidates: flat controller parameters f32 [P, N].
      key: PRNG key; rollout r of candidate p uses `split(key, P * R)[p * R + r]` (with
        threefry keys the returns equal stepping `dream_env` one episode at a time; rbg keys
        are deterministic too but their streams change under `vmap`).
      unflatten: flat [N] -> controller pytree (hashable: e.g. from `controllers.flatten`).
      rollouts: R episodes per candidate.
      steps: scan length (default `cfg.max_steps`).

    Returns:
      f32 [P, R].
    """
    steps = cfg.max_steps if steps is None else steps
    n = candidates.shape[0]
    keys = jax.random.split(key, n * rollouts)
    keys = keys.reshape((n, rollouts) + keys.shape[1:])

    def one(flat, k):
        return _dream_return(params, cfg, temperature, unflatten(flat), k, steps)

    return jax.vmap(lambda f, ks: jax.vmap(lambda k: one(f, k))(ks))(candidates, keys)


@functools.partial(jax.jit, static_argnames=("cfg",))
def open_loop_returns(
    params: Any,
    cfg: DreamConfig,
    temperature: float | jax.Array,
    actions: jax.Array,
    keys: jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """Dream episodes that play fixed action sequences (one jitted vmap of scans).

    Args:
      params: dream parameters {"vae", "mdn", "initial_z"}.
      cfg: `DreamConfig`.
      temperature: tau.
      actions: f32 [N, T, A] in [-1, 1], before the action map (as C's output); T <= the
        episode's `cfg.max_steps`, after which it is done.
      keys: [N] PRNG keys, episode n's start and samples (as `dream_env`'s reset(keys[n]) and
        steps).

    Returns:
      (returns f32 [N], steps taken until done or the end int32 [N]; with the "survival"
      reward the two are equal).
    """

    def one(acts, key):
        def body(s, a):
            return transition(params, cfg, temperature, s, a)

        state, rewards = jax.lax.scan(body, initial_state(params, cfg, key), acts)
        return jnp.sum(rewards), state.t

    return jax.vmap(one)(actions, keys)


def world_model_policy_step(
    params: Any,
    cfg: DreamConfig,
    ctrl: Any,
    carry: Any,
    obs: jax.Array,
    key: jax.Array | None = None,
) -> tuple[jax.Array, Any, jax.Array]:
    """The agent in the real world: V encodes, C acts on [z, h] (or [z, c, h]), M reads (z, a).

    Args:
      params: {"vae", "mdn", ...}; ctrl: C's parameters; carry: M's LSTM state (c, h).
      obs: uint8 [..., 64, 64, 3].
      key: with a key z is sampled from q(z | x) (the authors' choice), else its mean.

    Returns:
      (action f32 [..., A] after the action map, new carry, z f32 [..., Z]).
    """
    action, _, carry, z = _agent_step(params, cfg, ctrl, carry, obs, key)
    return action, carry, z


def exploring_policy_step(
    params: Any,
    cfg: DreamConfig,
    ctrl: Any,
    carry: Any,
    obs: jax.Array,
    key: jax.Array,
    noise: float | jax.Array,
) -> tuple[jax.Array, Any]:
    """The agent collecting M's data (iterative training): C's output plus N(0, noise^2).

    Returns:
      (the action M reads f32 [..., A]: clipped to [-1, 1], after the action map unless
      ``cfg.m_action == "raw"`` (a host env applies its map itself), M's new carry).
    """
    k_z, k_noise = jax.random.split(key)
    _, m_in, carry, _ = _agent_step(params, cfg, ctrl, carry, obs, k_z, (k_noise, noise))
    return m_in, carry


def _agent_step(params, cfg, ctrl, carry, obs, key, noise=None):
    """V encodes (z sampled with a key, else its mean), C acts (plus noise: (key, std)), M reads
    (z, a). Returns (mapped action, the action M reads, new carry, z)."""
    mean, std = vae.encode(params["vae"], cfg.vae, obs)
    z = mean if key is None else mean + std * jax.random.normal(key, mean.shape)
    action = controller_action(ctrl, cfg, z, carry)
    if noise is not None:
        action = action + noise[1] * jax.random.normal(noise[0], action.shape)
    mapped, m_in = _m_action(cfg, action)
    carry, _ = mdn_rnn.step(params["mdn"], cfg.mdn, carry, z, m_in)
    return mapped, m_in, carry, z


def jax_env_returns(
    env: JaxEnv, params: Any, cfg: DreamConfig, ctrl: Any, key: jax.Array, steps: int
) -> tuple[jax.Array, jax.Array]:
    """One episode of the world-model agent on a pure-JAX task (jit/vmap it).

    Returns:
      (return f32 [], frames uint8 [steps + 1, 64, 64, 3]: the observations seen).
    """
    k_reset, k_run = jax.random.split(key)
    state, obs = env.reset(k_reset)

    def body(c, k):
        s, o, carry, done = c
        a, carry, _ = world_model_policy_step(params, cfg, ctrl, carry, o, k)
        s, o, r, d = env.step(s, a)
        return (s, o, carry, done | d), (jnp.where(done, 0.0, r), o)

    init = (state, obs, mdn_rnn.initial_state(cfg.mdn), jnp.zeros((), bool))
    _, (rewards, frames) = jax.lax.scan(body, init, jax.random.split(k_run, steps))
    return jnp.sum(rewards), jnp.concatenate([obs[None], frames])

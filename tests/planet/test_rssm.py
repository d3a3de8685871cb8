"""Tests for jaxplanet.planet.rssm: shapes, GRU/prior math, KL, observe/imagine consistency,
resets."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet import planet
from jaxplanet.planet import rssm

A, E, B, T = 2, 12, 3, 7


def key(seed: int) -> jax.Array:
    """RBG keys: they compile far faster than threefry on XLA:CPU; the code is key-agnostic."""
    return jax.random.key(seed, impl="rbg")


def _cfg(variant="rssm"):
    return planet.ModelConfig.tiny(variant=variant)


def _params(cfg):
    return rssm.init(cfg, key(0), E, A)


def _inputs(seed=0):
    k1, k2 = jax.random.split(key(seed))
    embed = jax.random.normal(k1, (B, T, E))
    action = jax.random.uniform(k2, (B, T, A), minval=-1, maxval=1)
    is_first = jnp.zeros((B, T), bool).at[:, 0].set(True).at[1, 4].set(True)
    return embed, action, is_first


@pytest.mark.parametrize("variant", rssm.VARIANTS)
def test_shapes_of_every_function(variant):
    cfg = _cfg(variant)
    params = jax.eval_shape(lambda k: _params(cfg), key(0))
    deter = 0 if variant == "ssm" else cfg.deter
    assert rssm.deter_size(cfg) == deter and rssm.feature_size(cfg) == deter + cfg.stoch

    def check(state, batch):
        assert state.deter.shape == batch + (deter,)
        for leaf in (state.stoch, state.mean, state.std):
            assert leaf.shape == batch + (cfg.stoch,) and leaf.dtype == jnp.float32

    check(rssm.initial_state(cfg, (B,)), (B,))
    s0 = rssm.initial_state(cfg, (B,))
    k = key(1)
    shape = lambda fn, *args: jax.eval_shape(lambda p, *a: fn(p, cfg, *a), params, *args)
    check(shape(rssm.img_step, s0, jnp.zeros((B, A)), k), (B,))
    post, prior = shape(rssm.obs_step, s0, jnp.zeros((B, A)), jnp.zeros((B, E)), jnp.ones(B, bool))
    check(post, (B,)), check(prior, (B,))
    embed, action, is_first = _inputs()
    post, prior = shape(rssm.observe, embed, action, is_first, k)
    check(post, (B, T)), check(prior, (B, T))
    check(shape(rssm.imagine, s0, jnp.zeros((B, 5, A)), k), (B, 5))
    assert jax.eval_shape(rssm.features, post).shape == (B, T, deter + cfg.stoch)
    assert jax.eval_shape(lambda p, q: rssm.kl(cfg, p, q), post, prior).shape == (B, T)


@pytest.mark.parametrize("variant", ["rssm", "ssm"])
def test_std_floor_and_rnn_is_deterministic(variant):
    cfg, rnn_cfg = _cfg(variant), _cfg("rnn")
    embed, action, is_first = _inputs()
    post, prior = rssm.observe(_params(cfg), cfg, embed, action, is_first, key(3))
    assert float(post.std.min()) >= cfg.min_std and float(prior.std.min()) >= cfg.min_std
    assert not np.allclose(post.stoch, post.mean)  # sampled
    z = np.asarray((post.stoch - post.mean) / post.std)
    assert abs(z.mean()) < 0.3 and 0.7 < z.std() < 1.3
    params = _params(rnn_cfg)
    post_k, _ = rssm.observe(params, rnn_cfg, embed, action, is_first, key(3))
    post_n, _ = rssm.observe(params, rnn_cfg, embed, action, is_first, None)
    np.testing.assert_array_equal(post_k.stoch, post_n.stoch)
    np.testing.assert_array_equal(post_k.stoch, post_k.mean)
    assert float(jnp.abs(post_k.std).max()) == 0.0


def test_img_step_matches_numpy_reference():
    cfg = _cfg()
    params = _params(cfg)
    p = jax.tree.map(np.asarray, params["params"])
    k1, k2, k3 = jax.random.split(key(5), 3)
    h = np.asarray(jax.random.normal(k1, (B, cfg.deter)))
    s = np.asarray(jax.random.normal(k2, (B, cfg.stoch)))
    a = np.asarray(jax.random.uniform(k3, (B, A)))
    state = rssm.State(jnp.asarray(h), jnp.asarray(s), jnp.asarray(s), jnp.ones_like(s))
    out = rssm.img_step(params, cfg, state, jnp.asarray(a))

    def dense(name, x):
        return x @ p[name]["kernel"] + p[name]["bias"]

    def sigmoid(x):
        return 1 / (1 + np.exp(-x))

    x = np.maximum(dense("img_in", np.concatenate([s, a], -1)), 0)
    reset, cand, update = np.split(dense("gru", np.concatenate([x, h], -1)), 3, -1)
    cand = np.tanh(sigmoid(reset) * cand)
    update = sigmoid(update + cfg.gru_update_bias)
    h_new = update * cand + (1 - update) * h
    y = np.maximum(dense("img_hidden", h_new), 0)
    mean, raw = np.split(dense("img_out", y), 2, -1)
    std = np.log1p(np.exp(raw)) + cfg.min_std
    np.testing.assert_allclose(out.deter, h_new, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.mean, mean, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.std, std, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.stoch, mean, rtol=1e-5, atol=1e-5)  # no key -> mean


def test_kl_matches_closed_form():
    rng = np.random.default_rng(0)
    m1, m2 = rng.normal(size=(4, 6)), rng.normal(size=(4, 6))
    s1, s2 = rng.uniform(0.2, 2.0, (4, 6)), rng.uniform(0.2, 2.0, (4, 6))
    ref = 0.5 * np.sum(s1**2 / s2**2 + (m2 - m1) ** 2 / s2**2 - 1 + 2 * np.log(s2 / s1), -1)
    lhs = rssm.State(jnp.zeros((4, 0)), jnp.asarray(m1), jnp.asarray(m1), jnp.asarray(s1))
    rhs = rssm.State(jnp.zeros((4, 0)), jnp.asarray(m2), jnp.asarray(m2), jnp.asarray(s2))
    np.testing.assert_allclose(rssm.kl(_cfg(), lhs, rhs), ref, rtol=1e-5)
    np.testing.assert_allclose(rssm.kl(_cfg(), lhs, lhs), 0.0, atol=1e-5)
    # "rnn": the unit-variance limit 0.5 * ||m1 - m2||^2.
    ref_rnn = 0.5 * np.sum((m1 - m2) ** 2, -1)
    np.testing.assert_allclose(rssm.kl(_cfg("rnn"), lhs, rhs), ref_rnn, rtol=1e-5)
    # entropy of a diagonal Gaussian: sum(log s) + D/2 * (1 + log 2 pi)
    ent = np.sum(np.log(s1), -1) + 0.5 * 6 * (1 + np.log(2 * np.pi))
    np.testing.assert_allclose(rssm.entropy(lhs), ent, rtol=1e-5)


@pytest.mark.parametrize("variant", rssm.VARIANTS)
def test_observe_priors_equal_img_step_from_previous_posterior(variant):
    cfg = _cfg(variant)
    params = _params(cfg)
    embed, action, is_first = _inputs(1)
    post, prior = rssm.observe(params, cfg, embed, action, is_first, key(2))
    # One imagined step (mean) from every posterior t-1 with action t, all at once.
    prev = jax.tree.map(lambda x: x[:, :-1], post)
    step = rssm.imagine(params, cfg, prev, action[:, 1:, None], None)
    step = jax.tree.map(lambda x: x[:, :, 0], step)
    keep = ~np.asarray(is_first[:, 1:])
    np.testing.assert_allclose(
        np.asarray(step.mean)[keep], np.asarray(prior.mean[:, 1:])[keep], 1e-5, 1e-5
    )
    np.testing.assert_allclose(
        np.asarray(step.std)[keep], np.asarray(prior.std[:, 1:])[keep], 1e-5, 1e-5
    )
    np.testing.assert_allclose(
        np.asarray(step.deter)[keep], np.asarray(prior.deter[:, 1:])[keep], 1e-5, 1e-5
    )
    # The posterior keeps the prior's deterministic state.
    np.testing.assert_array_equal(post.deter, prior.deter)
    # imagine == repeated img_step (with and without sampling keys).
    s0 = jax.tree.map(lambda x: x[:, 2], post)
    acts = action[:, 2:6]
    for k in (None, key(9)):
        states = rssm.imagine(params, cfg, s0, acts, k)
        keys = [None] * 4 if k is None else list(jax.random.split(k, 4))
        s = s0
        for i in range(4):
            s = rssm.img_step(params, cfg, s, acts[:, i], keys[i])
            np.testing.assert_allclose(states.stoch[:, i], s.stoch, rtol=1e-5, atol=1e-5)


def test_is_first_resets_state_and_action():
    cfg = _cfg()
    params = _params(cfg)
    embed, action, is_first = _inputs(2)
    post, prior = rssm.observe(params, cfg, embed, action, is_first, None)
    # Row 1 restarts at t=4: identical to filtering the tail alone from zeros.
    tail_post, tail_prior = rssm.observe(
        params,
        cfg,
        embed[1:2, 4:],
        jnp.zeros_like(action[1:2, 4:]).at[:, 1:].set(action[1:2, 5:]),
        is_first[1:2, 4:],
        None,
    )
    np.testing.assert_allclose(post.mean[1, 4:], tail_post.mean[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(prior.deter[1, 4:], tail_prior.deter[0], rtol=1e-5, atol=1e-6)
    # obs_step ignores a garbage state and previous action where is_first.
    junk = jax.tree.map(lambda x: x + 5.0, rssm.initial_state(cfg, (B,)))
    flags = jnp.array([True, False, True])
    got, _ = rssm.obs_step(params, cfg, junk, jnp.full((B, A), 3.0), embed[:, 0], flags)
    ref, _ = rssm.obs_step(
        params, cfg, rssm.initial_state(cfg, (B,)), jnp.zeros((B, A)), embed[:, 0], flags
    )
    np.testing.assert_allclose(got.mean[flags], ref.mean[flags], rtol=1e-6)
    assert not np.allclose(got.mean[1], ref.mean[1])
    # state0 is used only where is_first is False.
    later, _ = rssm.observe(params, cfg, embed, action, is_first, None, state0=junk)
    np.testing.assert_allclose(later.mean, post.mean, rtol=1e-6)


def test_unbatched_imagine_jit_vmap_and_param_sources():
    cfg = _cfg()
    cell_params = _params(cfg)
    wm_params = {"params": {"rssm": cell_params["params"], "other": {}}}
    s0 = rssm.initial_state(cfg)
    acts = jnp.ones((4, A)) * 0.5
    single = jax.jit(rssm.imagine, static_argnums=1)(wm_params, cfg, s0, acts)
    assert single.deter.shape == (4, cfg.deter)
    batched = jax.vmap(lambda a: rssm.imagine(cell_params, cfg, s0, a))(jnp.stack([acts, -acts]))
    np.testing.assert_allclose(batched.mean[0], single.mean, rtol=1e-6)
    wm = jax.eval_shape(lambda k: planet.init(cfg, k, A), key(0))
    assert jax.tree.structure(wm["params"]["rssm"]) == jax.tree.structure(cell_params["params"])

"""World Models M: mixture log density vs scipy, temperature sampling, shapes, learning."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import special, stats

from jaxplanet.worldmodels import mdn_rnn

CFG = mdn_rnn.MDNConfig(z_dim=4, hidden=16, mixtures=3, done_head=True, reward_head=True)


def _mixture(key, shape=(7,), d=4, k=5):
    k1, k2, k3, k4 = jax.random.split(key, 4)
    logits = 2.0 * jax.random.normal(k1, (*shape, d, k))
    means = 3.0 * jax.random.normal(k2, (*shape, d, k))
    log_stds = 0.7 * jax.random.normal(k3, (*shape, d, k))
    z = 3.0 * jax.random.normal(k4, (*shape, d))
    return logits, means, log_stds, z


def test_log_prob_matches_scipy_reference():
    logits, means, log_stds, z = map(np.asarray, _mixture(jax.random.key(0)))
    got = mdn_rnn.log_prob(logits, means, log_stds, z)
    logw = logits - special.logsumexp(logits, axis=-1, keepdims=True)
    logn = stats.norm.logpdf(z[..., None], means, np.exp(log_stds))
    want = special.logsumexp(logw + logn, axis=-1).sum(-1)
    assert got.shape == (7,) and got.dtype == jnp.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_log_prob_broadcasts_leading_axes():
    logits, means, log_stds, z = _mixture(jax.random.key(1), shape=(2, 3))
    assert mdn_rnn.log_prob(logits, means, log_stds, z).shape == (2, 3)
    one = mdn_rnn.log_prob(logits[0, 0], means[0, 0], log_stds[0, 0], z[0, 0])
    assert one.shape == ()


@pytest.mark.parametrize("scale", [1e4, 1e30, -1e30])
def test_log_prob_finite_at_extreme_inputs(scale):
    logits, means, log_stds, z = _mixture(jax.random.key(2))
    extreme_logits = logits * scale
    extreme_stds = jnp.sign(log_stds) * 1e30  # std -> 0 or inf
    for args in (
        (extreme_logits, means, log_stds, z),
        (logits, means, extreme_stds, z),
        (extreme_logits, means, extreme_stds, z),
    ):
        value = mdn_rnn.log_prob(*args)
        grads = jax.grad(lambda *a: mdn_rnn.log_prob(*a).sum(), argnums=(0, 1, 2))(*args)
        assert bool(jnp.all(jnp.isfinite(value))), value
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in grads)


def test_samples_have_mixture_mean_and_variance_at_tau_one():
    logits = jnp.array([[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]])
    means = jnp.array([[-2.0, 0.5, 3.0], [0.0, 4.0, -1.0]])
    log_stds = jnp.log(jnp.array([[0.5, 1.0, 0.3], [1.0, 0.2, 2.0]]))
    n = 200_000
    keys = jax.random.split(jax.random.key(3), n)
    z = jax.vmap(lambda k: mdn_rnn.sample(k, logits, means, log_stds, 1.0))(keys)
    assert z.shape == (n, 2) and z.dtype == jnp.float32
    w = np.asarray(jax.nn.softmax(logits, -1))
    m, s = np.asarray(means), np.exp(np.asarray(log_stds))
    mean = (w * m).sum(-1)
    var = (w * (s**2 + m**2)).sum(-1) - mean**2
    np.testing.assert_allclose(z.mean(0), mean, atol=4 * np.sqrt(var / n).max() + 1e-3)
    np.testing.assert_allclose(z.var(0), var, rtol=0.03)


def test_lower_temperature_concentrates_samples():
    logits = jnp.array([[0.0, 1.0, -1.0]])
    means = jnp.array([[-2.0, 0.5, 3.0]])
    log_stds = jnp.log(jnp.array([[0.5, 1.0, 0.3]]))
    keys = jax.random.split(jax.random.key(4), 50_000)

    def draw(tau):
        return np.asarray(jax.vmap(lambda k: mdn_rnn.sample(k, logits, means, log_stds, tau))(keys))

    cold, warm, hot = draw(0.1), draw(1.0), draw(2.0)
    assert cold.var() < warm.var() < hot.var()
    # At tau -> 0 samples collapse onto the heaviest component's mean.
    assert abs(np.median(cold) - 0.5) < 0.05
    assert np.mean(np.abs(cold - 0.5) < 1.0) > 0.95


def test_step_and_observe_shapes():
    params = mdn_rnn.init(CFG, jax.random.key(0), action_dim=2)
    carry = mdn_rnn.initial_state(CFG, (5,))
    carry, out = mdn_rnn.step(params, CFG, carry, jnp.zeros((5, 4)), jnp.zeros((5, 2)))
    assert carry[0].shape == carry[1].shape == (5, 16)
    assert out.logits.shape == out.means.shape == out.log_stds.shape == (5, 4, 3)
    assert out.done_logit.shape == out.reward.shape == (5,)
    _, seq, h = mdn_rnn.observe(params, CFG, jnp.zeros((5, 7, 4)), jnp.zeros((5, 7, 2)))
    assert seq.logits.shape == (5, 7, 4, 3) and h.shape == (5, 7, 16)
    z = mdn_rnn.sample(jax.random.key(1), out.logits, out.means, out.log_stds, 1.15)
    assert z.shape == (5, 4) and z.dtype == jnp.float32


def _toy_batch(rng, b=16, t=12):
    """Deterministic dynamics z_{t+1} = 0.9 z_t + 0.5 a_t; done at the last step; reward = z[0]."""
    z = np.zeros((b, t + 1, 4), np.float32)
    z[:, 0] = rng.normal(size=(b, 4))
    a = rng.uniform(-1, 1, (b, t, 2)).astype(np.float32)
    for i in range(t):
        z[:, i + 1] = 0.9 * z[:, i] + 0.5 * np.tile(a[:, i], 2)
    done = np.zeros((b, t), np.float32)
    done[:, -1] = 1.0
    return {
        "z_mean": z,
        "z_std": np.full_like(z, 0.01),
        "action": a,
        "reward": z[:, 1:, 0].copy(),
        "done": done,
        "mask": np.ones((b, t), np.float32),
    }


def test_nll_falls_and_all_terms_named():
    rng = np.random.default_rng(0)
    state = mdn_rnn.init_train_state(CFG, jax.random.key(0), action_dim=2)
    cfg = CFG.__class__(**{**CFG.__dict__, "lr": 1e-2})
    first = last = None
    for i in range(150):
        batch = jax.tree.map(jnp.asarray, _toy_batch(rng))
        state, m = mdn_rnn.train_step(state, batch, jax.random.key(i), cfg)
        first = first or {k: float(v) for k, v in m.items()}
        last = {k: float(v) for k, v in m.items()}
    assert set(last) == {
        "loss", "z_nll", "z_nll_per_dim", "done_bce", "reward_mse", "grad_norm"
    }  # fmt: skip
    assert all(np.isfinite(v) for v in last.values())
    assert last["z_nll"] < first["z_nll"] - 4.0, (first, last)
    assert last["reward_mse"] < 0.3 * first["reward_mse"]
    assert last["done_bce"] < first["done_bce"]


def test_mask_excludes_padding():
    rng = np.random.default_rng(1)
    params = mdn_rnn.init(CFG, jax.random.key(0), action_dim=2)
    batch = _toy_batch(rng, b=2, t=6)
    batch["z_std"][:] = 0.0  # same z whatever the noise shape
    padded = jax.tree.map(np.copy, batch)
    padded["mask"][:, 4:] = 0.0
    padded["z_mean"][:, 5:] = 1e30  # garbage after the end must not matter
    padded["reward"][:, 4:] = np.nan
    short = {k: v[:, :5] if k in ("z_mean", "z_std") else v[:, :4] for k, v in batch.items()}
    _, a = mdn_rnn.loss_fn(params, CFG, padded, jax.random.key(5))
    _, b = mdn_rnn.loss_fn(params, CFG, short, jax.random.key(5))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-4, atol=1e-4)


def test_gradient_clip_by_value_and_by_norm():
    g = {"a": jnp.array([5.0, -0.5, -3.0])}
    value = dataclasses.replace(CFG, grad_clip_mode="value")
    out, _ = mdn_rnn.gradient_clip(value).update(g, None)
    np.testing.assert_allclose(out["a"], [1.0, -0.5, -1.0])  # tf.clip_by_value, as released
    out, _ = mdn_rnn.gradient_clip(CFG).update(g, None)
    np.testing.assert_allclose(out["a"], np.array([5.0, -0.5, -3.0]) / np.sqrt(34.25), rtol=1e-6)


def test_learning_rate_decays_as_the_released_doom_m():
    cfg = dataclasses.replace(CFG, lr_decay=0.99999, min_lr=1e-5)
    for n in (0, 1, 24_400, 10**6):
        want = (1e-3 - 1e-5) * 0.99999**n + 1e-5  # doomrnn/rnn_train.py
        np.testing.assert_allclose(mdn_rnn.learning_rate(cfg, n), want, rtol=1e-4)
    np.testing.assert_allclose(mdn_rnn.learning_rate(CFG, 10**6), 1e-3)  # lr_decay = 1


def test_forget_bias_starts_the_forget_gate_bias_only():
    plain = mdn_rnn.init(CFG, jax.random.key(0), 2)
    tf_like = mdn_rnn.init(dataclasses.replace(CFG, forget_bias=1.0), jax.random.key(0), 2)
    np.testing.assert_array_equal(tf_like["lstm"]["hf"]["bias"], plain["lstm"]["hf"]["bias"] + 1)
    tf_like["lstm"]["hf"]["bias"] = plain["lstm"]["hf"]["bias"]
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), tf_like, plain))


def test_reset_zeroes_the_state_at_an_episode_start():
    params = mdn_rnn.init(CFG, jax.random.key(0), action_dim=2)
    rng = np.random.default_rng(2)
    z, a = rng.normal(size=(3, 9, 4)), rng.uniform(-1, 1, (3, 9, 2))
    reset = np.zeros((3, 9), bool)
    reset[:, 4] = True  # a second episode starts at step 4
    junk = (jnp.full((3, 16), 5.0), jnp.full((3, 16), -5.0))
    _, out, h = mdn_rnn.observe(params, CFG, z, a, junk, reset)
    _, first, _ = mdn_rnn.observe(params, CFG, z[:, :4], a[:, :4], junk)
    _, second, h2 = mdn_rnn.observe(params, CFG, z[:, 4:], a[:, 4:])  # from a zero state
    np.testing.assert_allclose(out.means[:, :4], first.means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out.means[:, 4:], second.means, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(h[:, 4:], h2, rtol=1e-5, atol=1e-6)
    assert not np.allclose(first.means, mdn_rnn.observe(params, CFG, z[:, :4], a[:, :4])[1].means)


def test_stream_step_carries_the_state_as_one_long_sequence():
    # Chunk 2 from the state chunk 1 left scores as the second half of one 12-step window.
    rng = np.random.default_rng(3)
    full = _toy_batch(rng, b=4, t=12)
    full["z_std"][:] = 0.0  # z = mean whatever the noise shape
    first = {k: v[:, :7] if k.startswith("z_") else v[:, :6] for k, v in full.items()}
    second = {k: v[:, 6:] for k, v in full.items()}
    state = mdn_rnn.init_train_state(CFG, jax.random.key(0), action_dim=2)
    carry, _, _ = mdn_rnn.observe(state.params, CFG, first["z_mean"][:, :-1], first["action"])
    zero = mdn_rnn.MDNStreamState(state, mdn_rnn.initial_state(CFG, (4,)))
    after, _ = mdn_rnn.stream_train_step(zero, first, jax.random.key(1), CFG)
    jax.tree.map(
        lambda x, y: np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6), after.carry, carry
    )
    assert int(after.step) == 1 and after.params is after.train.params
    _, got = mdn_rnn.stream_train_step(
        mdn_rnn.MDNStreamState(state, carry), second, jax.random.key(2), CFG
    )
    full["mask"][:, :6] = 0.0
    _, want = mdn_rnn.loss_fn(state.params, CFG, full, jax.random.key(2))
    for k in want:
        np.testing.assert_allclose(got[k], want[k], rtol=1e-4, atol=1e-5)
    _, cold = mdn_rnn.stream_train_step(zero, second, jax.random.key(2), CFG)
    assert abs(float(cold["z_nll"]) - float(want["z_nll"])) > 1e-3  # the carry matters


def test_z_mask_drops_the_z_target_but_keeps_the_done_label():
    rng = np.random.default_rng(4)
    params = mdn_rnn.init(CFG, jax.random.key(0), action_dim=2)
    batch = _toy_batch(rng, b=3, t=6)  # done at the last step
    batch["z_std"][:] = 0.0
    masked = jax.tree.map(np.copy, batch)
    masked["z_mask"] = np.ones((3, 6), np.float32)
    masked["z_mask"][:, -1] = 0.0
    masked["z_mean"][:, -1] = 1e30  # a blank terminal frame's z: must not matter
    dropped = jax.tree.map(np.copy, batch)
    dropped["mask"][:, -1] = 0.0  # the step left out entirely
    _, got = mdn_rnn.loss_fn(params, CFG, masked, jax.random.key(5))
    _, without = mdn_rnn.loss_fn(params, CFG, dropped, jax.random.key(5))
    _, full = mdn_rnn.loss_fn(params, CFG, batch, jax.random.key(5))
    np.testing.assert_allclose(got["z_nll"], without["z_nll"], rtol=1e-5)
    np.testing.assert_allclose(got["done_bce"], full["done_bce"], rtol=1e-5)
    np.testing.assert_allclose(got["reward_mse"], full["reward_mse"], rtol=1e-5)
    assert abs(float(got["done_bce"]) - float(without["done_bce"])) > 1e-3

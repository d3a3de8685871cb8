"""World Models V: shapes, the loss terms against closed forms, and a fast learning check."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.worldmodels import vae


def KEY(seed):  # noqa: N802 — rbg keys: the random init compiles ~5x faster on CPU
    return jax.random.key(seed, impl="rbg")


CFG = vae.VAEConfig(z_dim=8, depth=4, lr=1e-3)


@pytest.fixture(scope="module")
def params():
    return vae.init(CFG, KEY(0))


def test_paper_architecture_parameter_count():
    # Paper sizes: convs 32/64/128/256 (k4), dense heads 1024 -> 2 x 32, dense 32 -> 1024,
    # deconvs 128 (k5), 64 (k5), 32 (k6), 3 (k6).
    p = jax.eval_shape(lambda k: vae.init(vae.VAEConfig(), k), KEY(0))
    count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(p))
    convs = [(3, 32), (32, 64), (64, 128), (128, 256)]
    enc = sum(16 * i * o + o for i, o in convs) + 2 * (1024 * 32 + 32)
    deconvs = [(1024, 128, 5), (128, 64, 5), (64, 32, 6), (32, 3, 6)]
    dec = 32 * 1024 + 1024 + sum(k * k * i * o + o for i, o, k in deconvs)
    assert count == enc + dec


def test_shapes_and_dtypes(params):
    obs = jnp.zeros((2, 3, 64, 64, 3), jnp.uint8)
    mean, std = vae.encode(params, CFG, obs)
    assert mean.shape == std.shape == (2, 3, 8) and mean.dtype == jnp.float32
    assert bool(jnp.all(std > 0))
    x = vae.decode(params, CFG, mean)
    assert x.shape == (2, 3, 64, 64, 3) and x.dtype == jnp.float32
    assert bool(jnp.all((x > 0) & (x < 1)))
    rec = vae.reconstruct(params, CFG, obs[0])
    assert rec.shape == (3, 64, 64, 3) and rec.dtype == jnp.uint8


def test_loss_terms_match_closed_forms(params):
    obs = jax.random.randint(KEY(1), (4, 64, 64, 3), 0, 256).astype(jnp.uint8)
    key = KEY(2)
    loss, m = vae.loss_fn(params, CFG, obs, key)
    recon, mean, std = vae.VAE(CFG).apply({"params": params}, vae.to_float(obs), key)
    x = np.asarray(obs, np.float64) / 255.0
    rec = ((x - np.asarray(recon)) ** 2).sum(axis=(1, 2, 3))
    mu, sd = np.asarray(mean, np.float64), np.asarray(std, np.float64)
    kl = 0.5 * (mu**2 + sd**2 - 1 - np.log(sd**2)).sum(-1)
    np.testing.assert_allclose(m["reconstruction"], rec.mean(), rtol=1e-4)
    np.testing.assert_allclose(m["kl"], kl.mean(), rtol=1e-4, atol=1e-5)
    floored = np.maximum(kl, CFG.kl_tolerance * CFG.z_dim)  # free bits: 0.5 nats per dim
    np.testing.assert_allclose(loss, (rec + floored).mean(), rtol=1e-4)
    assert set(m) >= {"loss", "reconstruction", "kl", "kl_clipped", "elbo"}


def test_loss_falls_on_small_synthetic_set():
    # 16 frames of coloured squares at random places.
    rng = np.random.default_rng(0)
    frames = np.zeros((16, 64, 64, 3), np.uint8)
    for f in frames:
        r, c = rng.integers(0, 48, 2)
        f[r : r + 16, c : c + 16] = rng.integers(64, 256, 3)
    state = vae.init_train_state(CFG, KEY(0))
    losses = []
    for i in range(60):
        state, m = vae.train_step(state, jnp.asarray(frames), KEY(i), CFG)
        losses.append(float(m["loss"]))
    assert np.isfinite(losses).all()
    assert np.mean(losses[-5:]) < 0.5 * np.mean(losses[:3]), losses[::10]
    assert int(state.step) == 60

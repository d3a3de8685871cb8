"""SOLAR model: shapes, PSD cost, local KL >= 0, and the loss falls on a tiny nav2d data set."""

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.envs import nav2d
from jaxplanet.solar import lgssm
from jaxplanet.solar import model as solar

TINY = solar.ModelConfig(latent=3, channels=(4, 4, 2), hidden=16, dynamics="global", svi_step=0.5)


@functools.cache
def _data(num=4, T=6, seed=0):
    env = nav2d.make()
    keys = jax.random.split(jax.random.key(seed), num)

    def rollout(key):
        k_reset, k_act = jax.random.split(key)
        state, obs0 = env.reset(k_reset)
        actions = 0.5 * jax.random.normal(k_act, (T, 2))

        def body(state, a):
            state, obs, r, _ = env.step(state, a)
            return state, (obs, r)

        _, (obs, rewards) = jax.lax.scan(body, state, actions)
        return {
            "obs": jnp.concatenate([obs0[None], obs]),
            "action": jnp.clip(actions, -1, 1),
            "cost": -rewards,
        }

    return jax.vmap(rollout)(keys)


def test_shapes_and_psd_cost():
    params = solar.init_params(TINY, jax.random.key(0), 2)
    obs = jnp.zeros((2, 5, 64, 64, 3), jnp.uint8)
    mean, var = jax.jit(lambda p, o: solar.encode(p, TINY, o))(params, obs)
    assert mean.shape == (2, 5, 3) and var.shape == (2, 5, 3) and bool(jnp.all(var > 0))
    logits = jax.jit(lambda p, s: solar.decode(p, TINY, s))(params, mean)
    assert logits.shape == (2, 5, 64, 64, 3) and logits.dtype == jnp.float32
    params["cost"]["L"] = jax.random.normal(jax.random.key(1), (5, 5))
    C, c, b = solar.cost_matrices(params)
    assert C.shape == (5, 5) and c.shape == (5,) and b.shape == ()
    assert float(jnp.linalg.eigvalsh(C).min()) > -1e-5
    assert solar.predict_cost(params, mean, jnp.zeros((2, 5, 2))).shape == (2, 5)


def test_paper_encoder_decoder_shapes():
    cfg = solar.ModelConfig()
    params = jax.eval_shape(lambda k: solar.init_params(cfg, k, 2), jax.random.key(0))
    shapes = jax.tree.map(lambda x: x.shape, params["enc"])
    assert shapes["conv0"]["kernel"] == (7, 7, 3, 64)
    assert shapes["conv2"]["kernel"] == (3, 3, 32, 8)
    assert shapes["dense"]["kernel"] == (13 * 13 * 8, 256)
    out = jax.eval_shape(lambda p: solar.decode(p, cfg, jnp.zeros((1, 10))), params)
    assert out.shape == (1, 64, 64, 3)


def test_canvas_starts_at_the_mean_frame():
    """``canvas=True``: a per-pixel output bias, which `init_canvas` sets to the logits of the
    mean frame (clipped), so the decoder's output is the mean frame plus the deconv stack's."""
    cfg = dataclasses.replace(TINY, canvas=True)
    params = solar.init_params(cfg, jax.random.key(0), 2)
    assert params["dec"]["canvas"].shape == (64, 64, 3)
    assert "canvas" not in solar.init_params(TINY, jax.random.key(0), 2)["dec"]
    obs = _data()["obs"]
    params = solar.init_canvas(params, obs)
    mean = np.clip(np.asarray(obs, np.float32).reshape(-1, 64, 64, 3).mean(0) / 255, 1e-3, 0.999)
    np.testing.assert_allclose(jax.nn.sigmoid(params["dec"]["canvas"]), mean, atol=1e-5)
    zero_canvas = dict(params, dec=dict(params["dec"], canvas=jnp.zeros((64, 64, 3))))
    s = jnp.ones((2, 3))
    diff = solar.decode(params, cfg, s) - solar.decode(zero_canvas, cfg, s)
    canvas = jnp.broadcast_to(params["dec"]["canvas"], diff.shape)
    np.testing.assert_allclose(diff, canvas, atol=1e-5)


def test_spatial_softmax_encoder_mean_is_affine_in_object_position():
    """``encoder="spatial_softmax"``: convs 5/3/3 (strides 2/1/1) to 26x26 maps, one feature
    point per channel, a linear map to the mean. With VALID convs a blob on a uniform background
    moves the softmax's mass without changing its total, so the mean (at any parameters) is
    exactly affine in the blob's position (shifts in steps of the first conv's stride)."""
    cfg = dataclasses.replace(TINY, encoder="spatial_softmax")
    params = solar.init_params(cfg, jax.random.key(0), 2)
    shapes = jax.tree.map(lambda x: x.shape, params["enc"])
    assert shapes["conv0"]["kernel"] == (5, 5, 3, 4) and shapes["log_temperature"] == ()
    assert shapes["mean"]["kernel"] == (2 * 2, 3)  # 2 channels x (row, col) -> latent 3
    pos = np.array([(r, c) for r in range(14, 42, 4) for c in range(12, 44, 6)])
    obs = np.zeros((len(pos), 64, 64, 3), np.uint8)
    for i, (r, c) in enumerate(pos):
        obs[i, r : r + 3, c : c + 3] = (250, 90, 40)
    params["enc"]["log_temperature"] = jnp.log(0.05)  # a peaked softmax: still affine
    mean, var = jax.jit(lambda p, o: solar.encode(p, cfg, o))(params, jnp.asarray(obs))
    assert mean.shape == (len(pos), 3) and bool(jnp.all(var > 0))
    X = np.c_[pos, np.ones(len(pos))]
    coef, *_ = np.linalg.lstsq(X, np.asarray(mean, np.float64), rcond=None)
    assert np.abs(X @ coef - np.asarray(mean)).max() < 1e-4 * (1 + np.abs(mean).max())
    assert np.abs(coef[:2]).max() > 1e-4  # and the mean does move with the blob


@pytest.mark.parametrize("dynamics, variant", [("global", "vae"), ("time_varying", "solar")])
def test_local_kl_is_nonnegative_and_infer_shapes(dynamics, variant):
    cfg = dataclasses.replace(TINY, dynamics=dynamics, variant=variant)
    batch = solar.episode_batch(**{k: v[:2, :6] for k, v in _rec(_data()).items()})
    state = solar.init_train_state(cfg, jax.random.key(0), 2, 5)
    loss = jax.jit(functools.partial(solar.loss, cfg=cfg))
    _, (metrics, pairs) = loss(state.params, q=state.q, batch=batch, key=jax.random.key(1))
    if variant == "vae":  # N(0, I) prior: the closed form, per frame, from the potentials
        pm, pv = (np.asarray(x, np.float64) for x in solar.encode(state.params, cfg, batch["obs"]))
        kl = 0.5 * np.sum(pv + pm**2 - 1.0 - np.log(pv), axis=(1, 2)) / batch["obs"].shape[1]
        np.testing.assert_allclose(float(metrics["kl_local"]), kl.mean(), rtol=1e-4)
    else:  # the structured posterior against its prior: a KL, never negative
        assert float(metrics["kl_local"]) > 0.0
    assert pairs.Exx.shape == (2, 5, 5, 5)
    post, pm, pc = solar.infer(state.params, cfg, state.q, batch["obs"][0], batch["action"][0])
    assert post.means.shape == (6, 3) and pc.shape == (6, 3, 3)


def _rec(data):
    """Back to the record convention (action/reward records shifted by one)."""
    B = data["obs"].shape[0]
    action = jnp.concatenate([jnp.zeros((B, 1, 2)), data["action"]], 1)
    reward = jnp.concatenate([jnp.zeros((B, 1)), -data["cost"]], 1)
    return {"obs": data["obs"], "action": action, "reward": reward}


def test_loss_falls_on_tiny_nav2d():
    variant, steps = "solar", 25
    cfg = dataclasses.replace(TINY, variant=variant, lr=3e-3)
    batch = _data()
    state = solar.init_train_state(cfg, jax.random.key(0), 2, 6)
    step = jax.jit(functools.partial(solar.train_step, cfg=cfg, num_sequences=4))
    losses = []
    for i in range(steps):
        state, metrics = step(state, batch, jax.random.key(i))
        assert bool(metrics["finite"])
        losses.append(float(metrics["loss"]))
    if variant == "solar":
        assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05 * abs(np.mean(losses[:3]))
    assert int(state.step) == steps


# ---------------------------------------------------------------- sliding windows of frames


def test_windows_stack_each_frame_with_the_ones_before_it():
    obs = jnp.arange(2 * 4, dtype=jnp.uint8).reshape(2, 4, 1, 1, 1)  # frame id as its pixel
    obs = jnp.broadcast_to(obs, (2, 4, 64, 64, 3))
    w = solar.windows(obs, 3)
    assert w.shape == (2, 4, 64, 64, 9) and w.dtype == jnp.uint8
    ids = np.asarray(w[:, :, 0, 0, ::3])  # the id of each window's 3 frames, newest first
    np.testing.assert_array_equal(ids[0], [[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 2, 1]])
    np.testing.assert_array_equal(ids[1], ids[0] + 4)
    assert solar.windows(obs, 1) is obs


def test_two_frame_model_encodes_windows_and_trains():
    cfg = dataclasses.replace(TINY, frames=2)
    params = solar.init_params(cfg, jax.random.key(0), 2)
    assert params["enc"]["conv0"]["kernel"].shape[-2] == 6  # 2 frames x 3 channels
    data = _data()
    mean, _ = solar.encode_rollouts(params, cfg, data["obs"])
    assert mean.shape == (4, 7, 3)
    # step t's potential is the encoder on (frame t, frame t-1); step 0 repeats frame 0
    o = data["obs"][0]
    want, _ = solar.encode(params, cfg, jnp.concatenate([o[3], o[2]], -1))
    np.testing.assert_allclose(mean[0, 3], want, rtol=1e-5, atol=1e-6)
    want0, _ = solar.encode(params, cfg, jnp.concatenate([o[0], o[0]], -1))
    np.testing.assert_allclose(mean[0, 0], want0, rtol=1e-5, atol=1e-6)
    state = solar.init_train_state(dataclasses.replace(cfg, lr=3e-3), jax.random.key(1), 2, 6)
    step = jax.jit(functools.partial(solar.train_step, cfg=cfg, num_sequences=4))
    losses = []
    for i in range(10):
        state, metrics = step(state, data, jax.random.key(i))
        assert bool(metrics["finite"])
        losses.append(float(metrics["loss"]))
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_velocity_half_is_unseen_by_encoder_and_decoder_and_moves_the_positions():
    """``velocity=True``: the encoder measures the first n/2 entries (the rest get a flat
    potential), the decoder draws from them alone, and the prior's mean is p' = p + v, v' = v."""
    cfg = dataclasses.replace(TINY, latent=4, velocity=True)
    params = solar.init_params(cfg, jax.random.key(0), 2)
    obs = _data()["obs"][0]
    mean, var = solar.encode(params, cfg, obs)
    assert mean.shape == var.shape == (7, 4)
    np.testing.assert_array_equal(mean[:, 2:], 0.0)
    np.testing.assert_array_equal(var[:, 2:], solar.FLAT_VAR)
    plain = dataclasses.replace(cfg, velocity=False, latent=2)
    want, want_var = solar.encode(params, plain, obs)  # the same network, 2 outputs
    np.testing.assert_array_equal(mean[:, :2], want)
    np.testing.assert_array_equal(var[:, :2], want_var)
    s = jax.random.normal(jax.random.key(1), (3, 4))
    moved = s.at[:, 2:].add(5.0)
    np.testing.assert_array_equal(solar.decode(params, cfg, s), solar.decode(params, cfg, moved))
    M = np.asarray(solar.prior_dynamics(cfg, 2, 6).M)
    want_M = np.zeros((4, 6))
    want_M[:4, :4] = [[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 1, 0], [0, 0, 0, 1]]
    np.testing.assert_array_equal(M, want_M)


def test_smoother_infers_the_unseen_velocity_as_the_least_squares_slope():
    """Known answer: positions measured with equal noise, a constant-velocity model with a
    diffuse start and (almost) no process noise -- the smoothed velocity is the slope of the
    least-squares line through the measurements, at every step."""
    T, h = 20, 2
    rng = np.random.default_rng(0)
    t = np.arange(T + 1)
    slope, start = np.array([0.3, -0.7]), np.array([1.0, 2.0])
    y = start + np.outer(t, slope) + 0.1 * rng.standard_normal((T + 1, h))
    cfg = dataclasses.replace(TINY, latent=2 * h, velocity=True)
    F = np.asarray(solar.prior_dynamics(cfg, 1, T).M)  # [[I, I, 0], [0, I, 0]]
    pm = np.c_[y, np.zeros((T + 1, h))]
    pv = np.r_[[0.01] * h, [solar.FLAT_VAR] * h]
    post = lgssm.smooth_full(
        jnp.zeros(2 * h),
        1e4 * jnp.eye(2 * h),
        jnp.broadcast_to(F, (T, 2 * h, 2 * h + 1)),
        jnp.broadcast_to(1e-8 * jnp.eye(2 * h), (T, 2 * h, 2 * h)),
        jnp.zeros((T, 1)),
        jnp.asarray(pm, jnp.float32),
        jnp.broadcast_to(jnp.diag(jnp.asarray(pv, jnp.float32)), (T + 1, 2 * h, 2 * h)),
    )
    fit = np.polyfit(t, y, 1)  # [2, h]: slope, intercept per axis
    means = np.asarray(post.means)
    np.testing.assert_allclose(means[:, h:], np.tile(fit[0], (T + 1, 1)), atol=2e-3)
    np.testing.assert_allclose(means[:, :h], np.outer(t, fit[0]) + fit[1], atol=2e-2)

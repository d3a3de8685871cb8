"""Tests for jaxplanet.planet: config, parameter counts, ELBO terms, overshooting, training."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet import planet
from jaxplanet.nn import networks
from jaxplanet.planet import rssm

A, B, T = 2, 4, 8
TINY = planet.ModelConfig.tiny()
_train_step = jax.jit(planet.train_step, static_argnames="cfg")
_loss = jax.jit(planet.loss, static_argnames="cfg")
_kl_loss = jax.jit(planet.kl_loss, static_argnames="cfg")


def key(seed: int) -> jax.Array:
    """RBG keys: they compile far faster than threefry on XLA:CPU; the code is key-agnostic."""
    return jax.random.key(seed, impl="rbg")


def moving_squares(batch: int, steps: int, seed: int = 0) -> dict:
    """Coloured 10x10 squares bouncing on black; reward = horizontal position in [0, 1]."""
    rng = np.random.default_rng(seed)
    obs = np.zeros((batch, steps, 64, 64, 3), np.uint8)
    pos = rng.integers(5, 49, (batch, 2)).astype(float)
    vel = rng.choice([-4.0, -3.0, 3.0, 4.0], (batch, 2))
    colour = rng.integers(100, 256, (batch, 3))
    reward = np.zeros((batch, steps), np.float32)
    for t in range(steps):
        for b in range(batch):
            y, x = pos[b].astype(int)
            obs[b, t, y : y + 10, x : x + 10] = colour[b]
            reward[b, t] = 0.0 if t == 0 else x / 54
        pos += vel
        vel = np.where((pos < 0) | (pos > 54), -vel, vel)
        pos = np.clip(pos, 0, 54)
    action = rng.uniform(-1, 1, (batch, steps, A)).astype(np.float32)
    action[:, 0] = 0.0
    is_first = np.zeros((batch, steps), bool)
    is_first[:, 0] = True
    return {"obs": obs, "action": action, "reward": reward, "is_first": is_first}


@pytest.fixture(scope="module")
def batch():
    return jax.tree.map(jnp.asarray, moving_squares(B, T))


def _init(cfg: planet.ModelConfig, seed: int = 0) -> dict:
    return jax.jit(planet.init, static_argnums=(0, 2))(cfg, key(seed), A)


@pytest.fixture(scope="module")
def params():
    return _init(TINY)


@pytest.fixture(scope="module")
def states(params, batch):
    """Posterior and prior State[B, T] filtered from random embeddings (no conv nets)."""
    embed = jax.random.normal(key(1), (B, T, TINY.embed_dim))
    return rssm.observe(params, TINY, embed, batch["action"], batch["is_first"], key(2))


def _count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def test_config_paper_defaults_and_presets():
    cfg = planet.ModelConfig()
    assert (cfg.depth, cfg.deter, cfg.stoch, cfg.hidden, cfg.min_std) == (32, 200, 30, 200, 0.1)
    # The released configuration of the paper's Table 1 agent.
    assert (cfg.free_nats, cfg.kl_scale, cfg.overshooting_distance) == (3.0, 1.0, 0)
    assert (cfg.reward_scale, cfg.reward_hidden, cfg.reward_layers) == (10.0, 100, 2)
    assert (cfg.lr, cfg.adam_eps, cfg.grad_clip, cfg.variant) == (1e-3, 1e-4, 1000.0, "rssm")
    assert cfg.lr_warmup == 10_000
    assert cfg.embed_dim == 1024 and planet.ModelConfig.paper() == cfg
    assert planet.ModelConfig.tiny(variant="ssm").variant == "ssm"
    assert all(f.metadata.get("help") for f in dataclasses.fields(cfg))
    hash(cfg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.deter = 3
    with pytest.raises(ValueError, match="unknown variant"):
        planet.ModelConfig.tiny(variant="bogus")
    assert cfg.conv_chunk == -1  # auto: slices only on CPU and only for big batches
    with pytest.raises(ValueError, match="conv_chunk must be -1"):
        planet.ModelConfig.tiny(conv_chunk=-2)


def test_paper_parameter_counts():
    cfg, act = planet.ModelConfig(), 6
    shapes = jax.eval_shape(lambda k: planet.init(cfg, k, act), jax.random.key(0))["params"]
    chans = [3, 32, 64, 128, 256]
    encoder = sum(16 * a * b + b for a, b in zip(chans[:-1], chans[1:], strict=True))
    feat = 200 + 30
    decoder = (
        feat * 1024
        + 1024
        + sum(
            k * k * a * b + b for k, a, b in [(5, 1024, 128), (5, 128, 64), (6, 64, 32), (6, 32, 3)]
        )
    )
    cell = (
        (30 + act) * 200
        + 200  # img_in on [s, a]
        + (200 + 200) * 600
        + 600  # fused GRU: 3 gates from [x, h]
        + 200 * 200
        + 200  # img_hidden on h
        + 200 * 60
        + 60  # prior mean and raw std
        + 1024 * 200
        + 200
        + 200 * 200  # posterior layer on [h, embed], split in two
        + 200 * 60
        + 60  # posterior mean and raw std
    )
    reward = feat * 100 + 100 + 100 * 100 + 100 + 100 + 1  # released: 2 x 100 units
    counts = {k: _count(v) for k, v in shapes.items()}
    assert counts == {"encoder": encoder, "decoder": decoder, "rssm": cell, "reward": reward}
    assert shapes["decoder"]["dense"]["kernel"].shape == (feat, 1024)


def test_loss_metrics_and_image_nll(params, batch):
    loss, m = _loss(params, TINY, batch, key(1))
    expected = {"loss", "image_nll", "reward_nll", "kl", "kl_raw", "overshooting_kl"}
    assert expected <= set(m) and {"prior_entropy", "post_entropy"} <= set(m)
    assert all(np.shape(v) == () and np.isfinite(v) for v in m.values())
    total = m["image_nll"] + TINY.reward_scale * m["reward_nll"] + m["kl"]
    np.testing.assert_allclose(loss, total, rtol=1e-6)

    @jax.jit
    def reference(params):
        # 0.5 * squared error summed over 64*64*3 pixels, averaged over B and T.
        k_noise, k_post, _ = jax.random.split(key(1), 3)
        embed = planet.encode(params, TINY, batch["obs"], k_noise)
        post, _ = rssm.observe(params, TINY, embed, batch["action"], batch["is_first"], k_post)
        mean = planet.decode(params, TINY, rssm.features(post))
        obs = networks.preprocess(batch["obs"], k_noise)
        reward = planet.reward(params, TINY, rssm.features(post))
        return (
            jnp.mean(0.5 * jnp.sum(jnp.square(obs - mean), axis=(2, 3, 4))),
            jnp.mean(0.5 * jnp.square(batch["reward"] - reward)),
        )

    image_nll, reward_nll = reference(params)
    np.testing.assert_allclose(m["image_nll"], image_nll, rtol=1e-5)
    np.testing.assert_allclose(m["reward_nll"], reward_nll, rtol=1e-5)


def test_free_nats_clamp_each_step_and_zero_gradient_below(params, batch, states):
    post, prior = states
    kl_t = np.asarray(rssm.kl(TINY, post, prior))
    free = float(np.median(kl_t))  # half the steps below, half above
    term, m = _kl_loss(
        params, dataclasses.replace(TINY, free_nats=free), post, prior, batch, key(3)
    )
    np.testing.assert_allclose(m["kl"], np.mean(np.maximum(kl_t, free)), rtol=1e-5)
    np.testing.assert_allclose(term, m["kl"], rtol=1e-6)
    np.testing.assert_allclose(m["kl_raw"], kl_t.mean(), rtol=1e-5)

    def grads(cfg):
        fn = lambda p, q, r: planet.kl_loss(p, cfg, q, r, batch, key(3))[0]
        return jax.jit(jax.grad(fn, argnums=(0, 1, 2)))(params, post, prior)

    g_post, g_prior = (g.mean for g in grads(dataclasses.replace(TINY, free_nats=free))[1:])
    below = kl_t < free  # steps under the threshold get no gradient, the others do
    for g in (g_post, g_prior):
        assert float(jnp.abs(g).max(-1)[below].max()) == 0.0
        assert float(jnp.abs(g).max(-1)[~below].min()) > 0.0


def test_overshooting_distance_one_is_the_standard_elbo(params, batch, states):
    post, prior = states
    one = dataclasses.replace(TINY, overshooting_distance=1, overshooting_kl_scale=7.0)

    def value_and_grads(cfg):
        fn = lambda p, q, r: planet.kl_loss(p, cfg, q, r, batch, key(4))
        return jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2), has_aux=True))(params, post, prior)

    (v0, m0), g0 = value_and_grads(TINY)
    (v1, m1), g1 = value_and_grads(one)
    np.testing.assert_allclose(v1, v0, rtol=1e-6)
    assert float(m1["overshooting_kl"]) == 0.0  # no d >= 2 pairs
    for a, b in zip(jax.tree.leaves(g0), jax.tree.leaves(g1), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_overshooting_d3_known_answer_with_stop_gradient(batch):
    """D = 3 by hand: one-step KL at weight kl_scale plus beta times the mean over all valid
    (t, d) pairs with d in {2, 3} of the d-step KL against the stop-gradient posterior."""
    # Deterministic ("rnn") latents make the rollout reproducible by hand; free nats off.
    cfg = planet.ModelConfig.tiny(variant="rnn", free_nats=0.0, overshooting_kl_scale=0.7)
    cfg3 = dataclasses.replace(cfg, overshooting_distance=3)
    cell = rssm.init(cfg, key(5), 6, A)  # a standalone cell is enough here
    first = batch["is_first"].at[1, 4].set(True)  # an episode start inside row 1
    data = {**batch, "is_first": first}
    embed = jax.random.normal(key(6), (B, T, 6))
    post, prior = rssm.observe(cell, cfg, embed, data["action"], first)
    post_np = jax.tree.map(np.asarray, post)
    first_np = np.asarray(first)

    def manual(p, post, stop=True):
        kl1 = jnp.mean(rssm.kl(cfg, post, prior))
        total, count = 0.0, 0
        for t0 in range(T):  # rollout start (posterior at t0), target at t0 + d
            state = jax.tree.map(lambda x, t0=t0: x[:, t0], post)
            for d in range(1, 4):
                t = t0 + d
                if t >= T:
                    break
                state = rssm.imagine(p, cfg, state, data["action"][:, t][:, None])
                state = jax.tree.map(lambda x: x[:, 0], state)
                if d == 1:
                    continue
                target = post.mean[:, t]
                target = jax.lax.stop_gradient(target) if stop else target
                kl = 0.5 * jnp.sum(jnp.square(target - state.mean), -1)  # [B]
                valid = ~first_np[:, t0 + 1 : t + 1].any(axis=1)
                total = total + jnp.sum(kl * valid)
                count += int(valid.sum())
        return cfg.kl_scale * kl1 + cfg.overshooting_kl_scale * total / count

    assert post_np.mean.shape == (B, T, cfg.stoch)
    auto = lambda p, post: planet.kl_loss(p, cfg3, post, prior, data, key(7))[0]
    np.testing.assert_allclose(auto(cell, post), manual(cell, post), rtol=1e-5)
    grad = lambda fn: jax.jit(jax.grad(fn, argnums=(0, 1)))(cell, post)
    g_auto, g_man = grad(auto), grad(manual)
    for a, b in zip(jax.tree.leaves(g_auto), jax.tree.leaves(g_man), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    g_nostop = grad(lambda p, q: manual(p, q, stop=False))
    assert not np.allclose(g_nostop[1].mean, g_auto[1].mean, atol=1e-6)  # the stop matters
    # The one-step KL keeps its full weight (not 1 / D as in the paper's Eq. 7).
    no_beta = dataclasses.replace(cfg3, overshooting_kl_scale=0.0)
    one_step = planet.kl_loss(cell, no_beta, post, prior, data, key(7))[0]
    np.testing.assert_allclose(one_step, jnp.mean(rssm.kl(cfg, post, prior)), rtol=1e-6)


def test_latent_step_posterior_step_and_open_loop(params, batch):
    step = jax.jit(planet.latent_step(params, TINY, sample=False))
    s0 = rssm.initial_state(TINY, (5,))
    acts = jax.random.uniform(key(8), (5, A), minval=-1, maxval=1)
    nxt, rew = step(s0, acts, key(0))
    assert nxt.deter.shape == (5, TINY.deter) and rew.shape == (5,)
    ref = rssm.imagine(params, TINY, s0, acts[:, None])
    np.testing.assert_allclose(nxt.stoch, ref.stoch[:, 0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nxt.stoch, nxt.mean)  # prior mean, no sampling
    feat = rssm.features(nxt)
    np.testing.assert_allclose(rew, planet.reward(params, TINY, feat), rtol=1e-5, atol=1e-6)
    # Sampled: the prior is sampled with the step's key; the reward is the head's mean there.
    sampled = jax.jit(planet.latent_step(params, TINY))
    nxt_s, rew_s = sampled(s0, acts, key(1))
    noise = jax.random.normal(key(1), nxt_s.mean.shape)
    np.testing.assert_allclose(nxt_s.stoch, nxt_s.mean + nxt_s.std * noise, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nxt_s.mean, nxt.mean, rtol=1e-5, atol=1e-6)
    feat_s = rssm.features(nxt_s)
    np.testing.assert_allclose(rew_s, planet.reward(params, TINY, feat_s), rtol=1e-5, atol=1e-6)
    # The plan starts from one belief sample (or its mean).
    b = planet.plan_start(nxt_s, key(2))
    np.testing.assert_allclose(
        b.stoch, nxt_s.mean + nxt_s.std * jax.random.normal(key(2), b.stoch.shape), rtol=1e-5
    )
    np.testing.assert_array_equal(planet.plan_start(nxt_s, key(2), sample=False).stoch, nxt_s.mean)

    @jax.jit
    def filtered(params):  # whole-chunk filtering with means, and its reconstructions
        embed = planet.encode(params, TINY, batch["obs"])
        post, _ = rssm.observe(params, TINY, embed, batch["action"], batch["is_first"])
        head = jax.tree.map(lambda x: x[:, :3], post)
        return post, networks.postprocess(planet.decode(params, TINY, rssm.features(head)))

    post, recon = filtered(params)
    online = jax.jit(planet.posterior_step, static_argnums=1)
    belief = rssm.initial_state(TINY, (B,))
    for t in range(3):  # the agent's online update == filtering the chunk
        obs, act, first = batch["obs"][:, t], batch["action"][:, t], batch["is_first"][:, t]
        belief = online(params, TINY, belief, act, obs, first)
        np.testing.assert_allclose(belief.mean, post.mean[:, t], rtol=1e-5, atol=1e-5)
    frames = jax.jit(planet.open_loop_predictions, static_argnums=(1, 3))(params, TINY, batch, 3)
    assert frames.shape == (B, T, 64, 64, 3) and frames.dtype == jnp.uint8
    np.testing.assert_array_equal(frames[:, :3], recon)


def test_training_reduces_image_nll(params, batch):
    state = planet.TrainState(params, planet.make_optimizer(TINY).init(params), jnp.int32(0))
    nll = []
    for i in range(100):
        state, m = _train_step(state, TINY, batch, key(100 + i))
        planet.check_finite(m, int(state.step))
        nll.append(float(m["image_nll"]))
    assert int(state.step) == 100 and float(m["grad_norm"]) > 0
    first, last = np.mean(nll[:3]), np.mean(nll[-5:])
    assert last < 0.5 * first, (first, last)  # falls by more than half


@pytest.mark.parametrize(
    "changes",
    [
        {"variant": "ssm"},
        {"variant": "rnn"},
        {"overshooting_distance": 3, "overshooting_reward_scale": 1.0, "dtype": "bfloat16"},
    ],
)
def test_variants_and_overshooting_give_finite_losses(params, batch, changes):
    cfg = planet.ModelConfig.tiny(**changes)
    p = params if "variant" not in changes else _init(cfg, 9)
    loss, m = _loss(p, cfg, batch, key(10))
    assert all(np.isfinite(v) for v in m.values()) and np.isfinite(loss)
    over = cfg.overshooting_reward_scale * m["overshooting_reward_nll"]
    total = m["image_nll"] + cfg.reward_scale * m["reward_nll"] + m["kl"] + over
    if cfg.overshooting_distance > 1:  # beta = 1: mean clamped d >= 2 KL >= its raw mean
        assert float(loss) >= float(total + m["overshooting_kl"]) - 1e-2 * abs(float(loss))
    else:
        np.testing.assert_allclose(loss, total, rtol=1e-5)
    if cfg.variant == "ssm":
        assert p["params"]["rssm"].keys() == {
            "img_in",
            "img_out",
            "obs_embed",
            "obs_state",
            "obs_out",
        }
    if cfg.overshooting_distance:
        assert float(m["overshooting_kl"]) > 0 and float(m["overshooting_reward_nll"]) > 0


def test_non_finite_detection_names_step_and_term(params, batch):
    state = planet.TrainState(params, planet.make_optimizer(TINY).init(params), jnp.int32(6))
    bad = {**batch, "reward": batch["reward"].at[0, 3].set(jnp.nan)}
    new, m = _train_step(state, TINY, bad, key(0))
    assert not bool(m["finite"]) and int(new.step) == 7
    for a, b in zip(jax.tree.leaves(new.params), jax.tree.leaves(params), strict=True):
        np.testing.assert_array_equal(a, b)  # the update was skipped
    with pytest.raises(planet.NonFiniteLossError, match=r"step 7.*reward_nll"):
        planet.check_finite(m, int(new.step))
    planet.check_finite({"loss": 1.0, "finite": True}, 1)


def test_learning_rate_ramps_linearly_as_released():
    cfg = planet.ModelConfig.tiny(lr=1e-3, lr_warmup=10_000)
    lr = planet.learning_rate(cfg)
    np.testing.assert_allclose([lr(0), lr(4_999), lr(9_999), lr(20_000)], [1e-7, 5e-4, 1e-3, 1e-3])
    assert float(planet.learning_rate(planet.ModelConfig.tiny(lr_warmup=0))(0)) == 1e-3

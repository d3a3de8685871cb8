"""The dream: M as a pure-JAX environment, whole CMA-ES generations as one jitted vmap."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.envs import point_reach
from jaxplanet.worldmodels import controllers, dream, mdn_rnn, vae


def KEY(seed):  # noqa: N802 — rbg keys: the random init compiles ~5x faster on CPU
    return jax.random.key(seed, impl="rbg")


VCFG = vae.VAEConfig(z_dim=4, depth=2)
MCFG = mdn_rnn.MDNConfig(z_dim=4, hidden=8, mixtures=3, done_head=True, reward_head=True)
CFG = dream.DreamConfig(vae=VCFG, mdn=MCFG, action_dim=2, max_steps=20, reward="head")


@pytest.fixture(scope="module")
def params():
    k_v, k_m, k_z = jax.random.split(KEY(0), 3)
    return {
        "vae": vae.init(VCFG, k_v),
        "mdn": mdn_rnn.init(MCFG, k_m, action_dim=2),
        "initial_z": {
            "mean": jax.random.normal(k_z, (3, 4)),
            "std": jnp.full((3, 4), 0.1),
        },
    }


def _with_done_bias(params, bias):
    mdn = dict(params["mdn"])
    mdn["done"] = {**mdn["done"], "bias": jnp.full((1,), bias)}
    return {**params, "mdn": mdn}


def test_env_interface_shapes(params):
    env = dream.dream_env(params, CFG, temperature=1.15)
    assert env.spec.action_dim == 2 and env.spec.episode_length == 20
    state, obs = jax.jit(env.reset)(KEY(1))
    assert obs.shape == (64, 64, 3) and obs.dtype == jnp.uint8
    assert state.z.shape == (4,) and state.carry[1].shape == (8,)
    state2, obs2, reward, done = jax.jit(env.step)(state, jnp.zeros(2))
    assert obs2.shape == (64, 64, 3) and obs2.dtype == jnp.uint8
    assert reward.shape == () and reward.dtype == jnp.float32
    assert done.shape == () and done.dtype == jnp.bool_
    assert int(state2.t) == 1
    s_a, r_a = env.transition(state, jnp.zeros(2), KEY(7))
    s_b, r_b = env.transition(state, jnp.zeros(2), KEY(7))
    np.testing.assert_array_equal(s_a.z, s_b.z)
    assert not np.array_equal(s_a.z, state2.z)  # a given key replaces the state's
    np.testing.assert_array_equal(env.render(state2), obs2)
    # Batched: vmap over keys.
    states, frames = jax.vmap(env.reset)(jax.random.split(KEY(2), 5))
    assert frames.shape == (5, 64, 64, 3) and states.z.shape == (5, 4)


def test_step_is_deterministic_given_state(params):
    env = dream.dream_env(params, CFG, temperature=1.0)
    state, _ = env.reset(KEY(3))
    a = env.step(state, jnp.array([0.3, -0.2]))
    b = env.step(state, jnp.array([0.3, -0.2]))
    np.testing.assert_array_equal(a[0].z, b[0].z)
    assert float(a[2]) == float(b[2])


def _candidates(n, key):
    template = controllers.init(KEY(0), 4, 8, 2)
    flat, unflatten = controllers.flatten(template)
    return 0.5 * jax.random.normal(key, (n, flat.size)), unflatten


def test_generation_is_deterministic_under_a_key(params):
    cands, unflatten = _candidates(3, KEY(4))
    run = dict(unflatten=unflatten, rollouts=4)
    a = dream.generation_returns(params, CFG, 1.0, cands, KEY(5), **run)
    b = dream.generation_returns(params, CFG, 1.0, cands, KEY(5), **run)
    c = dream.generation_returns(params, CFG, 1.0, cands, KEY(6), **run)
    assert a.shape == (3, 4) and a.dtype == jnp.float32
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_generation_matches_stepping_the_env(params):
    # threefry: the one key impl whose streams are the same under vmap (rbg's are not).
    cands, unflatten = _candidates(2, KEY(7))
    key = jax.random.key(8)
    got = dream.generation_returns(params, CFG, 1.3, cands, key, unflatten=unflatten, rollouts=3)
    env = dream.dream_env(params, CFG, temperature=1.3)
    keys = jax.random.split(key, 6)
    step = jax.jit(env.transition)
    for p in range(2):
        ctrl = unflatten(cands[p])
        for r in range(3):
            state, _ = env.reset(keys[p * 3 + r])
            total = 0.0
            for _ in range(CFG.max_steps):
                a = controllers.act(ctrl, state.z, state.carry[1])
                state, reward = step(state, a)
                total += float(reward)
            np.testing.assert_allclose(got[p, r], total, rtol=1e-4, atol=1e-4)


def test_rollouts_after_done_accrue_nothing(params):
    cands, unflatten = _candidates(2, KEY(9))
    survival = dataclasses.replace(CFG, reward="survival", max_steps=7)
    run = dict(unflatten=unflatten, rollouts=3, steps=12)
    # Done head off: episodes end at max_steps, one point per step survived.
    no_done = dataclasses.replace(survival, mdn=dataclasses.replace(MCFG, done_head=False))
    p_no_done = {**params, "mdn": {k: v for k, v in params["mdn"].items() if k != "done"}}
    got = dream.generation_returns(p_no_done, no_done, 1.0, cands, KEY(1), **run)
    np.testing.assert_array_equal(got, 7.0)
    # Done certain after the first step: exactly 1 point.
    got = dream.generation_returns(
        _with_done_bias(params, 50.0), survival, 1.0, cands, KEY(1), **run
    )
    np.testing.assert_array_equal(got, 1.0)
    # Done impossible: max_steps.
    got = dream.generation_returns(
        _with_done_bias(params, -50.0), survival, 1.0, cands, KEY(1), **run
    )
    np.testing.assert_array_equal(got, 7.0)
    # A done state stays frozen and gives 0 reward.
    env = dream.dream_env(_with_done_bias(params, 50.0), CFG)
    state, _ = env.reset(KEY(2))
    state, _, _, done = env.step(state, jnp.zeros(2))
    assert bool(done)
    later, _, reward, done = env.step(state, jnp.ones(2))
    assert bool(done) and float(reward) == 0.0 and int(later.t) == int(state.t)
    np.testing.assert_array_equal(later.z, state.z)


def test_world_model_agent_on_point_reach(params):
    # 12 env steps at action repeat 2: the episode ends after 6 of the 10 agent steps run.
    env = point_reach.make(episode_length=12)
    ctrl = controllers.init(KEY(0), 4, 8, 2, scale=0.3)
    run = jax.jit(lambda k: dream.jax_env_returns(env, params, CFG, ctrl, k, steps=10))
    key = jax.random.key(1)  # threefry: the same streams in the scan as stepped by hand
    ret, frames = run(key)
    assert ret.shape == () and frames.shape == (11, 64, 64, 3) and frames.dtype == jnp.uint8
    ret2, _ = run(key)
    assert float(ret) == float(ret2)
    # Reference: the agent stepped by hand, rewards summed until the episode ends.
    k_reset, k_run = jax.random.split(key)
    state, obs = env.reset(k_reset)
    carry, done, total, after_done = mdn_rnn.initial_state(MCFG), False, 0.0, 0.0
    policy, step = jax.jit(dream.world_model_policy_step, static_argnums=1), jax.jit(env.step)
    for t, k in enumerate(jax.random.split(k_run, 10)):
        action, carry, _ = policy(params, CFG, ctrl, carry, obs, k)
        state, obs, reward, d = step(state, action)
        after_done += float(reward) if done else 0.0
        total += 0.0 if done else float(reward)
        done = done or bool(d)
        np.testing.assert_array_equal(frames[t + 1], obs)
    assert done and after_done > 0.0  # the steps after the end would have counted otherwise
    np.testing.assert_allclose(float(ret), total, rtol=1e-4, atol=1e-4)
    carry = mdn_rnn.initial_state(MCFG, (3,))
    obs = jnp.zeros((3, 64, 64, 3), jnp.uint8)
    action, carry, z = dream.world_model_policy_step(params, CFG, ctrl, carry, obs)
    assert action.shape == (3, 2) and carry[1].shape == (3, 8) and z.shape == (3, 4)


def test_benchmark_step_flops_paper_doom():
    from benchmarks import dream as bench

    # Analytic FLOPs of one paper-size Doom step: LSTM (64 + 1 + 256) -> 1024, MDN 256 -> 960,
    # done head 256 -> 1, controller 320 -> 1 (multiply-adds x 2).
    assert bench.step_flops(64, 256, 5, 1, True) == 2 * (321 * 1024 + 256 * 960 + 256 + 320)


@pytest.mark.slow  # benchmark smoke run: compiles and times at a small size
def test_benchmark_runs_at_small_size(tmp_path):
    from benchmarks import dream as bench

    out = tmp_path / "dream.json"
    args = "--population 4 --rollouts 2 --steps 5 --hidden 16 --z_dim 4 --repeats 1 --peak_n 256"
    record = bench.main([*args.split(), "--json", str(out)])
    assert out.exists() and record["steps"] == 5
    assert record["dream_steps_per_second"] > 0 and 0 < record["fraction_of_peak"] < 10


def test_done_is_sampled_with_the_loss_weight_undone(params):
    # M's done loss weights positives by w, so its logit is the calibrated one + log w: a done
    # bias of log w (and zero weights) must end a step with probability 1/2, a mean of 2 steps.
    w = MCFG.done_pos_weight
    np.testing.assert_allclose(dream.done_probability(jnp.log(w), MCFG), 0.5, rtol=1e-6)
    mdn = dict(params["mdn"])
    mdn["done"] = {"kernel": jnp.zeros_like(mdn["done"]["kernel"]), "bias": jnp.log(w)[None]}
    cands, unflatten = _candidates(1, KEY(9))
    survival = dataclasses.replace(CFG, reward="survival", max_steps=50)
    got = dream.generation_returns(
        {**params, "mdn": mdn}, survival, 1.0, cands, KEY(2), unflatten=unflatten, rollouts=2000
    )
    assert abs(float(got.mean()) - 2.0) < 0.15, float(got.mean())  # raw sigmoid: ~1.1


@pytest.mark.parametrize("bias", [-0.01, 0.01, 3.0])
def test_threshold_rule_ends_exactly_where_the_done_logit_is_positive(params, bias):
    # The authors' Doom dream: done iff M's done logit > 0, no sampling (any key, any step).
    mdn = dict(params["mdn"])
    mdn["done"] = {"kernel": jnp.zeros_like(mdn["done"]["kernel"]), "bias": jnp.array([bias])}
    cfg = dataclasses.replace(CFG, done_rule="threshold")
    step = jax.jit(
        lambda s, k: dream.transition({**params, "mdn": mdn}, cfg, 1.0, s, jnp.zeros(2), k)
    )
    for seed in range(5):
        state = dream.initial_state(params, cfg, KEY(seed))
        state, _ = step(state, KEY(100 + seed))
        assert bool(state.done) == (bias > 0)
    # Logit varying with the state: done exactly where the logit computed by M is > 0.
    state = dream.initial_state(params, cfg, KEY(3))
    _, out = mdn_rnn.step(params["mdn"], MCFG, state.carry, state.z, jnp.zeros(2))
    for offset in (-1e-3, 1e-3):
        b = params["mdn"]["done"]["bias"] - out.done_logit + offset
        moved = {**params, "mdn": {**params["mdn"], "done": {**params["mdn"]["done"], "bias": b}}}
        got, _ = dream.transition(moved, cfg, 1.0, state, jnp.zeros(2))
        assert bool(got.done) == (offset > 0)


def test_raw_m_action_and_controller_on_z_c_h(params):
    # take_cover: C's output 0.2 maps to "stay" (0) for the task, but M reads 0.2 ("raw").
    mcfg = dataclasses.replace(MCFG, done_head=False)
    p = {**params, "mdn": mdn_rnn.init(mcfg, KEY(4), action_dim=1)}
    base = dataclasses.replace(CFG, mdn=mcfg, action_dim=1, action_map="take_cover")
    state = dream.initial_state(p, base, KEY(5))
    a = jnp.array([0.2])
    for m_action, m_in in (("mapped", 0.0), ("raw", 0.2)):
        cfg = dataclasses.replace(base, m_action=m_action)
        got, _ = dream.transition(p, cfg, 1.0, state, a)
        carry, _ = mdn_rnn.step(p["mdn"], mcfg, state.carry, state.z, jnp.array([m_in]))
        np.testing.assert_allclose(got.carry[1], carry[1], rtol=1e-6)
    ctrl = controllers.init(KEY(6), 4, 8, 1, scale=0.5, cell=True, bias=False)
    carry = (jnp.full((8,), 0.3), jnp.full((8,), -0.2))
    zch = dataclasses.replace(base, controller_input="zch")
    want = controllers.act(ctrl, state.z, carry[1], carry[0])
    np.testing.assert_allclose(dream.controller_action(ctrl, zch, state.z, carry), want)


def test_open_loop_returns_match_stepping_the_env(params):
    # Fixed action sequences (the calibration's random / constant policies) in one jitted vmap.
    keys = jax.random.split(jax.random.key(11), 3)  # threefry: the same streams under vmap
    acts = jax.random.uniform(jax.random.key(12), (3, CFG.max_steps, 2), minval=-1, maxval=1)
    got, steps = dream.open_loop_returns(params, CFG, 1.2, acts, keys)
    assert got.shape == (3,) and steps.dtype == jnp.int32
    env = dream.dream_env(params, CFG, temperature=1.2)
    step = jax.jit(env.transition)
    for e in range(3):
        state, _ = env.reset(keys[e])
        total = 0.0
        for t in range(CFG.max_steps):
            state, reward = step(state, acts[e, t])
            total += float(reward)
        np.testing.assert_allclose(got[e], total, rtol=1e-4, atol=1e-4)
        assert int(steps[e]) == int(state.t)
    # Survival: the steps survived are the return; M's done logit ends episodes.
    survival = dataclasses.replace(CFG, reward="survival", max_steps=9)
    sure = _with_done_bias(params, 50.0)
    got, steps = dream.open_loop_returns(sure, survival, 1.0, acts[:, :9], keys)
    np.testing.assert_array_equal(got, 1.0)
    np.testing.assert_array_equal(steps, 1)
    never = _with_done_bias(params, -50.0)
    got, steps = dream.open_loop_returns(never, survival, 1.0, acts[:, :9], keys)
    np.testing.assert_array_equal(got, 9.0)
    np.testing.assert_array_equal(steps, 9)

"""K agents in one program (jaxplanet.planet.seeds): seed k equals a single-seed run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet import planet
from jaxplanet.planet import seeds

A, B, T, K = 2, 3, 5, 3
FAST = {"xla_backend_optimization_level": 0}  # compiles ~2x faster; same options both sides


def _batches(key: jax.Array) -> dict:
    k_obs, k_act, k_rew = jax.random.split(key, 3)
    return {
        "obs": jax.random.randint(k_obs, (K, B, T, 64, 64, 3), 0, 256).astype(jnp.uint8),
        "action": jnp.tanh(jax.random.normal(k_act, (K, B, T, A))),
        "reward": jax.random.normal(k_rew, (K, B, T)),
        "is_first": jnp.zeros((K, B, T), bool).at[..., 0].set(True),
    }


def test_vmapped_seeds_equal_single_seed_runs():
    cfg = planet.ModelConfig.tiny(depth=2, lr=3e-3)
    keys = seeds.root_keys(seed=5, num_seeds=K)
    assert jax.random.key_data(keys).shape[0] == K
    np.testing.assert_array_equal(
        jax.random.key_data(keys[2]), jax.random.key_data(jax.random.key(7))
    )
    init_keys = seeds.fold_in(keys, 3)
    init_k = jax.jit(seeds.init_train_states, static_argnums=(0, 2), compiler_options=FAST)
    init_1 = jax.jit(planet.init_train_state, static_argnums=(0, 2), compiler_options=FAST)
    step_k = jax.jit(seeds.train_step_seeds, static_argnums=1, compiler_options=FAST)
    step_1 = jax.jit(planet.train_step, static_argnums=1, compiler_options=FAST)

    states = init_k(cfg, init_keys, A)
    singles = [init_1(cfg, init_keys[k], A) for k in range(K)]
    losses_k, losses_1 = [], [[] for _ in range(K)]
    for update in range(3):
        batches = _batches(jax.random.key(100 + update))
        loss_keys = seeds.fold_in(seeds.fold_in(keys, 0), update)
        states, metrics = step_k(states, cfg, batches, loss_keys)
        assert metrics["loss"].shape == (K,)
        losses_k.append(np.asarray(metrics["loss"]))
        for k in range(K):
            batch = seeds.index(batches, k)
            singles[k], m = step_1(singles[k], cfg, batch, loss_keys[k])
            losses_1[k].append(float(m["loss"]))
    losses_k = np.stack(losses_k, axis=1)  # [K, updates]
    assert np.all(np.abs(np.diff(losses_k[:, 0])) > 1e-3)  # the seeds really differ
    for k in range(K):
        np.testing.assert_allclose(losses_k[k], losses_1[k], rtol=1e-5)
        got = jax.tree.leaves(seeds.index(states.params, k))
        ref = jax.tree.leaves(singles[k].params)
        for a, b in zip(got, ref, strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-4, atol=1e-5)
        assert int(states.step[k]) == int(singles[k].step) == 3

    summary = seeds.summarize({"loss": losses_k})
    assert summary["loss/seed_1"] == pytest.approx(losses_k[1].mean())
    per_seed = losses_k.astype(np.float64).mean(axis=1)
    assert summary["loss/mean"] == pytest.approx(per_seed.mean())
    assert summary["loss/std"] == pytest.approx(per_seed.std())
    with pytest.raises(ValueError, match="--num_seeds"):
        seeds.root_keys(0, 0)


def test_over_axis_of_one_is_the_function_itself_and_of_many_is_vmap():
    """One seed: exactly ``fn`` (bit for bit, where a size-1 vmap of the train step is not);
    several: ``jax.vmap``; shared (None) arguments pass through."""
    cfg = planet.ModelConfig.tiny(depth=2, lr=3e-3)
    key = jax.random.key(0)
    state = planet.init_train_state(cfg, key, A)
    batch = jax.tree.map(lambda x: x[0], _batches(jax.random.key(1)))

    def step(s, b, k):
        return planet.train_step(s, cfg, b, k)

    plain = jax.jit(step, compiler_options=FAST)(state, batch, key)
    one = seeds.over_axis(step, 1)
    stacked = seeds.stack([state])
    batches = jax.tree.map(lambda x: x[None], batch)
    out = jax.jit(one, compiler_options=FAST)(stacked, batches, key[None])
    for a, b in zip(jax.tree.leaves(plain), jax.tree.leaves(out), strict=True):
        assert b.shape == (1, *a.shape)
        np.testing.assert_array_equal(np.asarray(b[0]), np.asarray(a))

    add = seeds.over_axis(lambda x, y: x + y, 3, (0, None))
    x = jnp.arange(6.0).reshape(3, 2)
    np.testing.assert_array_equal(add(x, jnp.float32(10.0)), x + 10.0)
    np.testing.assert_array_equal(seeds.over_axis(jnp.sum, 1)(x[:1]), jnp.sum(x[0])[None])


def test_stack_adds_a_seed_axis():
    trees = [{"a": jnp.full((2,), float(k))} for k in range(3)]
    np.testing.assert_array_equal(seeds.stack(trees)["a"], [[0, 0], [1, 1], [2, 2]])
    one = seeds.stack([{"a": jnp.arange(3.0)}])  # one tree: its buffers are donated
    np.testing.assert_array_equal(one["a"], [[0.0, 1.0, 2.0]])

"""World Models C: the linear controller, the take_cover mapping, CMA-ES via evosax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.worldmodels import controllers

pytest.importorskip("evosax", reason="CMA-ES comes from evosax (extra 'worldmodels')")


def test_car_racing_controller_has_867_parameters():
    params = controllers.init(jax.random.key(0), z_dim=32, hidden=256, action_dim=3)
    flat, unflatten = controllers.flatten(params)
    assert flat.shape == (867,) and flat.dtype == jnp.float32
    assert controllers.num_params(32, 256, 3) == 867 == (32 + 256) * 3 + 3
    back = unflatten(flat)
    assert jax.tree.all(jax.tree.map(lambda a, b: bool(jnp.all(a == b)), back, params))


def test_act_is_tanh_of_affine_map():
    params = controllers.init(jax.random.key(1), z_dim=4, hidden=6, action_dim=2, scale=1.0)
    z = jax.random.normal(jax.random.key(2), (5, 4))
    h = jax.random.normal(jax.random.key(3), (5, 6))
    a = controllers.act(params, z, h)
    want = np.tanh(np.concatenate([z, h], -1) @ np.asarray(params["w"]) + np.asarray(params["b"]))
    assert a.shape == (5, 2) and a.dtype == jnp.float32
    np.testing.assert_allclose(a, want, rtol=1e-5, atol=1e-6)


def test_take_cover_mapping_thresholds_at_one_third():
    a = jnp.array([[-1.0], [-0.34], [-0.33], [0.0], [0.33], [0.34], [1.0]])
    got = controllers.take_cover_action(a)
    np.testing.assert_array_equal(got[:, 0], [-1, -1, 0, 0, 0, 1, 1])
    assert got.shape == a.shape and got.dtype == jnp.float32
    np.testing.assert_array_equal(controllers.map_action("continuous", a), a)
    with pytest.raises(ValueError, match="unknown action map"):
        controllers.map_action("steer", a)


def test_cma_es_finds_minimum_of_shifted_quadratic():
    target = jnp.array([1.5, -2.0, 0.5, 3.0, -1.0])
    scales = jnp.array([1.0, 10.0, 0.1, 3.0, 1.0])  # ill-conditioned: CMA must adapt

    def fitness(x):  # higher is better, maximum 0 at `target`
        return -jnp.sum(scales * (x - target) ** 2, axis=-1)

    es = controllers.Evolution.make({"x": jnp.zeros(5)}, population=16, sigma=1.0)
    assert es.population == 16

    @jax.jit
    def generation(state, key):
        k_ask, k_tell = jax.random.split(key)
        cand, state = es.ask(k_ask, state)
        state, _ = es.tell(k_tell, cand, fitness(cand), state)
        return state, jnp.max(fitness(cand))

    state = es.init(jax.random.key(0))
    state, best = jax.lax.scan(generation, state, jax.random.split(jax.random.key(1), 150))
    np.testing.assert_allclose(es.mean(state), target, atol=1e-3)
    flat, value = es.best(state)
    np.testing.assert_allclose(flat, target, atol=1e-3)
    assert float(value) > -1e-5 and float(best[0]) < -1.0
    assert es.unflatten(flat)["x"].shape == (5,)


def test_doom_controller_reads_z_c_h_without_bias_1088_parameters():
    # The authors' doomrnn C (config.py: input_size 576 + 512, output 1; model.py: no bias).
    params = controllers.init(
        jax.random.key(0), z_dim=64, hidden=512, action_dim=1, cell=True, bias=False
    )
    flat, _ = controllers.flatten(params)
    assert set(params) == {"w"} and flat.shape == (1088,)
    assert controllers.num_params(64, 512, 1, cell=True, bias=False) == 1088 == 64 + 2 * 512
    small = controllers.init(jax.random.key(1), 3, 5, 2, scale=1.0, cell=True, bias=False)
    z, c, h = (jax.random.normal(jax.random.key(i), (4, n)) for i, n in ((2, 3), (3, 5), (4, 5)))
    want = np.tanh(np.concatenate([z, c, h], -1) @ np.asarray(small["w"]))  # order z, c, h
    np.testing.assert_allclose(controllers.act(small, z, h, c), want, rtol=1e-5, atol=1e-6)


def test_v_model_only_controller_reads_z_alone_99_parameters():
    # The paper's "V model only" CarRacing agent: a = tanh(W z + b), 32 * 3 + 3 parameters.
    params = controllers.init(jax.random.key(0), z_dim=32, hidden=0, action_dim=3, scale=1.0)
    assert controllers.flatten(params)[0].shape == (99,) == (controllers.num_params(32, 0, 3),)
    z = jax.random.normal(jax.random.key(1), (4, 32))
    want = np.tanh(np.asarray(z) @ np.asarray(params["w"]) + np.asarray(params["b"]))
    np.testing.assert_allclose(controllers.act(params, z, None), want, rtol=1e-5, atol=1e-6)

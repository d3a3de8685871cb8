"""Tests for jaxplanet.nn.networks: pre/postprocessing, conv encoder/decoder, MLP, conv
factories."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxplanet.nn import networks


def key(seed: int) -> jax.Array:
    """RBG keys: they compile far faster than threefry on XLA:CPU; the code is key-agnostic."""
    return jax.random.key(seed, impl="rbg")


def _count(tree) -> int:
    return int(sum(np.prod(x.shape) for x in jax.tree.leaves(tree)))


def test_preprocess_bin_centres_and_range():
    obs = jnp.array([0, 7, 8, 100, 255], jnp.uint8)
    x = networks.preprocess(obs)
    assert x.dtype == jnp.float32
    # 5 bits: bin = value // 8 of 32 bins; no key -> bin centre (bin + 0.5) / 32 - 0.5.
    expected = (np.array([0, 0, 1, 12, 31]) + 0.5) / 32 - 0.5
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-7)
    assert -0.5 <= float(x.min()) and float(x.max()) <= 0.5


def test_preprocess_dequantisation_noise_stays_in_bin():
    obs = jnp.full((4096,), 100, jnp.uint8)  # bin 12 of 32
    x = np.asarray(networks.preprocess(obs, key(0)))
    lo, hi = 12 / 32 - 0.5, 13 / 32 - 0.5
    assert (x >= lo).all() and (x < hi).all()
    assert x.std() > 0.25 * (hi - lo)  # spread over the bin (uniform std = width / sqrt(12))
    np.testing.assert_allclose(x.mean(), (lo + hi) / 2, atol=0.02 * (hi - lo))


@pytest.mark.parametrize("bits", [5, 8])
def test_postprocess_inverts_preprocess(bits):
    obs = jnp.arange(256, dtype=jnp.uint8).reshape(4, 8, 8)[..., None].repeat(3, -1)
    cleared = np.asarray(obs) & np.uint8(256 - 2 ** (8 - bits))
    for k in (None, key(1)):
        out = networks.postprocess(networks.preprocess(obs, k, bits), bits)
        assert out.dtype == jnp.uint8
        np.testing.assert_array_equal(out, cleared)


def test_encoder_paper_shape_and_param_count():
    enc = networks.ConvEncoder(depth=32)
    x = jax.ShapeDtypeStruct((2, 5, 64, 64, 3), jnp.float32)
    params = jax.eval_shape(enc.init, key(0), x)
    out = jax.eval_shape(enc.apply, params, x)
    assert out.shape == (2, 5, 1024) and out.dtype == jnp.float32
    # 4 convs, kernel 4x4, channels 3 -> 32 -> 64 -> 128 -> 256, each weight + bias.
    chans = [3, 32, 64, 128, 256]
    expected = sum(4 * 4 * a * b + b for a, b in zip(chans[:-1], chans[1:], strict=True))
    assert expected == 690_144
    assert _count(params) == expected


def test_decoder_paper_shape_and_param_count():
    feat_size = 200 + 30
    dec = networks.ConvDecoder(depth=32)
    f = jax.ShapeDtypeStruct((2, 5, feat_size), jnp.float32)
    params = jax.eval_shape(dec.init, key(0), f)
    out = jax.eval_shape(dec.apply, params, f)
    assert out.shape == (2, 5, 64, 64, 3) and out.dtype == jnp.float32
    dense = feat_size * 1024 + 1024
    layers = [(5, 1024, 128), (5, 128, 64), (6, 64, 32), (6, 32, 3)]
    convs = sum(k * k * a * b + b for k, a, b in layers)
    assert dense + convs == 3_795_555
    assert _count(params) == dense + convs


def test_encoder_decoder_tiny_roundtrip_shapes():
    enc, dec = networks.ConvEncoder(depth=2), networks.ConvDecoder(depth=2)

    @jax.jit
    def run(x):
        e = enc.apply(enc.init(key(0), x), x)
        return e, dec.apply(dec.init(key(1), e), e)

    e, y = run(jnp.zeros((3, 64, 64, 3)))
    assert e.shape == (3, 64) and y.shape == (3, 64, 64, 3)


class _TaggedConv(nn.Conv):
    """Same math and parameters as nn.Conv; stands in for a custom-VJP implementation."""


class _TaggedConvT(nn.ConvTranspose):
    pass


def test_conv_impl_registry_swaps_without_changing_params():
    networks.register_conv_impl("tagged", _TaggedConv, _TaggedConvT)
    assert "tagged" in networks.conv_impls()
    assert isinstance(networks.conv(4, 4, 2, impl="tagged"), _TaggedConv)
    assert isinstance(networks.conv_transpose(4, 5, 2, impl="tagged"), _TaggedConvT)
    x = jax.random.uniform(key(0), (2, 64, 64, 3)) - 0.5
    base = networks.ConvEncoder(depth=2, impl="xla")
    tagged = networks.ConvEncoder(depth=2, impl="tagged")
    params = jax.jit(base.init)(key(1), x)
    assert jax.tree.structure(params) == jax.tree.structure(jax.eval_shape(tagged.init, key(1), x))
    out, out_tagged = jax.jit(lambda p: (base.apply(p, x), tagged.apply(p, x)))(params)
    np.testing.assert_allclose(out, out_tagged, rtol=1e-6)
    with pytest.raises(ValueError, match="unknown conv impl"):
        networks.conv(4, 4, 2, impl="nope")


def test_mlp_shapes_and_linear_output():
    mlp = networks.MLP((8, 8, 1))
    x = jax.random.normal(key(0), (5, 7, 3))
    params = jax.jit(mlp.init)(key(1), x)
    y = mlp.apply(params, x)
    assert y.shape == (5, 7, 1) and y.dtype == jnp.float32
    assert _count(params) == (3 * 8 + 8) + (8 * 8 + 8) + (8 * 1 + 1)
    assert float(y.min()) < 0 < float(y.max())  # no activation after the last layer


def test_diag_normal_matches_scipy():
    mean, std = np.array([0.3, -1.0, 2.0]), np.array([0.5, 1.5, 0.2])
    dist = networks.diag_normal(jnp.asarray(mean), jnp.asarray(std))
    x = np.array([0.1, 0.0, 2.1])
    ref = stats.multivariate_normal(mean, np.diag(std**2)).logpdf(x)
    np.testing.assert_allclose(dist.log_prob(jnp.asarray(x)), ref, rtol=1e-5)
    assert dist.event_shape == (3,)


@pytest.mark.parametrize(
    "chunk, lead",
    # Whole batch; slices of 2 frames over [2, 3] leading dims (2, 2, 2) and over 5 frames
    # (2, 2, 1: an uneven last slice).
    [(0, (3,)), (2, (2, 3)), (2, (5,))],
)
@pytest.mark.parametrize("module", [networks.ConvEncoder, networks.ConvDecoder])
def test_fast_convs_match_xla_values_and_gradients(module, chunk, lead):
    # flax's own convs on the whole batch against the fast convs, whole or in slices: values,
    # input and parameter gradients.
    xla, fast = module(depth=2, impl="xla"), module(depth=2, impl="fast", chunk=chunk)
    x = jax.random.uniform(key(2), (*lead, 64, 64, 3)) - 0.5
    if module is networks.ConvDecoder:
        x = jax.random.normal(key(2), (*lead, 10))
    params = jax.jit(xla.init)(key(3), x)
    assert jax.tree.structure(params) == jax.tree.structure(jax.eval_shape(fast.init, key(3), x))
    weights = jax.random.normal(key(5), jax.eval_shape(xla.apply, params, x).shape)

    def value_and_grads(model):
        fn = lambda p, x: jnp.sum(weights * jnp.tanh(model.apply(p, x)))
        return jax.jit(jax.value_and_grad(fn, argnums=(0, 1)))(params, x)

    (v_xla, g_xla), (v_fast, g_fast) = value_and_grads(xla), value_and_grads(fast)
    np.testing.assert_allclose(v_fast, v_xla, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(g_xla), jax.tree.leaves(g_fast), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_auto_conv_impl_resolves_by_backend():
    expected = "fast" if jax.default_backend() == "cpu" else "xla"
    assert networks.resolve_conv_impl("auto") == expected
    assert networks.resolve_conv_impl("xla") == "xla"
    assert {"xla", "fast"} <= set(networks.conv_impls())
    assert isinstance(networks.conv(4, 4, 2, impl="xla"), nn.Conv)


def test_in_chunks_calls_fn_on_consecutive_slices():
    seen = []

    def fn(x):
        seen.append(x.shape[0])
        return x * 2.0

    x = jnp.arange(7.0)
    np.testing.assert_array_equal(networks.in_chunks(fn, x, 3), 2.0 * np.arange(7.0))
    assert seen == [3, 3, 1]
    seen.clear()
    networks.in_chunks(fn, x, None)
    networks.in_chunks(fn, x, 7)
    assert seen == [7, 7]


def test_resolve_chunk_sizes():
    big, small = networks.AUTO_CHUNK_MIN_BYTES, 1
    assert networks.resolve_chunk(50, 2500, small) == 50
    assert networks.resolve_chunk(0, 2500, big) is None
    assert networks.resolve_chunk(3000, 2500, small) is None  # one slice: the whole batch
    auto = networks.AUTO_CHUNK_FRAMES if jax.default_backend() == "cpu" else None
    assert networks.resolve_chunk(-1, 2500, big // 2500 + 1) == auto  # just over the bound
    assert networks.resolve_chunk(-1, 2500, big // 2500) is None  # at the bound
    with pytest.raises(ValueError, match="chunk must be -1"):
        networks.resolve_chunk(-2, 10, small)


def test_sliced_encoder_under_vmap_matches_each_member():
    # The training loop vmaps the update over seeds; the slices are then taken inside the vmap.
    enc = networks.ConvEncoder(depth=2, impl="fast", chunk=2)
    x = jax.random.uniform(key(2), (2, 5, 64, 64, 3)) - 0.5  # [seeds, frames, ...]
    params = jax.vmap(enc.init)(jax.random.split(key(3), 2), x)
    batched = jax.jit(jax.vmap(enc.apply))(params, x)
    for k in range(2):
        member = jax.tree.map(lambda p, k=k: p[k], params)
        np.testing.assert_allclose(batched[k], enc.apply(member, x[k]), rtol=1e-5, atol=1e-6)

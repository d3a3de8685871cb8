"""Tests for jaxplanet/convs.py: the fast (transposed) convs equal flax in values and grads."""

import json

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import conv_grad
from jaxplanet.nn import convs

# PlaNet layers (depth 32): (input spatial, in channels, out channels, kernel), stride 2, VALID.
ENCODER = [(64, 3, 32, 4), (31, 32, 64, 4), (14, 64, 128, 4), (6, 128, 256, 4)]
DECODER = [(1, 1024, 128, 5), (5, 128, 64, 5), (13, 64, 32, 6), (30, 32, 3, 6)]


def _rel_err(a, b):
    return float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-30))


def _errors(ref: nn.Module, mine: nn.Module, x_shape, key=0) -> dict[str, float]:
    """Relative errors of `mine` against `ref` for the same (flax-made) params.

    Keys: "output" and "grad/<leaf path>" (grads wrt params and input); a shape mismatch counts
    as an infinite error.
    """
    kx, kp = jax.random.split(jax.random.key(key))
    x = jax.random.normal(kx, x_shape)
    params = jax.eval_shape(ref.init, kp, x)
    # Generic kernel values and a non-zero bias.
    leaves, treedef = jax.tree.flatten(params)
    keys = jax.random.split(kp, len(leaves))
    params = treedef.unflatten(
        [jax.random.normal(k, p.shape) / 8 for p, k in zip(leaves, keys, strict=True)]
    )

    def grads(module, p, x):
        # A non-linear loss so that the output gradient is not constant.
        def loss(p, x):
            y = module.apply(p, x)
            return jnp.sum(jnp.sin(y)), y

        return jax.grad(loss, argnums=(0, 1), has_aux=True)(p, x)

    def err(a, b):
        return _rel_err(a, b) if a.shape == b.shape else float("inf")

    both = jax.jit(lambda p, x: (grads(ref, p, x), grads(mine, p, x)))
    (g_ref, y_ref), (g, y) = both(params, x)
    errors = {"output": err(y, y_ref)}
    paths = jax.tree_util.tree_leaves_with_path(g_ref)
    for (path, b), a in zip(paths, jax.tree.leaves(g), strict=True):
        errors[f"grad/{jax.tree_util.keystr(path)}"] = err(a, b)
    return errors


TOL = 2e-5


@pytest.mark.parametrize("size,cin,cout,k", ENCODER)
def test_planet_encoder_layers_match_flax(size, cin, cout, k):
    errors = _errors(
        nn.Conv(cout, (k, k), (2, 2), "VALID"),
        convs.Conv(cout, (k, k), (2, 2), "VALID", impl="fast"),
        (2, size, size, cin),
    )
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("size,cin,cout,k", DECODER)
def test_planet_decoder_layers_match_flax(size, cin, cout, k):
    errors = _errors(
        nn.ConvTranspose(cout, (k, k), (2, 2), "VALID"),
        convs.ConvTranspose(cout, (k, k), (2, 2), "VALID", impl="fast"),
        (2, size, size, cin),
    )
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize(
    "kernel,strides,x_shape",
    [
        ((5, 3), (3, 2), (2, 17, 16, 5)),
        ((3, 3), (1, 1), (2, 9, 9, 5)),
        ((1, 1), (2, 2), (2, 7, 7, 3)),
    ],
)
def test_other_kernels_and_strides_match_flax(kernel, strides, x_shape):
    # Odd, non-square kernels and strides, stride 1 and kernel < stride take the same fast path.
    class Pair(nn.Module):
        conv: type
        conv_transpose: type
        impl: dict

        @nn.compact
        def __call__(self, x):
            y = self.conv(4, kernel, strides, "VALID", **self.impl)(x)
            return self.conv_transpose(6, kernel, strides, "VALID", **self.impl)(y[:, :4, :3])

    errors = _errors(
        Pair(nn.Conv, nn.ConvTranspose, {}),
        Pair(convs.Conv, convs.ConvTranspose, {"impl": "fast"}),
        x_shape,
    )
    assert max(errors.values()) < TOL, errors


def test_known_answer_transposed_conv():
    # One input pixel scatters the kernel: flax's VALID transposed conv puts kernel[k-1-m] at m.
    kernel = jnp.arange(2 * 3 * 1 * 1, dtype=jnp.float32).reshape(2, 3, 1, 1)
    x = jnp.zeros((1, 2, 2, 1)).at[0, 1, 0, 0].set(1.0)
    y = convs.conv_transpose(x, kernel, (2, 2), impl="fast")
    expected = np.zeros((1, 4, 5, 1), np.float32)
    expected[0, 2:4, 0:3, 0] = np.asarray(kernel[::-1, ::-1, 0, 0])
    np.testing.assert_array_equal(np.asarray(y), expected)


def test_params_interchangeable_with_flax():
    x = jnp.ones((1, 13, 13, 8))
    for ours, theirs in [
        (convs.Conv(6, (4, 4), (2, 2), "VALID"), nn.Conv(6, (4, 4), (2, 2), "VALID")),
        (
            convs.ConvTranspose(6, (6, 6), (2, 2), "VALID"),
            nn.ConvTranspose(6, (6, 6), (2, 2), "VALID"),
        ),
    ]:
        p_ours, p_theirs = ours.init(jax.random.key(3), x), theirs.init(jax.random.key(3), x)
        assert jax.tree.map(jnp.shape, p_ours) == jax.tree.map(jnp.shape, p_theirs)
        # Same initialisers, names and creation order: identical values from the same key.
        assert all(jax.tree.leaves(jax.tree.map(jnp.array_equal, p_ours, p_theirs)))
        assert set(p_ours["params"]) == {"kernel", "bias"}
        assert _rel_err(ours.apply(p_theirs, x), theirs.apply(p_theirs, x)) < 1e-5
    no_bias = convs.Conv(6, (4, 4), (2, 2), "VALID", use_bias=False).init(jax.random.key(0), x)
    assert set(no_bias["params"]) == {"kernel"}


def test_vmap_and_leading_batch_dims():
    key = jax.random.key(4)
    x = jax.random.normal(key, (3, 2, 14, 14, 8))  # [B, T, H, W, C]
    w = jax.random.normal(key, (4, 4, 8, 5))
    wt = jax.random.normal(key, (6, 6, 5, 8))

    def net(x, w, wt):
        return convs.conv_transpose(
            jax.nn.relu(convs.conv(x, w, 2, impl="fast")), wt, 2, impl="fast"
        )

    def net_xla(x, w, wt):
        return convs.conv_transpose(jax.nn.relu(convs.conv(x, w, 2)), wt, 2)

    y = net(x, w, wt)
    assert y.shape == (3, 2, 16, 16, 8)
    assert _rel_err(y, net_xla(x, w, wt)) < 2e-5
    assert _rel_err(jax.vmap(net, in_axes=(0, None, None))(x, w, wt), y) < 2e-5
    grad = jax.jit(jax.vmap(jax.grad(lambda x, w: jnp.sum(net(x, w, wt) ** 2), 1), (0, None)))
    grad_xla = jax.vmap(jax.grad(lambda x, w: jnp.sum(net_xla(x, w, wt) ** 2), 1), (0, None))
    assert _rel_err(grad(x, w), grad_xla(x, w)) < 2e-5
    # Unbatched [H, W, C] input, as flax allows.
    assert convs.conv(x[0, 0], w, 2, impl="fast").shape == (6, 6, 5)


def test_impl_selection_and_fallbacks():
    assert convs.resolve_impl("auto") == ("fast" if jax.default_backend() == "cpu" else "xla")
    assert convs.resolve_impl("xla") == "xla"
    with pytest.raises(ValueError, match="unknown conv impl"):
        convs.resolve_impl("cudnn")
    pair = convs.conv_impl("fast")
    x = jax.random.normal(jax.random.key(5), (2, 9, 9, 3))
    w = jax.random.normal(jax.random.key(6), (3, 3, 3, 4))
    assert _rel_err(pair.conv(x, w, 2), convs.conv_impl("xla").conv(x, w, 2)) < 1e-5
    # SAME padding is not on the fast path: it falls back to flax's lax call.
    same = convs.Conv(4, (3, 3), 2, "SAME", impl="fast")
    params = same.init(jax.random.key(0), x)
    assert _rel_err(same.apply(params, x), nn.Conv(4, (3, 3), 2, "SAME").apply(params, x)) < 1e-6


def test_fast_conv_under_the_update_compiler_options():
    # The training step's XLA options (Eigen convolutions on CPU) give the same conv.
    from jaxplanet.core import compile as compile_lib

    opts = compile_lib.compiler_options("update")
    x = jax.random.normal(jax.random.key(7), (2, 14, 14, 32))
    w = jax.random.normal(jax.random.key(8), (4, 4, 32, 64))
    f = jax.jit(lambda x, w: convs.conv(x, w, 2, impl="fast"), compiler_options=opts or None)
    assert _rel_err(f(x, w), convs.conv(x, w, 2)) < 1e-5


def test_benchmark_layer_gflop_hand_counts():
    # 2 x MACs x batch: a conv's k x k taps at each of its (size - k) // 2 + 1 squared outputs,
    # a transposed conv's at each of its size squared inputs.
    enc1 = conv_grad.layer_gflop("conv", 64, 3, 32, 4, 2)
    assert enc1 == pytest.approx(2 * 2 * 31**2 * 16 * 3 * 32 / 1e9)
    dec2 = conv_grad.layer_gflop("deconv", 5, 128, 64, 5, 2)
    assert dec2 == pytest.approx(2 * 2 * 25 * 25 * 128 * 64 / 1e9)
    total = sum(conv_grad.layer_gflop(*layer[1:], 1) for layer in conv_grad.LAYERS)
    assert total == pytest.approx(77_363_200 / 1e9)  # the paper encoder + decoder per frame


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_benchmark_tiny_run(tmp_path):
    out = tmp_path / "conv_grad.json"
    record = conv_grad.main(
        ["--batch", "2", "--repeats", "1", "--warmup", "0", "--peak_n", "128"]
        + ["--only", "dec2", "--variants", "xla,fast", "--json", str(out)]
    )
    assert json.loads(out.read_text())["batch"] == 2
    assert set(record["items"]) == {"dec2"}
    dec2 = record["items"]["dec2"]
    # Analytic FLOPs: 2 * batch * 5*5 inputs * 5*5 taps * 128 * 64.
    assert dec2["gflop_fwd"] == pytest.approx(2 * 2 * 25 * 25 * 128 * 64 / 1e9)
    for key in ["xla/fwd", "xla/fwd+bwd", "fast/fwd", "fast/fwd+bwd"]:
        assert dec2[key]["seconds_median"] > 0
        assert dec2[key]["fraction_of_peak"] > 0
    assert dec2["fast/fwd+bwd"]["gflop"] == pytest.approx(3 * dec2["gflop_fwd"])
    assert dec2["xla/fwd"]["speedup"] == pytest.approx(1.0)

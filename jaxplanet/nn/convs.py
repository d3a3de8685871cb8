"""Strided convolutions for the PlaNet encoder/decoder with fast gradients on XLA:CPU.

PlaNet (Hafner et al., 2019, "Learning Latent Dynamics for Planning from Pixels") encodes 64x64
frames with four 4x4 stride-2 VALID convolutions and decodes them with four stride-2 VALID
transposed convolutions (kernels 5, 5, 6, 6). On XLA:CPU (jax 0.10) the autodiff gradients of these
layers are slow: the input gradient of a strided conv and the forward pass of a transposed conv are
lowered to base-dilated ("lhs-dilated") convolutions that compute mostly zeros, and the kernel
gradient of a transposed conv becomes a padded correlation that runs at ~1 GFLOP/s.

``impl="fast"`` computes the same functions (same parameters, same results to fp32 rounding) from
three primitives that XLA:CPU runs well, wired with ``jax.custom_vjp`` so the backward pass uses
them too:

* ``_strided``: the plain strided VALID convolution (a good forward kernel);
* ``_phase_transpose``: a stride-s transposed convolution as ONE stride-1 convolution with
  ``s*s*features`` output channels (one output channel block per output phase, kernel
  ``ceil(k/s)``) followed by depth-to-space -- no multiplications by inserted zeros;
* ``_kernel_grad``: the kernel gradient of a strided VALID convolution.

Conv:          y = strided(x, W);      dx = phase_transpose(dy, W~);  dW = kernel_grad(x, dy)
ConvTranspose: y = phase_transpose(x, W); dx = strided(dy, W~);       dW = kernel_grad(dy, x)~
with ``W~`` = W spatially flipped with in/out channels swapped. A transposed conv on a 1x1 input
(the decoder's first layer) is a single matmul.

By default XLA:CPU hands to YNNPACK every fp32 convolution that has no base dilation and an
output no larger than its input; YNNPACK runs these shapes 1.5-4x slower than XLA's own (Eigen)
convolution (padded "full" and base-dilated convolutions already go to Eigen). For the full
speed-up also compile the training step with
``jax.jit(..., compiler_options=jaxplanet.core.compile.compiler_options("update"))`` (as the PlaNet
agent does): it keeps YNNPACK for dots and reductions and only moves convolutions to Eigen.
``benchmarks/conv_grad.py`` measures every layer both ways.

On GPU/TPU keep ``impl="xla"`` (cuDNN / TPU convolutions are fast); ``impl="auto"`` picks "fast"
only on the CPU backend.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

__all__ = [
    "Conv",
    "ConvImpl",
    "ConvTranspose",
    "IMPLS",
    "conv",
    "conv_impl",
    "conv_transpose",
    "resolve_impl",
]

Array = jax.Array
_DN = ("NHWC", "HWIO", "NHWC")
IMPLS = ("xla", "fast", "auto")


def resolve_impl(impl: str) -> str:
    """Maps ``"auto"`` to ``"fast"`` on the CPU backend and ``"xla"`` elsewhere."""
    if impl not in IMPLS:
        raise ValueError(f"unknown conv impl {impl!r}; expected one of {IMPLS}")
    if impl == "auto":
        return "fast" if jax.default_backend() == "cpu" else "xla"
    return impl


def _pair(v: int | Sequence[int]) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _flipswap(w: Array) -> Array:
    """[kh, kw, I, O] -> [kh, kw, O, I], spatially reversed (the transposed-conv kernel)."""
    return jnp.swapaxes(w[::-1, ::-1], 2, 3)


def _strided(x: Array, w: Array, strides: tuple[int, int]) -> Array:
    return lax.conv_general_dilated(x, w, strides, "VALID", dimension_numbers=_DN)


def _phase_transpose(x: Array, w: Array, strides: tuple[int, int]) -> Array:
    """``lax.conv_transpose(x, w, strides, "VALID")`` (flax semantics) by output phases.

    Flax's VALID transposed conv computes out[s*i + m] += x[i] @ w[k-1-m]. Writing
    m = s*j + r, output phase r is a stride-1 correlation of x (zero-padded by J-1) with the
    kernel taps w'[s*t + s-1-r], t < J = ceil(k/s), where w' is w zero-padded at the front to
    J*s taps. All s*s phases share the input, so they are one convolution with s*s*O outputs.

    Args:
      x: [N, H, W, C].
      w: [kh, kw, C, O].
      strides: (sh, sw).

    Returns:
      [N, sh*H + max(kh-sh, 0), sw*W + max(kw-sw, 0), O].
    """
    n, h, wd, c = x.shape
    kh, kw, _, o = w.shape
    sh, sw = strides
    jh, jw = -(-kh // sh), -(-kw // sw)
    w = jnp.pad(w, ((jh * sh - kh, 0), (jw * sw - kw, 0), (0, 0), (0, 0)))
    u = w.reshape(jh, sh, jw, sw, c, o)[:, ::-1, :, ::-1]  # [t_h, r_h, t_w, r_w, C, O]
    u = u.transpose(0, 2, 4, 1, 3, 5).reshape(jh, jw, c, sh * sw * o)
    pad = ((jh - 1, jh - 1), (jw - 1, jw - 1))
    y = lax.conv_general_dilated(x, u, (1, 1), pad, dimension_numbers=_DN)
    p, q = y.shape[1:3]
    y = y.reshape(n, p, q, sh, sw, o).transpose(0, 1, 3, 2, 4, 5).reshape(n, p * sh, q * sw, o)
    return y[:, : sh * h + max(kh - sh, 0), : sw * wd + max(kw - sw, 0)]


def _kernel_grad(x: Array, g: Array, ksize: tuple[int, int], strides: tuple[int, int]) -> Array:
    """d/dw of <strided(x, w), g>: [kh, kw, C, O] from x [N, H, W, C] and g [N, Ho, Wo, O]."""
    w0 = jnp.zeros(ksize + (x.shape[-1], g.shape[-1]), x.dtype)
    return jax.vjp(lambda w: _strided(x, w, strides), w0)[1](g)[0]


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _conv_fast(x: Array, w: Array, strides: tuple[int, int]) -> Array:
    return _strided(x, w, strides)


def _conv_fast_fwd(x, w, strides):
    return _strided(x, w, strides), (x, w)


def _conv_fast_bwd(strides, res, g):
    x, w = res
    h, wd = x.shape[1:3]
    dx = _phase_transpose(g, _flipswap(w), strides)[:, :h, :wd]
    # Trailing rows/columns that no output window reads get zero gradient.
    dx = jnp.pad(dx, ((0, 0), (0, h - dx.shape[1]), (0, wd - dx.shape[2]), (0, 0)))
    return dx, _kernel_grad(x, g, w.shape[:2], strides)


_conv_fast.defvjp(_conv_fast_fwd, _conv_fast_bwd)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def _transpose_fast(x: Array, w: Array, strides: tuple[int, int]) -> Array:
    return _phase_transpose(x, w, strides)


def _transpose_fast_fwd(x, w, strides):
    return _phase_transpose(x, w, strides), (x, w)


def _transpose_fast_bwd(strides, res, g):
    x, w = res
    dx = _strided(g, _flipswap(w), strides)
    return dx, _flipswap(_kernel_grad(g, x, w.shape[:2], strides))


_transpose_fast.defvjp(_transpose_fast_fwd, _transpose_fast_bwd)


def _is_valid(padding: Any) -> bool:
    if isinstance(padding, str):
        return padding.upper() == "VALID"
    return all(tuple(p) == (0, 0) for p in padding)


def _to_4d(x: Array) -> tuple[Array, tuple[int, ...]]:
    """Flattens leading batch dims of [..., H, W, C] into one (as flax does)."""
    batch = x.shape[:-3]
    return x.reshape((-1,) + x.shape[-3:]), batch


def conv(
    x: Array,
    kernel: Array,
    strides: int | Sequence[int] = 1,
    padding: str | Sequence[tuple[int, int]] = "VALID",
    *,
    impl: str = "xla",
) -> Array:
    """2-D convolution with ``flax.linen.Conv`` semantics (no bias).

    Args:
      x: [..., H, W, C] (any number of leading batch dims).
      kernel: [kh, kw, C, O] (HWIO).
      strides: int or (sh, sw).
      padding: "VALID", "SAME" or explicit pairs; only "VALID" takes the fast path.
      impl: "xla" (lax.conv_general_dilated), "fast" (custom VJP) or "auto".

    Returns:
      [..., Ho, Wo, O].
    """
    strides = _pair(strides)
    x4, batch = _to_4d(x)
    if resolve_impl(impl) == "fast" and _is_valid(padding):
        y = _conv_fast(x4, kernel, strides)
    else:
        y = lax.conv_general_dilated(x4, kernel, strides, padding, dimension_numbers=_DN)
    return y.reshape(batch + y.shape[1:])


def conv_transpose(
    x: Array,
    kernel: Array,
    strides: int | Sequence[int] = 1,
    padding: str | Sequence[tuple[int, int]] = "VALID",
    *,
    impl: str = "xla",
) -> Array:
    """Transposed conv with ``flax.linen.ConvTranspose`` semantics (transpose_kernel=False).

    Args:
      x: [..., H, W, C].
      kernel: [kh, kw, C, O] (HWIO).
      strides: int or (sh, sw).
      padding: "VALID", "SAME" or explicit pairs; only "VALID" takes the fast path.
      impl: "xla" (lax.conv_transpose), "fast" (custom VJP) or "auto".

    Returns:
      [..., sh*H + max(kh-sh, 0), sw*W + max(kw-sw, 0), O] for "VALID".
    """
    strides = _pair(strides)
    x4, batch = _to_4d(x)
    kh, kw = kernel.shape[:2]
    if resolve_impl(impl) != "fast" or not _is_valid(padding):
        y = lax.conv_transpose(x4, kernel, strides, padding, dimension_numbers=_DN)
    elif x4.shape[1:3] == (1, 1) and kh >= strides[0] and kw >= strides[1]:
        # A 1x1 input scatters one kernel copy: out[m] = x @ kernel[k-1-m], a single matmul.
        y = jnp.einsum("nc,hwco->nhwo", x4[:, 0, 0], kernel[::-1, ::-1])
    else:
        y = _transpose_fast(x4, kernel, strides)
    return y.reshape(batch + y.shape[1:])


class ConvImpl(NamedTuple):
    """A pair of conv functions with the signatures of ``conv`` / ``conv_transpose``."""

    conv: Callable[..., Array]
    conv_transpose: Callable[..., Array]


def conv_impl(name: str) -> ConvImpl:
    """Returns ``conv`` and ``conv_transpose`` bound to implementation ``name``."""
    name = resolve_impl(name)
    return ConvImpl(
        functools.partial(conv, impl=name), functools.partial(conv_transpose, impl=name)
    )


class _ConvBase(nn.Module):
    features: int
    kernel_size: int | Sequence[int]
    strides: int | Sequence[int] = 1
    padding: Any = "VALID"
    use_bias: bool = True
    impl: str = "auto"
    dtype: Any = None
    param_dtype: Any = jnp.float32
    kernel_init: Callable[..., Array] = nn.initializers.lecun_normal()
    bias_init: Callable[..., Array] = nn.initializers.zeros_init()

    def _params(self, in_features: int) -> tuple[Array, Array | None]:
        # Same names, shapes and creation order as flax.linen.Conv / ConvTranspose.
        shape = _pair(self.kernel_size) + (in_features, self.features)
        kernel = self.param("kernel", self.kernel_init, shape, self.param_dtype)
        bias = None
        if self.use_bias:
            bias = self.param("bias", self.bias_init, (self.features,), self.param_dtype)
        return kernel, bias

    def _promote(self, *arrays: Array | None) -> list[Array | None]:
        # As flax's promote_dtype: compute in ``dtype``, else the inputs' common dtype.
        dtype = self.dtype or jnp.result_type(*[a for a in arrays if a is not None])
        return [None if a is None else jnp.asarray(a, dtype) for a in arrays]


class Conv(_ConvBase):
    """Drop-in for ``flax.linen.Conv`` (2-D, NHWC) with a selectable ``impl``.

    Note: the default padding here is "VALID" (flax's is "SAME"); pass it explicitly.
    """

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """[..., H, W, C] -> [..., Ho, Wo, features]."""
        x, kernel, bias = self._promote(x, *self._params(x.shape[-1]))
        y = conv(x, kernel, self.strides, self.padding, impl=self.impl)
        return y if bias is None else y + bias


class ConvTranspose(_ConvBase):
    """Drop-in for ``flax.linen.ConvTranspose`` (2-D, NHWC, transpose_kernel=False)."""

    @nn.compact
    def __call__(self, x: Array) -> Array:
        """[..., H, W, C] -> [..., Ho, Wo, features]."""
        x, kernel, bias = self._promote(x, *self._params(x.shape[-1]))
        y = conv_transpose(x, kernel, self.strides, self.padding, impl=self.impl)
        return y if bias is None else y + bias

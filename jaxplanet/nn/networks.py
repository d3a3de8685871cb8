"""Networks for 64x64x3 pixel world models: image pre/postprocessing, conv encoder/decoder, MLP.

The architectures are those of PlaNet (Hafner et al., "Learning Latent Dynamics for Planning
from Pixels", ICML 2019), which reuses the conv encoder/decoder of Ha & Schmidhuber's
"World Models" (2018):

* encoder: 4 convs, kernel 4, stride 2, VALID, depths (1, 2, 4, 8) * depth, ReLU;
  64x64x3 -> 31 -> 14 -> 6 -> 2x2x(8 * depth), flattened (1024 for depth 32);
* decoder: linear dense to 32 * depth, reshaped to [1, 1, 32 * depth], 4 transposed convs with
  kernels 5, 5, 6, 6, stride 2, VALID, depths (4, 2, 1) * depth then 3 channels:
  1 -> 5 -> 13 -> 30 -> 64. The output is the mean of a unit-variance Gaussian over pixels.

Conv layers are built through the factories :func:`conv` and :func:`conv_transpose`, selected by
a string ``impl``; :func:`register_conv_impl` lets another implementation be swapped in by config
without touching model code. A registered implementation must accept the ``flax.linen.Conv``
constructor arguments used here and create the same parameters (``kernel`` [kh, kw, in, out],
``bias`` [out]) so checkpoints stay interchangeable. Two are built in:

* ``"xla"``: ``flax.linen.Conv`` / ``ConvTranspose`` (best with cuDNN / TPU convolutions);
* ``"fast"``: :mod:`jaxplanet.nn.convs` (same functions and parameters, custom VJPs that run
  well on XLA:CPU, whose autodiff gradients of strided (transposed) convs are very slow;
  compile with ``jaxplanet.core.compile.compiler_options("update")`` for its full speed);
* ``"auto"`` (a name, not a registry entry): ``"fast"`` on the CPU backend, else ``"xla"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxplanet.nn import convs

__all__ = [
    "ConvDecoder",
    "ConvEncoder",
    "MLP",
    "check_chunk",
    "conv",
    "conv_impls",
    "conv_transpose",
    "diag_normal",
    "in_chunks",
    "postprocess",
    "preprocess",
    "register_conv_impl",
    "resolve_chunk",
    "resolve_conv_impl",
]

_CONV_IMPLS: dict[str, tuple[Callable[..., nn.Module], Callable[..., nn.Module]]] = {
    "xla": (nn.Conv, nn.ConvTranspose),
    "fast": (
        functools.partial(convs.Conv, impl="fast"),
        functools.partial(convs.ConvTranspose, impl="fast"),
    ),
}


def register_conv_impl(
    name: str, conv_cls: Callable[..., nn.Module], conv_transpose_cls: Callable[..., nn.Module]
) -> None:
    """Register a conv / transposed-conv implementation selectable by ``impl=name``.

    Args:
      name: the key used in configs (``ModelConfig.conv_impl``).
      conv_cls: constructor with the signature of ``flax.linen.Conv``.
      conv_transpose_cls: constructor with the signature of ``flax.linen.ConvTranspose``.
    """
    _CONV_IMPLS[name] = (conv_cls, conv_transpose_cls)


def conv_impls() -> list[str]:
    """Names of the registered conv implementations (``"auto"`` also accepted)."""
    return sorted(_CONV_IMPLS)


def resolve_conv_impl(impl: str) -> str:
    """``"auto"`` -> ``"fast"`` on the CPU backend, else ``"xla"``; other names unchanged."""
    if impl == "auto":
        return convs.resolve_impl("auto")
    return impl


def _impl(impl: str) -> tuple[Callable[..., nn.Module], Callable[..., nn.Module]]:
    impl = resolve_conv_impl(impl)
    if impl not in _CONV_IMPLS:
        raise ValueError(f"unknown conv impl {impl!r}; registered: {conv_impls()}")
    return _CONV_IMPLS[impl]


def conv(
    features: int,
    kernel: int,
    stride: int,
    *,
    impl: str = "auto",
    dtype: Any = None,
    name: str | None = None,
) -> nn.Module:
    """A VALID-padded square conv layer [N, H, W, C] -> [N, H', W', features]."""
    return _square(_impl(impl)[0], features, kernel, stride, dtype, name)


def conv_transpose(
    features: int,
    kernel: int,
    stride: int,
    *,
    impl: str = "auto",
    dtype: Any = None,
    name: str | None = None,
) -> nn.Module:
    """A VALID-padded square transposed conv: H' = (H - 1) * stride + kernel (kernel >= stride)."""
    return _square(_impl(impl)[1], features, kernel, stride, dtype, name)


def _square(cls: Any, features: int, kernel: int, stride: int, dtype: Any, name: Any) -> nn.Module:
    """``cls`` (a conv or transposed conv) with a square kernel and stride, VALID padding."""
    return cls(
        features,
        (kernel, kernel),
        strides=(stride, stride),
        padding="VALID",
        dtype=dtype,
        name=name,
    )


def preprocess(obs: jax.Array, key: jax.Array | None = None, bits: int = 5) -> jax.Array:
    """uint8 images -> float32 in [-0.5, 0.5], quantised to ``bits`` bits (PlaNet).

    Each pixel falls in one of 2**bits bins. With ``key`` the value is spread uniformly over its
    bin (dequantisation noise, as in PlaNet training); without a key it is the bin centre, i.e.
    the mean of the noisy version, so evaluation is deterministic.

    Args:
      obs: uint8 [..., H, W, C].
      key: optional PRNG key for the dequantisation noise.
      bits: bit depth kept (1..8).

    Returns:
      float32 [..., H, W, C] in [-0.5, 0.5].
    """
    bins = 2**bits
    x = jnp.floor(obs.astype(jnp.float32) / 2 ** (8 - bits))
    if key is None:
        x = x + 0.5
    else:
        x = x + jax.random.uniform(key, x.shape, jnp.float32)
    return x / bins - 0.5


def postprocess(x: jax.Array, bits: int = 5) -> jax.Array:
    """float images in [-0.5, 0.5] -> uint8 (for videos); inverse of :func:`preprocess`.

    ``postprocess(preprocess(obs))`` equals ``obs`` with its low ``8 - bits`` bits cleared.

    Args:
      x: float [..., H, W, C]; values outside [-0.5, 0.5] are clipped.
      bits: bit depth of the quantisation.

    Returns:
      uint8 [..., H, W, C].
    """
    bins = 2**bits
    q = jnp.clip(jnp.floor((x.astype(jnp.float32) + 0.5) * bins), 0, bins - 1)
    return (q * 2 ** (8 - bits)).astype(jnp.uint8)


def diag_normal(mean: jax.Array, std: jax.Array) -> distrax.MultivariateNormalDiag:
    """Diagonal Gaussian over the last axis: mean, std [..., D] -> event shape [D]."""
    return distrax.MultivariateNormalDiag(mean, std)


# The "auto" slicing of the conv encoder/decoder (``chunk=-1``), measured on a 2-core CPU with a
# 32 MiB L3 cache (`benchmarks.train`, paper size, 2,500 frames): slices of 50 frames took the
# training step from 6.4-6.5 s to 5.3-5.5 s; 25, 100 and 250 frames per slice were no better. The
# kernel gradients need each activation transposed (batch dimension innermost), and XLA:CPU's
# transposes of a whole batch's activation (300 MB at depth 32) ran at ~1 GB/s (2 s of the 6.4 s);
# a slice's stay in cache. At the quick size (400 frames, depth 8: 12 MiB) slicing changed nothing.
AUTO_CHUNK_FRAMES = 50
AUTO_CHUNK_MIN_BYTES = 32 * 2**20


def check_chunk(chunk: int, name: str = "chunk") -> int:
    """Returns ``chunk`` if it is -1 (auto), 0 (whole batch) or > 0 frames; else ValueError."""
    if chunk < -1:
        raise ValueError(f"{name} must be -1 (auto), 0 (whole batch) or > 0 frames; got {chunk}")
    return chunk


def resolve_chunk(chunk: int, frames: int, bytes_per_frame: int) -> int | None:
    """Frames per slice for `in_chunks`, or None for the whole batch.

    Args:
      chunk: > 0: that many frames; 0: the whole batch; -1 ("auto"): `AUTO_CHUNK_FRAMES` on the
        CPU backend when the batch's largest activation (``frames * bytes_per_frame``) exceeds
        `AUTO_CHUNK_MIN_BYTES`, else the whole batch.
      frames: frames in the batch.
      bytes_per_frame: bytes of one frame's largest activation.
    """
    if check_chunk(chunk) == -1:
        big = frames * bytes_per_frame > AUTO_CHUNK_MIN_BYTES
        chunk = AUTO_CHUNK_FRAMES if big and jax.default_backend() == "cpu" else 0
    return chunk if 0 < chunk < frames else None


def in_chunks(fn: Callable[[jax.Array], jax.Array], x: jax.Array, size: int | None) -> jax.Array:
    """``fn(x)`` computed on consecutive slices of ``size`` rows of ``x``, concatenated.

    ``fn`` must treat rows independently; the result equals ``fn(x)`` up to float rounding (the
    kernel gradients then sum over slices). The slices are unrolled in the program (a
    ``lax.map`` over them ran 40x slower on XLA:CPU). ``size`` None calls ``fn(x)`` once.

    Args:
      fn: [n, ...] -> [n, ...].
      x: [N, ...].
      size: rows per slice (the last slice may be shorter), or None.
    """
    n = x.shape[0]
    if size is None or size >= n:
        return fn(x)
    return jnp.concatenate([fn(x[i : i + size]) for i in range(0, n, size)])


class ConvEncoder(nn.Module):
    """PlaNet / World Models conv encoder: [..., 64, 64, 3] -> [..., 32 * depth].

    Attributes:
      depth: channel multiplier (32 in the paper: 32/64/128/256 channels, 1024 outputs).
      impl: conv implementation ("auto", "xla", "fast" or a registered name).
      dtype: compute dtype (parameters stay float32); the output is float32.
      chunk: frames per slice the convs run on (`resolve_chunk`: 0 whole batch, -1 auto).
    """

    depth: int = 32
    impl: str = "auto"
    dtype: Any = jnp.float32
    chunk: int = 0

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        batch = x.shape[:-3]
        x = x.reshape((-1,) + x.shape[-3:]).astype(self.dtype)
        layers = [
            conv(self.depth * mult, 4, 2, impl=self.impl, dtype=self.dtype, name=f"conv{i}")
            for i, mult in enumerate((1, 2, 4, 8))
        ]

        def chain(x):
            for layer in layers:
                x = nn.relu(layer(x))
            return x

        size = (64 - 4) // 2 + 1  # the first layer's output, the largest activation
        per_frame = size * size * self.depth * jnp.dtype(self.dtype).itemsize
        x = in_chunks(chain, x, resolve_chunk(self.chunk, x.shape[0], per_frame))
        return x.reshape(batch + (-1,)).astype(jnp.float32)


class ConvDecoder(nn.Module):
    """PlaNet / World Models transposed-conv decoder: [..., F] -> image mean [..., 64, 64, 3].

    The image model is a Gaussian with this mean and unit variance.

    Attributes:
      depth: channel multiplier (32 in the paper: dense to 1024, then 128/64/32/3 channels).
      channels: output channels.
      impl: conv implementation ("auto", "xla", "fast" or a registered name).
      dtype: compute dtype; the output is float32.
      chunk: frames per slice the transposed convs after the first run on (`resolve_chunk`:
        0 whole batch, -1 auto); the dense layer and the first (a matmul) see the whole batch.
    """

    depth: int = 32
    channels: int = 3
    impl: str = "auto"
    dtype: Any = jnp.float32
    chunk: int = 0

    @nn.compact
    def __call__(self, feat: jax.Array) -> jax.Array:
        batch = feat.shape[:-1]
        dense = nn.Dense(32 * self.depth, dtype=self.dtype, name="dense")
        specs = ((4 * self.depth, 5), (2 * self.depth, 5), (self.depth, 6), (self.channels, 6))
        layers = [
            conv_transpose(features, kernel, 2, impl=self.impl, dtype=self.dtype, name=f"deconv{i}")
            for i, (features, kernel) in enumerate(specs)
        ]

        def chain(x):
            for layer in layers[1:-1]:
                x = nn.relu(layer(x))
            return layers[-1](x)

        x = dense(feat.reshape((-1, feat.shape[-1])).astype(self.dtype))
        x = nn.relu(layers[0](x.reshape((-1, 1, 1, 32 * self.depth))))
        per_frame = 30 * 30 * self.depth * jnp.dtype(self.dtype).itemsize  # third layer's output
        x = in_chunks(chain, x, resolve_chunk(self.chunk, x.shape[0], per_frame))
        return x.reshape(batch + x.shape[1:]).astype(jnp.float32)


class MLP(nn.Module):
    """Dense layers with an activation between them; the last layer is linear.

    Attributes:
      features: output sizes of each layer, e.g. (200, 200, 1).
      act: activation after every layer but the last.
      dtype: compute dtype; the output is float32.
    """

    features: Sequence[int]
    act: Callable[[jax.Array], jax.Array] = nn.relu
    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.astype(self.dtype)
        for i, size in enumerate(self.features):
            x = nn.Dense(size, dtype=self.dtype, name=f"dense{i}")(x)
            if i < len(self.features) - 1:
                x = self.act(x)
        return x.astype(jnp.float32)

"""Conv-gradient micro-benchmark of the PlaNet encoder/decoder (Hafner et al., 2019).

Usage: ``python -m benchmarks.conv_grad [--batch 2500] [--json OUT] [--repeats 5]``

For every encoder/decoder layer and for the whole encoder and decoder, times the forward pass
(``fwd``) and ``value_and_grad`` of a scalar loss with respect to params AND input (``fwd+bwd``)
for several variants, interleaved round by round (one matmul peak, then each variant) so that all
variants of an item see the same machine conditions:

* ``xla``: flax/lax convolutions (``jaxplanet.nn.convs`` impl "xla" ==
  flax.linen.Conv/ConvTranspose);
* ``fast``: ``jaxplanet.nn.convs`` impl "fast" (custom VJPs, phase-decomposed transposed convs);
* ``...+opts``: the same compiled with the training step's XLA options,
  ``jaxplanet.core.compile.compiler_options("update")``.

FLOPs are analytic: 2 x multiply-accumulates of the convolutions (and of the decoder's dense
layer), transposed convs counted without the zeros of dilation, bias/ReLU not counted;
``fwd+bwd`` = 3 x ``fwd`` (forward, input gradient, weight gradient). ``fraction_of_peak`` divides
by the fp32 matmul peak measured in the same process (``benchmarks.common.matmul_peak``);
``speedup`` is the baseline's median seconds over the variant's (same item, same rounds).
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from benchmarks import common
from jaxplanet.core import compile as compile_lib
from jaxplanet.nn import convs

# (name, kind, input spatial, in channels, out channels, kernel): PlaNet at depth 32.
LAYERS = (
    ("enc1", "conv", 64, 3, 32, 4),
    ("enc2", "conv", 31, 32, 64, 4),
    ("enc3", "conv", 14, 64, 128, 4),
    ("enc4", "conv", 6, 128, 256, 4),
    ("dec1", "deconv", 1, 1024, 128, 5),
    ("dec2", "deconv", 5, 128, 64, 5),
    ("dec3", "deconv", 13, 64, 32, 6),
    ("dec4", "deconv", 30, 32, 3, 6),
)
FEATURES = 230  # decoder input: deterministic (200) + stochastic (30) RSSM state
VARIANTS = ("xla", "fast", "xla+opts", "fast+opts")
BASELINE = "xla"


def layer_gflop(kind: str, size: int, cin: int, cout: int, k: int, batch: int) -> float:
    """Analytic forward GFLOP (2 x MACs) of one stride-2 VALID layer."""
    positions = ((size - k) // 2 + 1) ** 2 if kind == "conv" else size**2
    return 2.0 * batch * positions * k * k * cin * cout / 1e9


class Encoder(nn.Module):
    """PlaNet encoder: [N, 64, 64, 3] -> [N, 1024] (4 convs k4 s2, ReLU)."""

    impl: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for _, _, _, _, cout, k in LAYERS[:4]:
            x = nn.relu(convs.Conv(cout, k, 2, "VALID", impl=self.impl)(x))
        return x.reshape(x.shape[0], -1)


class Decoder(nn.Module):
    """PlaNet decoder: [N, 230] -> [N, 64, 64, 3] (dense, 4 transposed convs k5,5,6,6 s2)."""

    impl: str

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        x = nn.Dense(1024)(h).reshape(h.shape[0], 1, 1, 1024)
        for i, (_, _, _, _, cout, k) in enumerate(LAYERS[4:]):
            x = convs.ConvTranspose(cout, k, 2, "VALID", impl=self.impl)(x)
            x = nn.relu(x) if i < 3 else x
        return x


def _layer_module(impl: str, kind: str, cout: int, k: int) -> nn.Module:
    cls = convs.Conv if kind == "conv" else convs.ConvTranspose
    return cls(cout, k, 2, "VALID", impl=impl)


def _items(batch: int, only: Sequence[str]) -> list[tuple[str, float, Callable, tuple]]:
    """(name, forward GFLOP, impl -> Module, input shape without the batch dim)."""
    items = []
    for name, kind, size, cin, cout, k in LAYERS:
        factory = functools.partial(_layer_module, kind=kind, cout=cout, k=k)
        items.append(
            (name, layer_gflop(kind, size, cin, cout, k, batch), factory, (size, size, cin))
        )
    enc = sum(layer_gflop(*layer[1:], batch) for layer in LAYERS[:4])
    dec = sum(layer_gflop(*layer[1:], batch) for layer in LAYERS[4:])
    dec += 2.0 * batch * FEATURES * 1024 / 1e9  # the dense layer
    items.append(("encoder", enc, Encoder, (64, 64, 3)))
    items.append(("decoder", dec, Decoder, (FEATURES,)))
    return [item for item in items if not only or item[0] in only]


def _compiled(module: nn.Module, x: jax.Array, opts: dict) -> tuple[Callable, Callable, Any]:
    """(forward, value_and_grad wrt params and input), compiled ahead of time, and params."""
    params = module.init(jax.random.key(1), x)

    def loss(p, x):
        y = module.apply(p, x)
        return jnp.mean(jnp.square(y - 0.1))

    fwd = jax.jit(module.apply, compiler_options=opts)
    fwd_bwd = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), compiler_options=opts)
    return fwd.lower(params, x).compile(), fwd_bwd.lower(params, x).compile(), params


def _interleaved(fns: dict[str, tuple[Callable, tuple]], repeats: int, warmup: int, peak_n: int):
    for fn, args in fns.values():
        for _ in range(warmup):
            common.block(fn(*args))
    seconds: dict[str, list[float]] = {name: [] for name in fns}
    peaks = []
    for _ in range(repeats):
        peaks.append(common.matmul_peak(peak_n, repeats=2))
        for name, (fn, args) in fns.items():
            start = time.perf_counter()
            common.block(fn(*args))
            seconds[name].append(time.perf_counter() - start)
    return seconds, peaks


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the benchmark; returns (and optionally writes) the result record."""
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=2500, help="frames (PlaNet: 50 x 50)")
    parser.add_argument("--only", default="", help="comma-separated items, e.g. enc2,decoder")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="subset of " + str(VARIANTS))
    parser.add_argument("--passes", default="fwd,fwd+bwd", help="fwd and/or fwd+bwd")
    args = common.parse(parser, argv)
    variants = [v for v in args.variants.split(",") if v]
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        raise ValueError(f"unknown variants {sorted(unknown)}; expected {VARIANTS}")
    passes = [p for p in args.passes.split(",") if p]
    opts = compile_lib.compiler_options("update")  # the agent's update's
    peak = common.matmul_peak(args.peak_n)
    print(f"matmul peak {peak:.1f} GFLOP/s; batch {args.batch}; compiler options {opts}")
    key = jax.random.key(0)
    results: dict[str, Any] = {}
    for name, gflop, factory, shape in _items(args.batch, [s for s in args.only.split(",") if s]):
        x = jax.random.uniform(key, (args.batch, *shape), minval=-0.5, maxval=0.5)
        fns: dict[str, tuple[Callable, tuple]] = {}
        for variant in variants:
            impl, _, flag = variant.partition("+")
            fwd, fwd_bwd, params = _compiled(factory(impl), x, opts if flag else {})
            if "fwd" in passes:
                fns[f"{variant}/fwd"] = (fwd, (params, x))
            if "fwd+bwd" in passes:
                fns[f"{variant}/fwd+bwd"] = (fwd_bwd, (params, x))
        seconds, peaks = _interleaved(fns, args.repeats, args.warmup, args.peak_n)
        results[name] = record = {"gflop_fwd": gflop, "peak_gflops": statistics.median(peaks)}
        for key_ in fns:
            variant, pass_ = key_.split("/")
            flops = gflop * (3.0 if pass_ == "fwd+bwd" else 1.0)
            timing = {"seconds": seconds[key_], "peaks": peaks}
            rec = common.ratio_fields(flops, timing)
            rec["gflop"] = flops
            base = seconds.get(f"{BASELINE}/{pass_}")
            if base is not None:
                rec["speedup"] = statistics.median(base) / rec["seconds_median"]
                rec["speedup_paired"] = statistics.median(
                    b / t for b, t in zip(base, seconds[key_], strict=True)
                )
            record[key_] = rec
            line = (
                f"{name:8s} {key_:18s} {flops:8.2f} GFLOP {rec['seconds_median'] * 1e3:9.1f} ms "
                f"{rec['gflops']:7.1f} GFLOP/s  {rec['fraction_of_peak']:.3f} of peak"
            )
            print(line + (f"  x{rec['speedup']:.2f}" if "speedup" in rec else ""), flush=True)
    record = {
        "benchmark": "conv_grad",
        "batch": args.batch,
        "variants": variants,
        "compiler_options": opts,
        "peak_gflops_start": peak,
        "flop_convention": "analytic 2*MACs; transposed convs without dilation zeros; "
        "fwd+bwd = 3 x fwd (grads wrt params and input)",
        "environment": common.environment(),
        "items": results,
    }
    common.write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()

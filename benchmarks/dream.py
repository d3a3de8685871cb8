"""Throughput of one CMA-ES generation inside the World Models dream (Doom paper size).

Ha & Schmidhuber (2018) evolve take_cover's controller entirely in the dream: CMA-ES with a
population of 64, each candidate scored by 16 dream rollouts of up to 1000 steps (LSTM 256,
z = 64, 5 Gaussians per dim, done head, tau = 1.15). Here one generation -- ask, the
64 x 16 rollouts as one jitted vmap of a `lax.scan`, tell -- is one XLA computation, timed
against the fp32 matmul peak measured right before each call (DESIGN.md, "Performance method").
Parameters are random (throughput does not depend on them); episodes that end early keep
stepping (frozen) to the full length, as in training.

    python -m benchmarks.dream                      # paper size, 1000 steps
    python -m benchmarks.dream --steps 100 --json out/dream.json
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import common
from jaxplanet.worldmodels import controllers, dream, mdn_rnn, vae

__all__ = ["build", "main", "run", "step_flops"]

SUMMARY_KEYS = (
    "seconds_median",
    "dream_steps_per_second",
    "gflop",
    "gflops",
    "peak_gflops",
    "fraction_of_peak",
    "compile_seconds",
)


def step_flops(z: int, hidden: int, mixtures: int, action_dim: int, done_head: bool) -> int:
    """Matmul FLOPs (2 per multiply-add) of one dream step of one rollout.

    LSTM: [z + a, h] -> 4h gates; MDN head h -> z * K * 3; done head h -> 1; controller
    [z, h] -> a. Sampling, activations and bias adds are not counted.
    """
    macs = (z + action_dim + hidden) * 4 * hidden + hidden * z * mixtures * 3
    macs += hidden * int(done_head) + (z + hidden) * action_dim
    return 2 * macs


def build(args: argparse.Namespace) -> tuple[Any, tuple[Any, ...], dream.DreamConfig]:
    """The jitted generation and its arguments."""
    vcfg = vae.VAEConfig(z_dim=args.z_dim)
    mcfg = mdn_rnn.MDNConfig(
        z_dim=args.z_dim, hidden=args.hidden, mixtures=args.mixtures, done_head=True
    )
    dcfg = dream.DreamConfig(
        vae=vcfg,
        mdn=mcfg,
        action_dim=1,
        max_steps=args.steps,
        reward="survival",
        action_map="take_cover",
    )
    k_m, k_z, k_es = jax.random.split(jax.random.key(args.seed), 3)
    mdn_params = mdn_rnn.init(mcfg, k_m, 1)
    # A done bias of -30 keeps every rollout alive: the benchmark measures full-length episodes.
    mdn_params = {**mdn_params, "done": {**mdn_params["done"], "bias": jnp.full((1,), -30.0)}}
    params = {
        "vae": None,  # V only renders frames; a generation never decodes
        "mdn": mdn_params,
        "initial_z": {
            "mean": jax.random.normal(k_z, (16, args.z_dim)),
            "std": jnp.full((16, args.z_dim), 0.1),
        },
    }
    template = controllers.init(k_es, args.z_dim, args.hidden, 1)
    es = controllers.Evolution.make(template, args.population, 0.1)

    def generation(params, es_state, key):
        k_ask, k_fit, k_tell = jax.random.split(key, 3)
        cands, es_state = es.ask(k_ask, es_state)
        returns = dream.generation_returns(
            params, dcfg, args.temperature, cands, k_fit,
            unflatten=es.unflatten, rollouts=args.rollouts,
        )  # fmt: skip
        es_state, _ = es.tell(k_tell, cands, returns.mean(axis=1), es_state)
        return es_state, returns

    return jax.jit(generation), (params, es.init(k_es), jax.random.key(args.seed + 1)), dcfg


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Compile, time against the peak, and return the JSON record."""
    fn, call_args, _ = build(args)
    began = time.perf_counter()
    compiled = fn.lower(*call_args).compile()
    compile_seconds = time.perf_counter() - began
    common.block(compiled(*call_args))
    _, returns = compiled(*call_args)
    # Nearly all rollouts must run the full length (a uniform draw of exactly 0 ends one with
    # probability 2^-23 per step whatever the done logit).
    assert float(returns.mean()) > 0.99 * args.steps, "rollouts must run the full length"
    timing = common.time_against_peak(
        compiled,
        *call_args,
        warmup=args.warmup,
        repeats=args.repeats,
        peak_n=args.peak_n,
        clean=args.clean,
        max_seconds=args.max_wait,
    )
    episodes = args.population * args.rollouts
    flops = step_flops(args.z_dim, args.hidden, args.mixtures, 1, True)
    gflop = flops * episodes * args.steps / 1e9
    record = {
        "benchmark": "dream",
        "population": args.population,
        "rollouts": args.rollouts,
        "steps": args.steps,
        "hidden": args.hidden,
        "z_dim": args.z_dim,
        "mixtures": args.mixtures,
        "step_flops": flops,
        "gflop": gflop,
        "compile_seconds": compile_seconds,
        **common.ratio_fields(gflop, timing),
        **common.environment(),
    }
    record["dream_steps_per_second"] = episodes * args.steps / record["seconds_median"]
    return record


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; returns the JSON record (also written to --json)."""
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=64)
    parser.add_argument("--rollouts", type=int, default=16, help="rollouts per candidate")
    parser.add_argument("--steps", type=int, default=1000, help="dream steps per rollout")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--z_dim", type=int, default=64)
    parser.add_argument("--mixtures", type=int, default=5)
    parser.add_argument("--temperature", type=float, default=1.15)
    parser.add_argument("--seed", type=int, default=0)
    args = common.parse(parser, argv)
    record = run(args)
    if not math.isfinite(record["fraction_of_peak"]):
        raise RuntimeError(f"non-finite fraction_of_peak: {record}")
    common.write_json(args.json, record)
    common.summary_line("dream", record, SUMMARY_KEYS)
    return record


if __name__ == "__main__":
    main()

"""Latency and FLOP/s of the PlaNet agent's act: belief update + one CEM planning call.

PlaNet (Hafner et al., ICML 2019) plans every action with CEM over the RSSM prior: 1000
candidates x horizon 12 x 10 iterations of one latent transition (img_step + reward head),
about 92.5 GFLOP at paper size. This benchmark times the agent's OWN jitted act, the function
the PlaNet agent calls at every environment step, compiled with the agent's XLA options
(`jaxplanet.core.compile.compiler_options("act")`): `planet.scale.make_act(cfg, A)`, the act
the training loop collects with, for ``--batch`` N beliefs in one call (the agent with
``--num_envs=N``; N = 1 is exactly the one-env `acting.act` that evaluation also runs).
One call = posterior step (conv encoder on the new frame + RSSM) + CEM from a sample of the
belief + exploration noise. FLOP/s are reported as a fraction of the fp32 matmul peak measured
in the same process right before each timed call (DESIGN.md, "Performance method").

    python -m benchmarks.planning --json out/planning.json
    python -m benchmarks.planning --batch 16 --candidates 100   # 16 beliefs in one call
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import common
from jaxplanet import planet
from jaxplanet.core import compile as compile_lib
from jaxplanet.planet import rssm
from jaxplanet.planners import cem

SUMMARY_KEYS = (
    "seconds_median",
    "gflop",
    "gflops",
    "peak_gflops",
    "fraction_of_peak",
    "compile_seconds",
)


def add_model_args(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """CEM and model-size flags shared with the scaling benchmark (paper defaults)."""
    parser.add_argument("--candidates", type=int, default=1000)
    parser.add_argument("--horizon", type=int, default=12)
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--top_k", type=int, default=100)
    parser.add_argument("--unroll", type=int, default=1, help="unroll of the horizon scan")
    parser.add_argument(
        "--sample",
        choices=("true", "false"),
        default="true",
        help="sample the belief and each prior step (as the agent plans) or follow the means",
    )
    parser.add_argument("--action_dim", type=int, default=6)
    parser.add_argument("--deter", type=int, default=200)
    parser.add_argument("--stoch", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument("--reward_hidden", type=int, default=100, help="released: 100")
    parser.add_argument("--depth", type=int, default=32, help="conv depth (sets embed size)")
    parser.add_argument("--seed", type=int, default=0)
    return parser


def model_config(args: argparse.Namespace) -> planet.ModelConfig:
    """The world-model config the flags describe."""
    return planet.ModelConfig.paper(
        deter=args.deter,
        stoch=args.stoch,
        hidden=args.hidden,
        reward_hidden=args.reward_hidden,
        depth=args.depth,
    )


def cem_config(args: argparse.Namespace) -> Any:
    """The agent's planner settings (`PlannerConfig`, a `cem.CEMConfig`) the flags describe."""
    from jaxplanet.planet import config as planet_config

    return planet_config.PlannerConfig(
        horizon=args.horizon,
        iterations=args.iterations,
        candidates=args.candidates,
        top_k=args.top_k,
        unroll=args.unroll,
        sample=args.sample == "true",
    )


def agent_config(args: argparse.Namespace, batch: int = 1) -> Any:
    """The PlaNet agent config (paper preset) with the flags' model and planner, collecting
    ``batch`` environments at once (``--num_envs``)."""
    from jaxplanet.planet import config as planet_config

    return dataclasses.replace(
        planet_config.paper(),
        seed=args.seed,
        num_envs=batch,
        model=model_config(args),
        planner=cem_config(args),
    )


def step_flops(cfg: planet.ModelConfig, action_dim: int) -> int:
    """Exact matmul FLOPs (2 per multiply-add) of one `planet.latent_step` for one candidate.

    img_step Dense(S + A -> H), fused GRU Dense(H + D -> 3D), Dense(D -> H), Dense(H -> 2S);
    reward head Dense(D + S -> R), (layers - 1) x Dense(R -> R), Dense(R -> 1). Bias adds,
    activations and the prior's noise draws are not counted (XLA's count includes the first two).
    """
    d, s, h, r = cfg.deter, cfg.stoch, cfg.hidden, cfg.reward_hidden
    macs = (s + action_dim) * h + (h + d) * 3 * d + d * h + h * 2 * s
    macs += (d + s) * r + (cfg.reward_layers - 1) * r * r + r
    return 2 * macs


def analytic_gflop(
    cfg: planet.ModelConfig, ccfg: cem.CEMConfig, action_dim: int, batch: int
) -> float:
    """Exact matmul GFLOP of one planning call for `batch` beliefs."""
    sequences = batch * ccfg.candidates * ccfg.iterations
    return step_flops(cfg, action_dim) * ccfg.horizon * sequences / 1e9


def compiler_options(args: argparse.Namespace) -> dict[str, Any]:
    """XLA options the act is compiled with: the agent's (`compiler_options("act")`), or with
    --xla_defaults XLA's defaults (spelled out on CPU, where they override the agent's)."""
    if not args.xla_defaults:
        return compile_lib.compiler_options("act")
    cpu = jax.default_backend() == "cpu"
    return dict(compile_lib.CPU_VARIANTS["xla_default"]) if cpu else {}


def xla_step_gflop(
    params: Any, cfg: planet.ModelConfig, action_dim: int, rows: int, sample: bool = True
) -> float:
    """XLA cost analysis of one vmapped model step on `rows` states, in GFLOP."""
    step = planet.latent_step(params, cfg, sample)
    state = rssm.initial_state(cfg, (rows,))
    action = jnp.zeros((rows, action_dim), jnp.float32)
    keys = jax.random.split(jax.random.key(0), rows)
    return common.compiled_gflop(jax.jit(jax.vmap(step)), state, action, keys)


def xla_posterior_gflop(params: Any, cfg: planet.ModelConfig, action_dim: int, rows: int) -> float:
    """XLA cost analysis of the belief update (encoder + RSSM posterior) of `rows` envs."""
    belief = rssm.initial_state(cfg, (rows,))
    action = jnp.zeros((rows, action_dim), jnp.float32)
    obs = jnp.zeros((rows, 64, 64, 3), jnp.uint8)
    first = jnp.zeros((rows,), bool)
    update = jax.jit(lambda p, b, a, o, f: planet.posterior_step(p, cfg, b, a, o, f))
    return common.compiled_gflop(update, params, belief, action, obs, first)


@functools.lru_cache(maxsize=4)
def _init(cfg: planet.ModelConfig, action_dim: int, seed: int) -> Any:
    key = jax.random.fold_in(jax.random.key(seed), 3)
    init = jax.jit(planet.init, static_argnums=(0, 2))
    return jax.block_until_ready(init(cfg, key, action_dim))


def init_params(args: argparse.Namespace) -> Any:
    """Variables of the whole world model at the flags' size (jitted init; cached per size)."""
    return _init(model_config(args), args.action_dim, args.seed)


def agent_act(args: argparse.Namespace, batch: int = 1) -> Any:
    """The agent's own jitted act for ``batch`` environments (the object the agent calls)."""
    from jaxplanet.planet import scale as planet_scale

    return planet_scale.make_act(agent_config(args, batch), args.action_dim)


def act_inputs(args: argparse.Namespace, batch: int, params: Any) -> tuple:
    """Arguments of one act call: a frame per env after a first (reset) step."""
    cfg = agent_config(args, batch)
    k_obs, k_act = jax.random.split(jax.random.fold_in(jax.random.key(args.seed), 7))
    shape = (batch,)
    obs = jax.random.randint(k_obs, (*shape, 64, 64, 3), 0, 256).astype(jnp.uint8)
    belief = rssm.initial_state(cfg.model, shape)
    prev_action = jnp.zeros((*shape, args.action_dim), jnp.float32)
    first = jnp.ones(shape, bool)
    keys = jax.random.split(k_act, batch)
    noise = cfg.exploration_noise  # a Python float, as the agent passes it
    return (params, belief, prev_action, obs, first, keys, noise)


def setup(args: argparse.Namespace, batch: int, params: Any = None) -> dict[str, Any]:
    """The agent's act for `batch` beliefs and the arguments of one call.

    The training loop's act for `batch` beliefs (rows [batch, ...]). `params` (default:
    `init_params(args)`) lets callers reuse one model across setups.
    """
    params = init_params(args) if params is None else params
    return dict(
        cfg=model_config(args),
        ccfg=cem_config(args),
        params=params,
        act=agent_act(args, batch),
        call_args=act_inputs(args, batch, params),
        options=compiler_options(args),
    )


def compile_act(args: argparse.Namespace, parts: dict[str, Any]) -> Any:
    """The agent's act lowered and compiled for the call arguments (agent's XLA options, or
    --xla_defaults' override)."""
    lowered = parts["act"].lower(*parts["call_args"])
    return lowered.compile(compiler_options=parts["options"] if args.xla_defaults else None)


def timed(args: argparse.Namespace, compiled: Any, call_args: tuple, gflop: float) -> dict:
    """Interleaved (peak, call) timing of `compiled(*call_args)` -> `common.ratio_fields`."""
    options = compiler_options(args)
    timing = common.time_against_peak(
        compiled,
        *call_args,
        warmup=args.warmup,
        repeats=args.repeats,
        peak_n=args.peak_n,
        peak_options=[None, options] if options else [None],
        clean=args.clean,
        max_seconds=args.max_wait,
    )
    return common.ratio_fields(gflop, timing)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark described by `args` and return its record."""
    batch = args.batch
    parts = setup(args, batch)
    cfg, ccfg, call_args = parts["cfg"], parts["ccfg"], parts["call_args"]

    start = time.perf_counter()
    compiled = compile_act(args, parts)
    compile_seconds = time.perf_counter() - start

    rows = batch * ccfg.candidates
    trips = ccfg.horizon * ccfg.iterations
    analytic = analytic_gflop(cfg, ccfg, args.action_dim, batch)
    sample = args.sample == "true"
    plan_gflop = xla_step_gflop(parts["params"], cfg, args.action_dim, rows, sample) * trips
    belief_gflop = xla_posterior_gflop(parts["params"], cfg, args.action_dim, batch)
    xla_gflop = plan_gflop + belief_gflop

    timing = timed(args, compiled, call_args, xla_gflop)
    action, _ = compiled(*call_args)
    median = timing["seconds_median"]
    record = {
        "benchmark": "planning",
        **common.environment(),
        "config": {
            **dataclasses.asdict(ccfg),
            "batch": batch,
            "sample": sample,
            "action_dim": args.action_dim,
            "model": dataclasses.asdict(cfg),
        },
        "function": "planet.scale.make_act(cfg, A) (cfg.num_envs = batch)",
        "compile_seconds": compile_seconds,
        "compiler_options": parts["options"],
        **timing,
        "gflop": xla_gflop,
        "gflop_belief_update": belief_gflop,
        "gflop_method": (
            "XLA cost analysis (compiled.cost_analysis()['flops']) of one vmapped "
            f"latent step over {rows} states, times horizon x iterations = {trips} trips "
            "(XLA counts a while-loop body once, so the whole scanned call cannot be read "
            "directly), plus that of the belief update (encoder + RSSM posterior); CEM's own "
            "sampling/top_k/refit FLOPs are excluded"
        ),
        "gflop_analytic_matmul": analytic,
        "gflop_analytic_method": (
            "exact matmul count of the planner's latent steps (analytic_gflop; no belief update)"
        ),
        "gflops_analytic_matmul": analytic / median,
        "peak_method": (
            f"jitted fp32 {args.peak_n}x{args.peak_n} matmul (median of 3), same process, "
            "right before each timed call; best of the default dot and the act's "
            "compiler_options"
        ),
        "fraction_of_peak_analytic_matmul": analytic / median / timing["peak_gflops"],
        "transitions_per_second": rows * trips / median,
        "action_finite": bool(jnp.all(jnp.isfinite(action))),
        "action_shape": list(action.shape),
    }
    return record


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; returns the JSON record (also written to --json)."""
    parser = common.make_parser(__doc__.splitlines()[0])
    add_model_args(parser)
    parser.add_argument("--batch", type=int, default=1, help="beliefs planned in one call")
    args = common.parse(parser, argv)
    record = run(args)
    if not math.isfinite(record["fraction_of_peak"]):
        raise RuntimeError(f"non-finite fraction_of_peak: {record}")
    common.write_json(args.json, record)
    common.summary_line("planning", record, SUMMARY_KEYS)
    return record


if __name__ == "__main__":
    main()

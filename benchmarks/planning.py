"""Latency and FLOP/s of one CEM planning call with the PlaNet world model.

PlaNet (Hafner et al., ICML 2019) plans every action with CEM over the RSSM prior: 1000
candidates x horizon 12 x 10 iterations of one latent transition (img_step + reward head),
about 92.5 GFLOP at paper size. This benchmark builds the real world model
(`jaxplanet.planet.WorldModel`: its RSSM cell and reward head, the parts planning uses),
filters one (random) embedding to get a posterior belief, and times one jitted `cem.plan`
call from it. FLOP/s are reported as a fraction of the fp32 matmul peak measured in
the same process right before (DESIGN.md, "Performance method").

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
from jaxplanet import planet, rssm
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
        "--group", type=int, default=0, help="plan a batch this many beliefs at a time (0: all)"
    )
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


def cem_config(args: argparse.Namespace) -> cem.CEMConfig:
    """The CEM settings the flags describe."""
    return cem.CEMConfig(
        horizon=args.horizon,
        iterations=args.iterations,
        candidates=args.candidates,
        top_k=args.top_k,
        unroll=args.unroll,
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


def posterior_beliefs(params: Any, cfg: planet.ModelConfig, action_dim: int, batch: int, key):
    """Posterior State[batch] after filtering one random first embedding per belief.

    The embedding stands in for the encoder's output (the planner never touches the conv nets).
    """
    embed = jax.random.normal(key, (batch, cfg.embed_dim), jnp.float32)
    state = rssm.initial_state(cfg, (batch,))
    action = jnp.zeros((batch, action_dim), jnp.float32)
    first = jnp.ones((batch,), bool)
    post, _ = jax.jit(rssm.obs_step, static_argnums=1)(params, cfg, state, action, embed, first)
    return jax.block_until_ready(post)


def compiler_options(args: argparse.Namespace) -> dict[str, Any]:
    """XLA options of the planning call: `cem.compiler_options()` unless --xla_defaults."""
    return {} if args.xla_defaults else cem.compiler_options()


def make_planner(
    cfg: planet.ModelConfig,
    ccfg: cem.CEMConfig,
    action_dim: int,
    batched: bool,
    options: dict[str, Any] | None = None,
    group: int = 0,
    sample: bool = True,
):
    """Jitted `(params, state, key) -> mean actions`; vmapped over (state, key) when batched.

    `group` > 0 plans the batch `group` beliefs at a time (`jax.lax.map(..., batch_size=group)`:
    vmap inside a group, a loop over groups) so that the per-step arrays stay cache-sized.
    """

    def plan_one(params: Any, state: rssm.State, key: jax.Array) -> jax.Array:
        k_belief, k_plan = jax.random.split(key)
        start = planet.plan_start(state, k_belief, sample)
        step = planet.latent_step(params, cfg, sample)
        return cem.plan_with(ccfg, step, start, k_plan, action_dim)

    if not batched:
        return jax.jit(plan_one, compiler_options=options or None)

    def plan_batch(params: Any, state: rssm.State, keys: jax.Array) -> jax.Array:
        if group:
            one = lambda xs: plan_one(params, *xs)
            return jax.lax.map(one, (state, keys), batch_size=group)
        return jax.vmap(plan_one, in_axes=(None, 0, 0))(params, state, keys)

    return jax.jit(plan_batch, compiler_options=options or None)


def xla_step_gflop(
    params: Any, cfg: planet.ModelConfig, action_dim: int, rows: int, sample: bool = True
) -> float:
    """XLA cost analysis of one vmapped model step on `rows` states, in GFLOP."""
    step = planet.latent_step(params, cfg, sample)
    state = rssm.initial_state(cfg, (rows,))
    action = jnp.zeros((rows, action_dim), jnp.float32)
    keys = jax.random.split(jax.random.key(0), rows)
    return common.compiled_gflop(jax.jit(jax.vmap(step)), state, action, keys)


def _latent_parts(model: planet.WorldModel, state: rssm.State, action, embed) -> jax.Array:
    post, _ = model.rssm(state, action, embed)  # RSSM cell (prior and posterior)
    return model.predict_reward(rssm.features(post))  # reward head


@functools.lru_cache(maxsize=4)
def _init(cfg: planet.ModelConfig, action_dim: int, seed: int) -> Any:
    k_init = jax.random.split(jax.random.key(seed), 3)[0]
    state = rssm.initial_state(cfg, (1,))
    action, embed = jnp.zeros((1, action_dim)), jnp.zeros((1, cfg.embed_dim))

    def init(key: jax.Array) -> Any:
        model = planet.WorldModel(cfg)
        return model.init(key, state, action, embed, method=_latent_parts)

    return jax.block_until_ready(jax.jit(init)(k_init))


def init_params(args: argparse.Namespace) -> Any:
    """Variables of `planet.WorldModel` at the flags' size: the RSSM cell and reward head only.

    The encoder/decoder are left out (planning never uses them, and initialising the conv
    nets costs more than the whole benchmark at tiny sizes). Jitted; cached per size.
    """
    return _init(model_config(args), args.action_dim, args.seed)


def setup(
    args: argparse.Namespace, batch: int, batched: bool | None = None, params: Any = None
) -> dict[str, Any]:
    """Model params, beliefs, keys and the jitted planner for `batch` beliefs.

    `batched` (default: batch > 1) vmaps the planner over (state, key); otherwise the single
    belief is planned unbatched, exactly as an agent with one environment does. `params`
    (default: `init_params(args)`) lets callers reuse one model across setups.
    """
    batched = batch > 1 if batched is None else batched
    if batch > 1 and not batched:
        raise ValueError("batch > 1 needs the batched planner")
    cfg, ccfg = model_config(args), cem_config(args)
    _, k_obs, k_plan = jax.random.split(jax.random.key(args.seed), 3)
    params = init_params(args) if params is None else params
    state = posterior_beliefs(params, cfg, args.action_dim, batch, k_obs)
    keys = jax.random.split(k_plan, batch)
    if not batched:
        state, keys = jax.tree.map(lambda x: x[0], state), keys[0]
    options = compiler_options(args)
    sample = args.sample == "true"
    planner = make_planner(cfg, ccfg, args.action_dim, batched, options, args.group, sample)
    return dict(
        cfg=cfg, ccfg=ccfg, params=params, state=state, keys=keys, planner=planner, options=options
    )


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
    cfg, ccfg, planner = parts["cfg"], parts["ccfg"], parts["planner"]
    call_args = (parts["params"], parts["state"], parts["keys"])

    start = time.perf_counter()
    compiled = planner.lower(*call_args).compile()
    compile_seconds = time.perf_counter() - start

    rows = batch * ccfg.candidates
    trips = ccfg.horizon * ccfg.iterations
    analytic = analytic_gflop(cfg, ccfg, args.action_dim, batch)
    sample = args.sample == "true"
    xla_gflop = xla_step_gflop(parts["params"], cfg, args.action_dim, rows, sample) * trips

    timing = timed(args, compiled, call_args, xla_gflop)
    mean = compiled(*call_args)
    median = timing["seconds_median"]
    record = {
        "benchmark": "planning",
        **common.environment(),
        "config": {
            **dataclasses.asdict(ccfg),
            "batch": batch,
            "group": args.group,
            "sample": sample,
            "action_dim": args.action_dim,
            "model": dataclasses.asdict(cfg),
        },
        "compile_seconds": compile_seconds,
        "compiler_options": parts["options"],
        **timing,
        "gflop": xla_gflop,
        "gflop_method": (
            "XLA cost analysis (compiled.cost_analysis()['flops']) of one vmapped "
            f"latent step over {rows} states, times horizon x iterations = {trips} trips "
            "(XLA counts a while-loop body once, so the whole scanned call cannot be read "
            "directly); CEM's own sampling/top_k/refit FLOPs are excluded"
        ),
        "gflop_analytic_matmul": analytic,
        "gflop_analytic_method": ("exact matmul count of the latent step (analytic_gflop)"),
        "gflops_analytic_matmul": analytic / median,
        "peak_method": (
            f"jitted fp32 {args.peak_n}x{args.peak_n} matmul (median of 3), same process, "
            "right before each timed call; best of the default dot and the planner's "
            "compiler_options"
        ),
        "fraction_of_peak_analytic_matmul": analytic / median / timing["peak_gflops"],
        "transitions_per_second": rows * trips / median,
        "plan_finite": bool(jnp.all(jnp.isfinite(mean))),
        "plan_shape": list(mean.shape),
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

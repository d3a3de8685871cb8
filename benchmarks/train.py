"""Latency and FLOP/s of one PlaNet training step (ELBO + Adam) at the paper's batch size.

One step = encoder over B x T frames, RSSM filtering scan over T, decoder and reward head,
KL with free nats (and latent overshooting if enabled), backward pass and Adam update, as one
jitted call: the agent's OWN update on a batch, `planet.agent.make_functions(cfg, A,
seed_axis=True).update_batch` (`jaxplanet.planet.train_step` behind the training loop's seed
axis of size 1, the train state donated), compiled with the agent's XLA options
(`jaxplanet.core.compile.compiler_options("update")`). FLOP/s are a fraction of the fp32
matmul peak measured in the same process right before each timed call (DESIGN.md,
"Performance method"). On XLA:CPU the conv gradients dominate (see `benchmarks.conv_grad`).

    python -m benchmarks.train --json out/train.json                # paper: 50 x 50, depth 32
    python -m benchmarks.train --overshooting 50                    # with latent overshooting
    python -m benchmarks.train --batch 8 --length 10 --depth 8      # small
    python -m benchmarks.train --replay host --steps 10             # agent loop, host replay
    python -m benchmarks.train --replay device --steps 10           # agent loop, device replay

With ``--replay`` the figure is the agent's own training loop (``planet.agent.train``): each
update samples its batch from a replay of random episodes, with the replay in host memory (batch
sampled on the host and prefetched to the device while the previous update runs) or on the
device (sampling fused into the update).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import math
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from benchmarks import common
from jaxplanet.core import compile as compile_lib

SUMMARY_KEYS = (
    "seconds_median",
    "gflop",
    "gflops",
    "peak_gflops",
    "fraction_of_peak",
    "frames_per_second",
    "compile_seconds",
)


def conv_forward_flops(depth: int) -> int:
    """Exact forward FLOPs (2 x MACs) of the encoder and decoder for one 64x64x3 frame."""
    macs = 0
    size, channels = 64, 3
    for i in range(4):  # encoder: kernel 4, stride 2, VALID
        out_size, out_channels = (size - 4) // 2 + 1, depth * 2**i
        macs += out_size**2 * out_channels * 16 * channels
        size, channels = out_size, out_channels
    size, channels = 1, 32 * depth
    for out_channels, kernel in ((4 * depth, 5), (2 * depth, 5), (depth, 6), (3, 6)):
        macs += size**2 * kernel**2 * channels * out_channels  # each input pixel, every tap
        size, channels = (size - 1) * 2 + kernel, out_channels
    return 2 * macs


def latent_scan_gflop_uncounted(
    rssm_params: dict, batch: int, length: int, overshooting: int
) -> float:
    """GFLOP of the RSSM scan iterations that XLA's cost analysis leaves out (exact matmul count).

    XLA counts a while loop's body once, whatever its trip count. The observe scan runs T steps
    of prior + posterior (img_in, gru, img_hidden, img_out, obs_state, obs_out; obs_embed runs
    outside the scan) on B rows; the overshooting scan runs D steps of the prior on B * T rows.
    Forward plus backward = 3 x forward (2 FLOPs per multiply-add).
    """

    def macs(*names: str) -> int:
        return sum(math.prod(rssm_params[n]["kernel"].shape) for n in names)

    prior = macs("img_in", "gru", "img_hidden", "img_out")
    posterior = macs("obs_state", "obs_out")
    observe = (length - 1) * batch * (prior + posterior)
    overshoot = max(overshooting - 1, 0) * batch * length * prior
    return 3 * 2 * (observe + overshoot) / 1e9


def add_args(parser: Any) -> Any:
    parser.add_argument("--batch", type=int, default=50, help="sequences per batch")
    parser.add_argument("--length", type=int, default=50, help="steps per sequence")
    parser.add_argument("--action_dim", type=int, default=6, help="action size (walker: 6)")
    parser.add_argument("--depth", type=int, default=32, help="conv depth multiplier")
    parser.add_argument("--deter", type=int, default=200)
    parser.add_argument("--stoch", type=int, default=30)
    parser.add_argument("--hidden", type=int, default=200)
    parser.add_argument(
        "--overshooting",
        type=int,
        default=0,
        help="latent overshooting distance D (paper preset: 0, as released; the paper tried 50)",
    )
    parser.add_argument(
        "--replay",
        choices=("none", "host", "device"),
        default="none",
        help="time the agent's training loop with replay on the host or the device",
    )
    parser.add_argument("--steps", type=int, default=10, help="updates timed with --replay")
    parser.add_argument("--conv_impl", default="auto", help="conv implementation (networks)")
    parser.add_argument(
        "--conv_chunk",
        type=int,
        default=-1,
        help="frames per slice of the encoder/decoder convs (-1 auto, the agent's; 0 whole batch)",
    )
    parser.add_argument("--dtype", default="float32", help="compute dtype")
    return parser


def agent_config(args: Any) -> Any:
    """The PlaNet agent config (paper preset) with the flags' batch and model sizes."""
    from jaxplanet.planet import config as planet_config

    base = planet_config.paper()
    model = dataclasses.replace(
        base.model,
        depth=args.depth,
        deter=args.deter,
        stoch=args.stoch,
        hidden=args.hidden,
        overshooting_distance=args.overshooting,
        conv_impl=args.conv_impl,
        conv_chunk=args.conv_chunk,
        dtype=args.dtype,
    )
    replay_device = base.replay_device if args.replay == "none" else args.replay
    sizes = dict(batch_size=args.batch, seq_length=args.length)
    return dataclasses.replace(base, **sizes, model=model, replay_device=replay_device)


def agent_update(args: Any) -> Any:
    """The agent's own jitted update on a batch, ``(train_state, batch, key) -> (train_state,
    metrics)`` with the state donated (the object the agent calls)."""
    from jaxplanet.planet import agent

    return agent.make_functions(agent_config(args), args.action_dim, seed_axis=True).update_batch


def with_seed_axis(tree: Any) -> Any:
    """``tree`` with the training loop's seed axis of size 1 (arrays or abstract shapes)."""

    def add(x: Any) -> Any:
        if isinstance(x, jax.ShapeDtypeStruct):
            return jax.ShapeDtypeStruct((1, *x.shape), x.dtype)
        return x[None]

    return jax.tree.map(add, tree)


def compiler_options(args: Any) -> dict[str, Any]:
    """XLA options the update is compiled with: the agent's (`compiler_options("update")`), or
    with --xla_defaults XLA's defaults (spelled out on CPU, where they override the agent's)."""
    if not args.xla_defaults:
        return compile_lib.compiler_options("update")
    cpu = jax.default_backend() == "cpu"
    return dict(compile_lib.CPU_VARIANTS["xla_default"]) if cpu else {}


def setup(args: Any, state: Any = None) -> dict[str, Any]:
    """The agent's update and the arguments of one call: a train state (default: a fresh one),
    a random batch and a key."""
    from jaxplanet.planet import agent

    agent_cfg = agent_config(args)
    b, t, a = args.batch, args.length, args.action_dim
    k_obs, k_act, k_init = jax.random.split(jax.random.key(0, impl=agent_cfg.prng_impl), 3)
    batch = {
        "obs": jax.random.randint(k_obs, (b, t, 64, 64, 3), 0, 256).astype(jnp.uint8),
        "action": jax.random.uniform(k_act, (b, t, a), minval=-1, maxval=1),
        "reward": jnp.zeros((b, t), jnp.float32),
        "is_first": jnp.zeros((b, t), bool).at[:, 0].set(True),
    }
    state = agent.init_train_state(agent_cfg, k_init, a) if state is None else state
    key = jax.random.key(1, impl=agent_cfg.prng_impl)  # typed, as the agent's keys
    return dict(
        cfg=agent_cfg.model,
        update=agent_update(args),
        call_args=with_seed_axis((state, batch, key)),  # one seed, as the loop runs it
        options=compiler_options(args),
    )


def compile_update(args: Any, parts: dict[str, Any]) -> Any:
    """The agent's update lowered and compiled for the call arguments (agent's XLA options, or
    --xla_defaults' override)."""
    lowered = parts["update"].lower(*parts["call_args"])
    return lowered.compile(compiler_options=parts["options"] if args.xla_defaults else None)


def run(args: Any) -> dict[str, Any]:
    """Run the benchmark described by ``args`` and return its record."""
    parts = setup(args)
    cfg, (state, batch, key) = parts["cfg"], parts["call_args"]
    b, t, a = args.batch, args.length, args.action_dim
    options = parts["options"]

    start = time.perf_counter()
    compiled = compile_update(args, parts)
    compile_seconds = time.perf_counter() - start
    xla_gflop_run = common.cost_analysis(compiled).get("flops", math.nan) / 1e9
    # The FLOPs are counted on the update without conv slicing: slicing changes no arithmetic,
    # but XLA's count of the sliced program is higher (640.6 against 596.3 GFLOP at the paper
    # size in slices of 50 frames), which would inflate the fraction of peak.
    # Where the sizes or the backend leave the convs unsliced, the two programs are one and the
    # second compile is skipped.
    xla_gflop = xla_gflop_run
    if cfg.conv_chunk != 0:
        plain = argparse.Namespace(**{**vars(args), "conv_chunk": 0})
        plain_parts = setup(plain)
        timed_text = parts["update"].lower(*parts["call_args"]).as_text()
        if plain_parts["update"].lower(*plain_parts["call_args"]).as_text() != timed_text:
            counted = compile_update(plain, plain_parts)
            xla_gflop = common.cost_analysis(counted).get("flops", math.nan) / 1e9
            del counted
    scan_gflop = latent_scan_gflop_uncounted(
        state.params["params"]["rssm"], b, t, cfg.overshooting_distance
    )
    gflop = xla_gflop + scan_gflop
    analytic_gflop = 3 * conv_forward_flops(args.depth) * b * t / 1e9

    holder = [state]  # the update donates the state: each call takes the previous one's

    def step(batch: dict, key: jax.Array) -> tuple:
        holder[0], metrics = compiled(holder[0], batch, key)
        return holder[0], metrics

    timing = common.time_against_peak(
        step,
        batch,
        key,
        warmup=args.warmup,
        repeats=args.repeats,
        peak_n=args.peak_n,
        peak_options=[None, options] if options else [None],
    )
    _, metrics = step(batch, key)
    timing = common.ratio_fields(gflop, timing)
    return {
        "benchmark": "train",
        **common.environment(),
        "config": {"batch": b, "length": t, "action_dim": a, "model": dataclasses.asdict(cfg)},
        "function": "planet.agent.make_functions(cfg, A, seed_axis=True).update_batch",
        "compile_seconds": compile_seconds,
        "compiler_options": options,
        **timing,
        "gflop": gflop,
        "gflop_method": (
            "XLA cost analysis of the compiled train step (forward, backward, Adam) without conv "
            "slicing (conv_chunk=0), which counts each scan body once, plus the exact matmul "
            "count of the RSSM scan iterations it leaves out (observe over T, overshooting over "
            "D; latent_scan_gflop_uncounted)"
        ),
        "gflop_xla": xla_gflop,
        "gflop_xla_timed_program": xla_gflop_run,
        "gflop_scan_uncounted": scan_gflop,
        "gflop_analytic_conv": analytic_gflop,
        "gflop_analytic_method": "3 x exact forward conv/deconv FLOPs (fwd + 2x for backward)",
        "fraction_of_peak_analytic_conv": analytic_gflop
        / timing["seconds_median"]
        / timing["peak_gflops"],
        "frames_per_second": b * t / timing["seconds_median"],
        "loss_finite": bool(jnp.all(jnp.isfinite(metrics["loss"]))),
    }


def run_replay(args: Any) -> dict[str, Any]:
    """Updates per second of the agent's training loop with replay on the host or device."""
    from jaxplanet.core import replay
    from jaxplanet.planet import agent

    cfg = agent_config(args)
    a, episode_steps, episodes = args.action_dim, 501, 8
    host = agent.replay_device(cfg)
    rng = np.random.default_rng(0)
    with jax.default_device(host) if host is not None else contextlib.nullcontext():
        buf = replay.init(episodes * episode_steps, (64, 64, 3), a)
        for _ in range(episodes):
            episode = {
                "obs": rng.integers(0, 256, (episode_steps, 64, 64, 3), np.uint8),
                "action": rng.uniform(-1, 1, (episode_steps, a)).astype(np.float32),
                "reward": rng.uniform(0, 1, episode_steps).astype(np.float32),
                "is_first": np.arange(episode_steps) == 0,
            }
            buf = replay.add_episode(buf, episode)
    fns = agent.make_functions(cfg, a, seed_axis=True)  # the training loop's, one seed
    state = with_seed_axis(agent.init_train_state(cfg, agent.root_key(cfg), a))
    buf = with_seed_axis(buf)
    if host is not None:
        buf = jax.device_put(buf, host)
    peak = common.matmul_peak(args.peak_n)
    times = []
    for i in range(args.warmup + args.repeats):
        key = jax.random.fold_in(agent.root_key(cfg), i)[None]
        start = time.perf_counter()
        state, metrics = agent.train(fns, state, buf, key, args.steps, host is not None)
        jax.block_until_ready(metrics)
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    seconds = float(np.median(times)) / args.steps
    return {
        "benchmark": "train_replay",
        **common.environment(),
        "config": {"batch": args.batch, "length": args.length, "replay": args.replay},
        "replay_on": "host" if host is not None else "device",
        "seconds_per_update": seconds,
        "updates_per_second": 1.0 / seconds,
        "frames_per_second": args.batch * args.length / seconds,
        "peak_gflops": peak,
        "loss_finite": bool(np.all(np.isfinite(np.asarray(metrics["loss"])))),
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; returns the JSON record (also written to --json)."""
    parser = add_args(common.make_parser(__doc__.splitlines()[0]))
    parser.set_defaults(repeats=3)
    args = common.parse(parser, argv)
    if args.replay != "none":
        record = run_replay(args)
        common.write_json(args.json, record)
        keys = ("replay_on", "seconds_per_update", "updates_per_second", "frames_per_second")
        common.summary_line("train_replay", record, keys)
        return record
    record = run(args)
    common.write_json(args.json, record)
    common.summary_line("train", record, SUMMARY_KEYS)
    return record


if __name__ == "__main__":
    main()

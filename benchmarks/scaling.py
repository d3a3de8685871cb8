"""Imagined latent transitions per second vs the number of environments planned in one call.

PlaNet's planner (Hafner et al., ICML 2019) imagines candidates x horizon x iterations latent
transitions per action. Acting in many environments at once is the agent's batched act
(``--num_envs``: `jax.vmap` of belief update + `cem.plan` over the beliefs), so every dense
layer becomes one [envs * candidates, K] x [K, N] matmul. This script times the agent's own
jitted act (`benchmarks.planning.setup`; 1 env: the single-env act) for 1, 4, 16, 64
environments (paper CEM settings by default; use --candidates etc. for a quicker run) and
reports transitions/s, each as a fraction of the fp32 matmul peak measured in the same process
right before each timed call, and writes JSON plus a PNG plot.

    python -m benchmarks.scaling --json out/scaling.json           # also writes out/scaling.png
    python -m benchmarks.scaling --envs 1,4 --candidates 100 --json /tmp/s.json

Two more modes measure collection and sharding at the quick preset's size (point_reach; CEM
200 candidates x horizon 10 x 5 iterations, RSSM 64/16), each with the fp32 matmul peak:

    python -m benchmarks.scaling --mode collect --envs 1,8   # env steps/s: host loop with one
        # batched planner call per step for N envs, and the whole collection as one lax.scan
    python -m benchmarks.scaling --mode shard --devices 2 --beliefs 64   # 64 beliefs planned on
        # 1 device vs split over 2 (on CPU, forced host devices are set up when JAX starts)
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks import common, planning

ENVS_DEFAULT = "1,4,16,64"
SUMMARY_KEYS = ("envs", "seconds_median", "transitions_per_second", "fraction_of_peak")


def measure(args: argparse.Namespace, envs: int, params: Any = None) -> dict[str, Any]:
    """One row: `envs` beliefs acted on by one call of the agent's jitted act (`planning.setup`:
    the single-env act for 1, the batched act of ``--num_envs`` for more)."""
    parts = planning.setup(args, envs, params=params)
    cfg, ccfg, call_args = parts["cfg"], parts["ccfg"], parts["call_args"]
    start = time.perf_counter()
    compiled = planning.compile_act(args, parts)
    compile_seconds = time.perf_counter() - start
    transitions = envs * ccfg.candidates * ccfg.horizon * ccfg.iterations
    gflop = planning.analytic_gflop(cfg, ccfg, args.action_dim, envs)
    timing = planning.timed(args, compiled, call_args, gflop)
    return {
        "envs": envs,
        "transitions": transitions,
        "transitions_per_second": transitions / timing["seconds_median"],
        "gflop_analytic_matmul": gflop,
        "compile_seconds": compile_seconds,
        **timing,
    }


def plot(rows: Sequence[dict[str, Any]], path: str | Path, title: str) -> Path:
    """PNG of transitions/s (left axis) and fraction of peak (right axis) vs #envs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    envs = [row["envs"] for row in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(envs, [row["transitions_per_second"] for row in rows], "o-", label="transitions/s")
    ax.set_xscale("log", base=2)
    ax.set_xticks(envs, [str(e) for e in envs])
    ax.set_xlabel("environments planned in one call")
    ax.set_ylabel("imagined latent transitions / s")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    right = ax.twinx()
    right.plot(envs, [row["fraction_of_peak"] for row in rows], "s--", color="tab:orange")
    right.set_ylabel("fraction of in-run matmul peak", color="tab:orange")
    right.set_ylim(0.0, 1.05)
    fig.tight_layout()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; returns the JSON record (also written to --json, plot to --plot)."""
    parser = common.make_parser(__doc__.splitlines()[0])
    planning.add_model_args(parser)
    parser.add_argument(
        "--envs", default=ENVS_DEFAULT, help="comma-separated env counts (collect: 1,8)"
    )
    parser.add_argument("--plot", default=None, help="PNG path (default: --json with .png)")
    add_scale_out_args(parser)
    args = common.parse(parser, argv)
    if args.mode != "planning":
        return scale_out(args)
    envs = [int(e) for e in args.envs.split(",") if e]
    if not envs or min(envs) < 1:
        parser.error(f"--envs needs positive integers, got {args.envs!r}")
    params = planning.init_params(args)
    rows = []
    for count in envs:
        row = measure(args, count, params)
        common.summary_line("scaling", row, SUMMARY_KEYS)
        rows.append(row)
    ccfg = planning.cem_config(args)
    record = {
        "benchmark": "scaling",
        **common.environment(),
        "config": {
            **dataclasses.asdict(ccfg),
            "sample": args.sample == "true",
            "action_dim": args.action_dim,
            "model": dataclasses.asdict(planning.model_config(args)),
        },
        "compiler_options": planning.compiler_options(args),
        "gflop_method": "exact matmul count of the latent steps (planning.analytic_gflop)",
        "rows": rows,
        "speedup_vs_1_env": {
            str(row["envs"]): row["transitions_per_second"] / rows[0]["transitions_per_second"]
            for row in rows
        },
    }
    plot_path = args.plot or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if plot_path:
        title = (
            f"act: CEM {ccfg.candidates} cand x H{ccfg.horizon} x {ccfg.iterations} it, "
            f"{record['backend']} ({record['cpu_count']} cores)"
        )
        record["plot"] = str(plot(rows, plot_path, title))
    common.write_json(args.json, record)
    return record


def add_scale_out_args(parser: argparse.ArgumentParser) -> None:
    """Flags of the collect / shard modes."""
    parser.add_argument(
        "--mode",
        choices=("planning", "collect", "shard"),
        default="planning",
        help="planning: transitions/s vs envs per call; collect: env steps/s of collection; "
        "shard: planning on 1 device vs split over --devices",
    )
    parser.add_argument("--devices", type=int, default=2, help="devices for --mode shard")
    parser.add_argument("--beliefs", type=int, default=64, help="beliefs for --mode shard")
    parser.add_argument("--size", choices=("quick", "tiny"), default="quick", help="preset size")


def _quick(size: str) -> Any:
    from jaxplanet.planet import config as planet_config

    cfg = planet_config.quick() if size == "quick" else planet_config.tiny()
    return dataclasses.replace(cfg, env="point_reach", episode_length=0, action_repeat=0)


def _timed_runs(fn: Any, repeats: int, peak_n: int) -> dict[str, Any]:
    """Wall and CPU seconds of ``fn()`` (after one untimed call), each after a matmul peak."""
    fn()
    walls, cpus, peaks = [], [], []
    for _ in range(repeats):
        peaks.append(common.matmul_peak(peak_n, repeats=3))
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    i = sorted(range(repeats), key=lambda j: walls[j])[repeats // 2]
    return {"seconds": walls[i], "cpu_seconds": cpus[i], "seconds_all": walls, "peak": peaks[i]}


def _timed_interleaved(calls: dict, repeats: int, peak_n: int) -> dict[Any, dict[str, Any]]:
    """`_timed_runs` of several functions, interleaved call by call after one peak each round."""
    for fn in calls.values():
        fn()
    raw: dict[Any, dict[str, list]] = {k: {"w": [], "c": [], "p": []} for k in calls}
    for _ in range(repeats):
        peak = common.matmul_peak(peak_n, repeats=3)
        for k, fn in calls.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            raw[k]["w"].append(time.perf_counter() - wall)
            raw[k]["c"].append(time.process_time() - cpu)
            raw[k]["p"].append(peak)
    out = {}
    for k, r in raw.items():
        i = sorted(range(repeats), key=lambda j: r["w"][j])[repeats // 2]
        out[k] = {"seconds": r["w"][i], "cpu_seconds": r["c"][i], "seconds_all": r["w"]}
        out[k]["peak"] = r["p"][i]
    return out


def collect_rows(args: argparse.Namespace, envs: Sequence[int]) -> list[dict[str, Any]]:
    """Env steps/s of collecting N point_reach episodes with the planner (quick preset size):
    the host loop (one batched act call and one vmapped env step per agent step, as the agent
    with --num_envs) and the on-device ``lax.scan``."""
    import jax

    from jaxplanet.core import compile as compile_lib
    from jaxplanet.envs import point_reach, vector
    from jaxplanet.planet import acting, agent, collect
    from jaxplanet.planet import scale as planet_scale

    cfg = _quick(args.size)
    env = point_reach.make()
    a, spec = env.spec.action_dim, env.spec
    params = agent.init_train_state(cfg, jax.random.key(args.seed, impl="rbg"), a).params
    options = compile_lib.compiler_options("act")  # the agent's, for both loops
    act_fn = planet_scale.make_act(cfg, a)  # the agent's batched act (--num_envs)
    device = jax.jit(
        collect.device_episodes,
        static_argnames=("mcfg", "pcfg", "random_actions"),
        compiler_options=options,
    )
    rows = []
    for n in envs:
        keys = jax.random.split(jax.random.key(args.seed + 1), n)
        batched = vector.make_batched("point_reach", n)  # as the agent: JaxEnvs for n > 1

        def host(n=n, keys=keys, batched=batched):
            policy = acting.batch_policy(act_fn, params, cfg.model, a, keys, 0.3)
            return collect.host_episodes(batched, policy, list(range(n)))

        reset_keys = jax.random.split(jax.random.key(args.seed + 2), n)

        def on_device(keys=keys, reset_keys=reset_keys):
            out = device(env, params, cfg.model, cfg.planner, reset_keys, keys, 0.3)
            return jax.block_until_ready(out)

        plan_gflop = planning.analytic_gflop(cfg.model, cfg.planner, a, n) * spec.agent_steps
        for loop, fn in (("host", host), ("device", on_device)):
            t = _timed_runs(fn, args.repeats, args.peak_n)
            steps = n * spec.episode_length
            row = {"loop": loop, "envs": n, "env_steps": steps, **t}
            row["env_steps_per_second"] = steps / t["seconds"]
            row["planning_fraction_of_peak"] = plan_gflop / t["seconds"] / t["peak"]
            common.summary_line("collect", row, COLLECT_KEYS)
            rows.append(row)
    return rows


COLLECT_KEYS = ("loop", "envs", "env_steps_per_second", "seconds", "cpu_seconds", "peak")
SHARD_KEYS = ("devices", "beliefs", "transitions_per_second", "seconds", "cpu_seconds", "peak")


def shard_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """Planning ``--beliefs`` beliefs on 1 device vs split over ``--devices`` (quick size)."""
    import jax

    from jaxplanet import planet
    from jaxplanet.core import compile as compile_lib
    from jaxplanet.core import parallel
    from jaxplanet.planet import rssm
    from jaxplanet.planners import cem

    cfg = _quick(args.size)
    mcfg, pcfg, a, n = cfg.model, cfg.planner, 2, args.beliefs
    params = planet.init(mcfg, jax.random.key(args.seed), a)
    k_b, k_p = jax.random.split(jax.random.key(args.seed + 1))
    beliefs = rssm.initial_state(mcfg, (n,))
    beliefs = beliefs._replace(mean=jax.random.normal(k_b, beliefs.mean.shape))
    keys = jax.random.split(k_p, n)

    def plan_batch(params: Any, belief: Any, keys: Any) -> Any:
        def one(b: Any, k: Any) -> Any:
            k_b, k_p = jax.random.split(k)
            step = planet.latent_step(params, mcfg)
            return cem.plan_with(pcfg, step, planet.plan_start(b, k_b), k_p, a)

        return jax.vmap(one)(belief, keys)

    transitions = n * pcfg.candidates * pcfg.horizon * pcfg.iterations
    calls = {}
    for d in (1, args.devices):
        mesh = parallel.make_mesh(d)
        fn = parallel.shard_plan(plan_batch, mesh, compile_lib.compiler_options("act"))
        inputs = (parallel.replicate(params, mesh), parallel.shard_batch(beliefs, mesh))
        inputs += (parallel.shard_batch(keys, mesh),)
        calls[d] = lambda fn=fn, inputs=inputs: jax.block_until_ready(fn(*inputs))
    # Interleaved (peak, 1 device, n devices) x repeats: both see the same machine load.
    timings = _timed_interleaved(calls, args.repeats, args.peak_n)
    rows, plans = [], []
    for d, t in timings.items():
        plans.append(np.asarray(calls[d]()))
        row = {"devices": d, "beliefs": n, "transitions": transitions, **t}
        row["transitions_per_second"] = transitions / t["seconds"]
        row["fraction_of_peak"] = (
            planning.analytic_gflop(mcfg, pcfg, a, n) / t["seconds"] / t["peak"]
        )
        common.summary_line("shard", row, SHARD_KEYS)
        rows.append(row)
    rows[-1]["max_action_difference"] = float(np.abs(plans[0] - plans[-1]).max())
    return rows


def scale_out(args: argparse.Namespace) -> dict[str, Any]:
    """The collect / shard modes: rows, ratios and the environment, also written to --json."""
    import jax

    if args.mode == "shard" and jax.device_count() < args.devices:
        raise SystemExit(
            f"--devices={args.devices}: only {jax.device_count()} device(s); on CPU run with "
            f"XLA_FLAGS=--xla_force_host_platform_device_count={args.devices}"
        )
    record: dict[str, Any] = {"benchmark": f"scaling_{args.mode}", **common.environment()}
    if args.mode == "collect":
        spec = "1,8" if args.envs == ENVS_DEFAULT else args.envs
        envs = [int(e) for e in spec.split(",") if e]
        rows = collect_rows(args, envs)
        by = {(r["loop"], r["envs"]): r["env_steps_per_second"] for r in rows}
        record["speedup_vs_1_env"] = {
            f"{loop}_{n}": by[loop, n] / by[loop, envs[0]] for loop, n in by
        }
        record["device_vs_host"] = {str(n): by["device", n] / by["host", n] for n in envs}
        print(
            f"collect: speedup {record['speedup_vs_1_env']} device/host {record['device_vs_host']}"
        )
    else:
        rows = shard_rows(args)
        ratio = rows[-1]["transitions_per_second"] / rows[0]["transitions_per_second"]
        record["sharded_vs_unsharded"] = ratio
        print(f"shard: sharded/unsharded throughput {ratio:.3f}")
    record["rows"] = rows
    record["config"] = {"size": args.size, "repeats": args.repeats, "seed": args.seed}
    common.write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()

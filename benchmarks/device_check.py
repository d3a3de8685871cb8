"""A device check that fits a short accelerator lease (under 8 minutes at paper size).

On whatever JAX backend is present (GPU, TPU or CPU) it prints and writes as JSON:

1. the device's name and its measured matmul peak, fp32 and bf16 (``--peak_n`` square matmul,
   median of 5; fp32 at JAX's default precision, which on NVIDIA GPUs lets XLA use TF32);
2. one paper-size act of the agent (belief update + CEM call of 1000 candidates x horizon 12 x
   10 iterations, RSSM 200/30, A = 6; ``benchmarks.planning``) and one paper-size update of the
   agent (batch 50 x 50, conv depth 32; ``benchmarks.train``), both the agent's own jitted
   functions: seconds and fraction of the fp32 peak measured right before each (DESIGN.md,
   "Performance method");
3. imagined latent transitions/s of the agent's act at 1, 16, 256 and 1024 beliefs per call
   (``--beliefs``), and their ratio to linear scaling from 1 belief;
4. host-replay prefetch stall: replay in host memory, each batch sampled on the host and sent to
   the device in a worker thread while the previous update runs (as the agent does with
   ``replay_device=host``); the stall is the time the update loop waits for a batch.

    benchmarks/device_check.sh                      # paper size, JSON in out/device_check.json
    python -m benchmarks.device_check --size tiny   # seconds on a CPU (what the tests run)

Uses only what ``pip install -e ".[cuda]"`` installs.
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp

from benchmarks import common, planning, scaling
from benchmarks import train as train_bench

__all__ = ["SIZES", "main", "peaks", "replay_stall"]

# Flags of the planning/scaling and train benchmarks per size.
SIZES = {
    "paper": {"planning": [], "train": [], "replay": (50, 50, 32, 200, 30, 200)},
    "tiny": {
        "planning": [
            "--candidates", "16", "--horizon", "3", "--iterations", "2", "--top_k", "4",
            "--action_dim", "2", "--deter", "8", "--stoch", "4", "--hidden", "8",
            "--depth", "2",
        ],
        "train": [
            "--batch", "2", "--length", "4", "--depth", "2", "--deter", "8", "--stoch", "4",
            "--hidden", "8",
        ],
        "replay": (2, 4, 2, 8, 4, 8),
    },
}  # fmt: skip


def peaks(n: int) -> dict[str, float]:
    """Measured matmul GFLOP/s of an [n, n] x [n, n] product in fp32 and bf16."""
    return {
        "fp32": common.matmul_peak(n, jnp.float32, repeats=5),
        "bf16": common.matmul_peak(n, jnp.bfloat16, repeats=5),
    }


def replay_stall(size: str, steps: int, peak_n: int) -> dict[str, Any]:
    """Seconds the update loop waits for host-sampled batches (prefetched one step ahead)."""
    from jaxplanet import planet
    from jaxplanet.core import compile as compile_lib
    from jaxplanet.core import replay

    b, t, depth, deter, stoch, hidden = SIZES[size]["replay"]
    cfg = planet.ModelConfig(depth=depth, deter=deter, stoch=stoch, hidden=hidden)
    a, episode_steps, episodes = 6, 501, 4
    host = jax.local_devices(backend="cpu")[0]
    device = jax.devices()[0]
    with jax.default_device(host):
        buf = common.random_replay(a, episodes, episode_steps)
        sample = jax.jit(lambda s, k: replay.sample(s, k, b, t))
    state = jax.jit(planet.init_train_state, static_argnums=(0, 2))(cfg, jax.random.key(0), a)
    update = jax.jit(
        lambda s, x, k: planet.train_step(s, cfg, x, k),
        donate_argnums=0,
        compiler_options=compile_lib.compiler_options("update") or None,  # the agent's
    )
    keys = jax.random.split(jax.random.key(1), steps + 1)

    def fetch(k: jax.Array) -> dict:
        with jax.default_device(host):
            batch = sample(buf, jax.device_put(k, host))
        return jax.block_until_ready(jax.device_put(batch, device))

    state, _ = update(state, fetch(keys[-1]), keys[-1])  # compile
    jax.block_until_ready(state)
    peak = common.matmul_peak(peak_n, repeats=3)
    stall, began = 0.0, time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(fetch, keys[0])
        for i in range(steps):
            wait = time.perf_counter()
            batch = pending.result()
            stall += time.perf_counter() - wait
            if i + 1 < steps:
                pending = pool.submit(fetch, keys[i + 1])
            state, metrics = update(state, batch, keys[i])
            jax.block_until_ready(metrics)
    total = time.perf_counter() - began
    return {
        "steps": steps,
        "batch": [b, t],
        "seconds_total": total,
        "stall_seconds_total": stall,
        "stall_seconds_per_update": stall / steps,
        "stall_fraction": stall / total,
        "updates_per_second": steps / total,
        "peak_gflops": peak,
    }


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """CLI entry point; prints each figure as it is measured and returns the JSON record."""
    parser = common.make_parser(__doc__.splitlines()[0])
    parser.add_argument("--size", choices=tuple(SIZES), default="paper")
    parser.add_argument("--beliefs", default="1,16,256,1024", help="beliefs per planning call")
    parser.add_argument("--replay_steps", type=int, default=20, help="updates timed for stall")
    parser.set_defaults(repeats=3, peak_n=0)
    args = common.parse(parser, argv)
    beliefs = [int(x) for x in args.beliefs.split(",") if x]
    if not beliefs or min(beliefs) < 1:
        parser.error(f"--beliefs needs positive integers, got {args.beliefs!r}")
    accel = jax.default_backend() != "cpu"
    peak_n = args.peak_n or (8192 if accel else (2048 if args.size == "paper" else 256))
    began = time.perf_counter()
    device = jax.devices()[0]
    record: dict[str, Any] = {"benchmark": "device_check", "size": args.size}
    record.update(common.environment())
    print(f"device: {device.device_kind} ({device.platform}, {jax.device_count()} device(s))")

    record["peak_gflops"] = peaks(peak_n)
    p = record["peak_gflops"]
    print(f"matmul peak ({peak_n}^2): fp32 {p['fp32']:.1f} GFLOP/s, bf16 {p['bf16']:.1f} GFLOP/s")

    extra = ["--repeats", str(args.repeats), "--peak_n", str(peak_n)]
    cem = planning.main([*SIZES[args.size]["planning"], *extra])
    record["cem_call"] = {k: cem[k] for k in ("seconds_median", "gflop", "fraction_of_peak")}
    step = train_bench.main([*SIZES[args.size]["train"], *extra])
    record["train_step"] = {k: step[k] for k in ("seconds_median", "gflop", "fraction_of_peak")}
    for name in ("cem_call", "train_step"):
        r = record[name]
        print(
            f"{name}: {r['seconds_median'] * 1e3:.2f} ms, {r['gflop']:.3g} GFLOP, "
            f"{r['fraction_of_peak']:.3f} of the fp32 peak"
        )

    sargs = common.parse(planning.add_model_args(common.make_parser("scaling")), [
        *SIZES[args.size]["planning"], *extra])  # fmt: skip
    params = planning.init_params(sargs)
    rows = []
    for n in beliefs:
        row = scaling.measure(sargs, n, params)
        rows.append({k: row[k] for k in ("envs", "transitions_per_second", "fraction_of_peak")})
        linear = row["transitions_per_second"] / (
            rows[0]["transitions_per_second"] * n / beliefs[0]
        )
        rows[-1]["fraction_of_linear"] = linear
        print(
            f"imagined transitions/s at {n} beliefs per call: "
            f"{row['transitions_per_second']:.4g} ({linear:.2f} of linear from {beliefs[0]}, "
            f"{row['fraction_of_peak']:.3f} of peak)"
        )
    record["imagined"] = rows

    stall = replay_stall(args.size, args.replay_steps, peak_n)
    record["replay_prefetch"] = stall
    print(
        f"host-replay prefetch stall: {stall['stall_seconds_per_update'] * 1e3:.2f} ms per "
        f"update ({stall['stall_fraction']:.1%} of the loop; "
        f"{stall['updates_per_second']:.2f} updates/s)"
    )
    record["wall_seconds"] = time.perf_counter() - began
    print(f"device check done in {record['wall_seconds']:.0f} s")
    common.write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()

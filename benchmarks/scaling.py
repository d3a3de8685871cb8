"""Imagined latent transitions per second vs the number of environments planned in one call.

PlaNet's planner (Hafner et al., ICML 2019) imagines candidates x horizon x iterations latent
transitions per action. Planning many environments at once is `jax.vmap(cem.plan)` over their
beliefs, so every dense layer becomes one [envs * candidates, K] x [K, N] matmul. This script
measures transitions/s for 1, 4, 16, 64 environments (paper CEM settings by default; use
--candidates etc. for a quicker run), each as a fraction of the fp32 matmul peak measured in the
same process right before each timed call, and writes JSON plus a PNG plot.

    python -m benchmarks.scaling --json out/scaling.json           # also writes out/scaling.png
    python -m benchmarks.scaling --envs 1,4 --candidates 100 --json /tmp/s.json
    python -m benchmarks.scaling --group 4 --json out/scaling_g4.json  # lax.map over 4-env groups
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks import common, planning

SUMMARY_KEYS = ("envs", "seconds_median", "transitions_per_second", "fraction_of_peak")


def measure(args: argparse.Namespace, envs: int, params: Any = None) -> dict[str, Any]:
    """One row: `envs` beliefs planned by one vmapped, jitted CEM call."""
    parts = planning.setup(args, envs, batched=True, params=params)
    cfg, ccfg, planner = parts["cfg"], parts["ccfg"], parts["planner"]
    call_args = (parts["params"], parts["state"], parts["keys"])
    start = time.perf_counter()
    compiled = planner.lower(*call_args).compile()
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
    parser.add_argument("--envs", default="1,4,16,64", help="comma-separated env counts")
    parser.add_argument("--plot", default=None, help="PNG path (default: --json with .png)")
    args = common.parse(parser, argv)
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
            "group": args.group,
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
        grouping = f"groups of {args.group}, " if args.group else ""
        title = (
            f"CEM {ccfg.candidates} cand x H{ccfg.horizon} x {ccfg.iterations} it, {grouping}"
            f"{record['backend']} ({record['cpu_count']} cores)"
        )
        record["plot"] = str(plot(rows, plot_path, title))
    common.write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()

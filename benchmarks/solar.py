"""Latency of SOLAR's two inner loops: batched Kalman smoothing and one LQR-FLM solve.

SOLAR (Zhang et al., ICML 2019) smooths every rollout of an iteration with the latent LDS
(paper: 40 rollouts x T = 50, latent 10, action 2) and solves LQR-FLM with its eta search
(bisection, each trial a backward Riccati pass plus a forward marginal pass). Both are
sequential scans over time of small (n = 10, n + m = 12) matrix ops: latency-bound, so their
fraction of the matmul peak (measured in the same process right before each call, DESIGN.md
"Performance method") is small by nature; the seconds are the figure that matters.

FLOP counts are analytic (XLA's cost analysis counts a scan body once): per time step the filter
+ smoother do about 19 n^3 flops (Cholesky n^3/3 twice, n-column solves 2 n^3 twice, covariance
products); one LQR-FLM trial about T * (8 p^3 + 12 n p^2) (p = n + m).

    python -m benchmarks.solar --json out/solar.json
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from benchmarks import common
from jaxplanet.planners import lqr
from jaxplanet.solar import lgssm

__all__ = ["SUMMARY_KEYS", "main"]

SUMMARY_KEYS = ("seconds_median", "gflop", "gflops", "peak_gflops", "fraction_of_peak")


def _smoothing_problem(batch: int, T: int, n: int, m: int):
    k = jax.random.split(jax.random.key(0), 4)
    F = jnp.concatenate([0.9 * jnp.eye(n), 0.1 * jax.random.normal(k[0], (n, m))], 1)
    F = jnp.broadcast_to(F, (batch, T - 1, n, n + m))
    Q = jnp.broadcast_to(0.1 * jnp.eye(n), (batch, T - 1, n, n))
    actions = jax.random.normal(k[1], (batch, T - 1, m))
    y = jax.random.normal(k[2], (batch, T, n))
    R = jnp.broadcast_to(0.5 * jnp.eye(n), (batch, T, n, n))
    m0 = jnp.zeros((batch, n))
    P0 = jnp.broadcast_to(jnp.eye(n), (batch, n, n))
    return m0, P0, F, Q, actions, y, R


def _lqr_problem(T: int, n: int, m: int):
    k = jax.random.split(jax.random.key(1), 3)
    p = n + m
    F = jnp.concatenate([jnp.eye(n), 0.1 * jax.random.normal(k[0], (n, m))], 1)
    F = jnp.broadcast_to(F, (T, n, p))
    a = jax.random.normal(k[1], (p, p))
    C = jnp.broadcast_to(a @ a.T / p + jnp.eye(p), (T, p, p))
    c = jnp.broadcast_to(jax.random.normal(k[2], (p,)), (T, p))
    W = jnp.broadcast_to(0.01 * jnp.eye(n), (T, n, n))
    old = lqr.Policy(
        jnp.zeros((T, m, n)), jnp.zeros((T, m)), jnp.broadcast_to(0.25 * jnp.eye(m), (T, m, m))
    )
    return F, jnp.zeros((T, n)), W, C, c, old, jnp.ones(n), 0.1 * jnp.eye(n)


def main(argv: Sequence[str] | None = None) -> dict:
    """Time one jitted smoothing of ``--batch`` rollouts x ``--T`` steps at ``--latent`` and one
    LQR-FLM solve with its eta search; returns (and optionally writes) the record."""
    parser = common.make_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=40)
    parser.add_argument("--T", type=int, default=50)
    parser.add_argument("--latent", type=int, default=10)
    parser.add_argument("--action_dim", type=int, default=2)
    parser.add_argument("--kl_step", type=float, default=2.0, help="epsilon = kl_step * T")
    args = common.parse(parser, argv)
    B, T, n, m = args.batch, args.T, args.latent, args.action_dim
    record: dict = {"env": common.environment(), "args": vars(args)}

    smooth = jax.jit(jax.vmap(lgssm.smooth))
    problem = _smoothing_problem(B, T, n, m)
    timing = common.time_against_peak(
        smooth, *problem, warmup=args.warmup, repeats=args.repeats, peak_n=args.peak_n
    )
    gflop = 19.0 * n**3 * T * B / 1e9
    record["smoothing"] = {"gflop": gflop, **common.ratio_fields(gflop, timing)}
    common.summary_line(f"smooth {B}x{T} n={n}", record["smoothing"], SUMMARY_KEYS)

    flm = jax.jit(lqr.flm_update)
    lq = _lqr_problem(T, n, m)
    eps = args.kl_step * T
    _, info = flm(*lq, eps)
    trials = int(info.iterations) + 3  # eta_min, eta_max, final re-evaluation
    timing = common.time_against_peak(
        flm, *lq, eps, warmup=args.warmup, repeats=args.repeats, peak_n=args.peak_n
    )
    p = n + m
    gflop = trials * T * (8 * p**3 + 12 * n * p**2) / 1e9
    record["lqr_flm"] = {
        "gflop": gflop,
        "eta_trials": trials,
        "eta": float(info.eta),
        "kl": float(info.kl),
        "kl_bound": eps,
        **common.ratio_fields(gflop, timing),
    }
    common.summary_line(f"lqr_flm T={T} ({trials} eta trials)", record["lqr_flm"], SUMMARY_KEYS)
    common.write_json(args.json, record)
    return record


if __name__ == "__main__":
    main()

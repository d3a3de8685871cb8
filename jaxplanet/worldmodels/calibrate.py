"""World Models' calibrate stage: does the dream rank simple policies as the real task does?

A dream is only as good as its ranking of policies. Before CMA-ES spends its time in M's dream,
the stage plays open-loop policies for `calibrate_episodes` episodes each, in the dream (one
jitted vmap, `dream.open_loop_returns`) and in the real task: i.i.d. uniform random actions (the
paper's random policy), random actions held k ~ U{1..10} steps (the released Doom data's) and
constant actions (take_cover: each of its 3 moves; continuous tasks: a = 0, +0.5, -0.5 on every
dimension). It compares their mean survival (take_cover: steps survived; other tasks: the
return), prints a table (policy | dream | real | ratio), writes ``calibrate.json`` and a row of
the run's ``metrics.jsonl`` (``calibrate_<policy>_{dream,real,ratio}``, ``calibrate_spearman``,
``calibrate_warnings``), and prints a warning (`calibration_warnings`) when the dream puts a
policy at or above one that the real task ranks higher by more than two standard errors, or
over-rates a random policy by more than 1.5x (the released dream's first generation: 305 vs 210,
1.45x). Episode e of every policy starts from the same env seed (real) and key (dream).

`random_baseline` (the evaluate stage's random reference) plays the i.i.d. policy the same way.
"""

from __future__ import annotations

import functools
import json
import os
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy.stats import rankdata

from jaxplanet.core import logging as logging_lib
from jaxplanet.worldmodels import dream
from jaxplanet.worldmodels.data import held_actions
from jaxplanet.worldmodels.policies import open_loop_episodes
from jaxplanet.worldmodels.run import CALIBRATE, RANDOM, Run
from jaxplanet.worldmodels.train import world_model_params

__all__ = [
    "HELD_MAX",
    "OVER_RATE",
    "RANDOM_POLICIES",
    "calibrate",
    "calibration_report",
    "calibration_table",
    "calibration_warnings",
    "policies",
    "policy_actions",
    "random_baseline",
]

#: Held random actions last k ~ U{1..HELD_MAX} agent steps (the released ``doomrnn/extract.py``).
HELD_MAX = 10
#: A dream that scores a random policy above OVER_RATE x its real score is too easy.
OVER_RATE = 1.5
#: The random policies, whose dream score is checked against OVER_RATE.
RANDOM_POLICIES = ("random", "held_random")


def policies(action_map: str) -> dict[str, tuple[str, float]]:
    """The calibration's policies: name -> (kind "iid" / "held" / "constant", constant value)."""
    out = {"random": ("iid", 0.0), "held_random": ("held", 0.0)}
    if action_map == "take_cover":  # C's output: left below -1/3, right above 1/3, else stay
        return {
            **out,
            "left": ("constant", -1.0),
            "stay": ("constant", 0.0),
            "right": ("constant", 1.0),
        }
    return {
        **out,
        "zero": ("constant", 0.0),
        "plus_half": ("constant", 0.5),
        "minus_half": ("constant", -0.5),
    }


def policy_actions(kind: str, value: float, keys: jax.Array, steps: int, dim: int) -> np.ndarray:
    """f32 [N, steps, dim] actions in [-1, 1] (before the action map), one sequence per key [N].

    ``iid``: uniform, a new action every step; ``held``: uniform, each held k ~ U{1..HELD_MAX}
    steps; ``constant``: ``value`` on every dimension at every step.
    """
    if kind == "constant":
        return np.full((keys.shape[0], steps, dim), value, np.float32)
    if kind not in ("iid", "held"):
        raise ValueError(f"unknown policy kind {kind!r}")
    return np.asarray(_random_actions(kind, steps, dim, keys))


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _random_actions(kind: str, steps: int, dim: int, keys: jax.Array) -> jax.Array:
    def one(key):
        if kind == "iid":
            return jax.random.uniform(key, (steps, dim), minval=-1.0, maxval=1.0)
        return held_actions(key, steps, 1, HELD_MAX, dim)

    return jax.vmap(one)(keys)


def random_baseline(run: Run) -> tuple[np.ndarray, np.ndarray]:
    """The paper's random policy in the real task: `random_episodes` episodes of i.i.d. uniform
    actions (a new one every agent step), env seeds and keys of their own stream (`RANDOM`: apart
    from the collect stage's and from C's evaluations).

    Returns:
      (returns f32 [n], lengths int [n] in agent steps).
    """
    n = run.cfg.random_episodes
    acts = policy_actions(
        "iid", 0.0, jax.random.split(run.key(RANDOM, 0), n), run.spec.agent_steps,
        run.spec.action_dim,
    )  # fmt: skip
    seeds = [run.seed(RANDOM, i) for i in range(n)]
    return open_loop_episodes(run, acts, seeds, jax.random.split(run.key(RANDOM, 1), n), "random")


def calibration_warnings(
    names: list[str],
    dream_mean: np.ndarray,
    real_mean: np.ndarray,
    real_se: np.ndarray,
    over_rate: float = OVER_RATE,
) -> list[str]:
    """Where the dream disagrees with the real task, in words (empty: it agrees).

    Args:
      names: P policy names; dream_mean, real_mean: f32 [P] mean survival (or return);
      real_se: f32 [P] standard errors of the real means; over_rate: the allowed dream / real
      ratio of the `RANDOM_POLICIES`.

    Returns:
      One message per pair (i, j) that the real task orders, real_i - real_j > 2 sqrt(se_i^2 +
      se_j^2), while the dream scores i <= j; and one per random policy whose dream score is
      more than ``over_rate`` x its (positive) real score.
    """
    out = []
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            gap = real_mean[i] - real_mean[j]
            if gap > 2.0 * np.hypot(real_se[i], real_se[j]) and dream_mean[i] <= dream_mean[j]:
                out.append(
                    f"the dream ranks {b} ({dream_mean[j]:.1f}) at or above {a} "
                    f"({dream_mean[i]:.1f}); the real task puts {a} first ({real_mean[i]:.1f} "
                    f"vs {real_mean[j]:.1f})"
                )
    for i, a in enumerate(names):
        if a in RANDOM_POLICIES and real_mean[i] > 0 and dream_mean[i] > over_rate * real_mean[i]:
            out.append(
                f"the dream over-rates {a} {dream_mean[i] / real_mean[i]:.2f}x (> {over_rate}x): "
                f"{dream_mean[i]:.1f} in the dream vs {real_mean[i]:.1f} in the real task"
            )
    return out


def calibration_report(names: list[str], dream_scores: Any, real_scores: Any) -> dict[str, Any]:
    """Summary of per-episode scores f32 [P, E] (dream, real) of P named policies.

    Returns:
      {"policies": {name: {"dream_mean", "dream_std", "real_mean", "real_std", "ratio"}},
      "spearman": rank correlation of the dream and real means (nan when either is constant),
      "warnings": `calibration_warnings`, "episodes": E}; ratio = dream / real mean (nan unless
      the real mean is positive).
    """
    d, r = np.asarray(dream_scores, np.float64), np.asarray(real_scores, np.float64)
    dm, rm = d.mean(axis=1), r.mean(axis=1)
    ratio = np.where(rm > 0, dm / np.where(rm > 0, rm, 1.0), np.nan)
    rows = {
        name: {
            "dream_mean": float(dm[p]),
            "dream_std": float(d[p].std()),
            "real_mean": float(rm[p]),
            "real_std": float(r[p].std()),
            "ratio": float(ratio[p]),
        }
        for p, name in enumerate(names)
    }
    rd, rr = rankdata(dm), rankdata(rm)
    spearman = np.nan if rd.std() == 0 or rr.std() == 0 else float(np.corrcoef(rd, rr)[0, 1])
    se = r.std(axis=1) / np.sqrt(max(r.shape[1], 1))
    return {
        "policies": rows,
        "spearman": float(spearman),
        "warnings": calibration_warnings(names, dm, rm, se),
        "episodes": int(r.shape[1]),
    }


def calibration_table(report: dict[str, Any], measure: str) -> str:
    """The report as an aligned text table: policy | dream | real | ratio (mean +- std)."""
    header = ("policy", f"dream {measure}", f"real {measure}", "ratio")
    lines = [header]
    for name, p in report["policies"].items():
        ratio = "-" if not np.isfinite(p["ratio"]) else f"{p['ratio']:.2f}"
        dream_cell = f"{p['dream_mean']:.1f} ± {p['dream_std']:.1f}"
        lines.append((name, dream_cell, f"{p['real_mean']:.1f} ± {p['real_std']:.1f}", ratio))
    widths = [max(len(row[c]) for row in lines) for c in range(4)]
    fmt = [str.ljust, str.rjust, str.rjust, str.rjust]
    return "\n".join(
        " | ".join(f(cell, w) for f, cell, w in zip(fmt, row, widths, strict=True)) for row in lines
    )


def calibrate(run: Run) -> dict[str, Any]:
    """The calibrate stage (between mdn and controller): the dream's survival (or return) of
    `policies` against the real task's, `calibrate_episodes` episodes each.

    Writes ``calibrate.json`` (the `calibration_report`, plus "measure", "temperature") and a row
    of the run's ``metrics.jsonl``; skipped once ``calibrate.json`` exists, and with
    ``calibrate_episodes=0``. A dream without a reward (CarRacing's M without a reward head when
    C trains in the real task) has nothing to compare: the stage writes a note and skips.
    """
    cfg, path = run.cfg, run.logdir / "calibrate.json"
    if not cfg.calibrate_episodes:
        print("calibrate: --calibrate_episodes=0; skipped.")
        return {}
    if path.exists():
        print(f"calibrate: {path} exists; skipped.")
        return {}
    params = world_model_params(run, "calibrate")
    if run.r.reward == "head" and not run.r.mdn.reward_head:
        note = "M has no reward head (C trains in the real task): no dream return to compare"
        print(f"calibrate: {note}; skipped.")
        _write_json(path, {"skipped": note})
        return {}
    n, steps, dim = cfg.calibrate_episodes, run.spec.agent_steps, run.spec.action_dim
    table = policies(run.r.action_map)
    k_act, k_dream, k_real = (run.key(CALIBRATE, 2**30 + i) for i in range(3))
    acts = np.concatenate(
        [
            policy_actions(
                kind, value, jax.random.split(jax.random.fold_in(k_act, p), n), steps, dim
            )
            for p, (kind, value) in enumerate(table.values())
        ]
    )  # [P * n, T, A]: policy p's episodes p * n ... p * n + n - 1
    tile = np.tile(np.arange(n), len(table))  # episode e of every policy: the same start
    survival = run.r.reward == "survival"
    measure = "steps survived" if survival else "return"
    print(
        f"calibrate: {len(table)} policies x {n} episodes, dream (tau {run.r.temperature}) vs real"
    )
    d_ret, _ = dream.open_loop_returns(
        params, run.dcfg, run.r.temperature, jnp.asarray(acts), jax.random.split(k_dream, n)[tile]
    )
    seeds = [run.seed(CALIBRATE, int(e)) for e in tile]
    r_ret, r_len = open_loop_episodes(
        run, acts, seeds, jax.random.split(k_real, n)[tile], "calibrate"
    )
    real = r_len if survival else r_ret
    shape = (len(table), n)
    report = calibration_report(
        list(table), np.asarray(d_ret).reshape(shape), np.asarray(real).reshape(shape)
    )
    report.update(measure=measure, temperature=float(run.r.temperature))
    print(calibration_table(report, measure))
    for message in report["warnings"]:
        print(f"calibrate: WARNING: {message}")
    if not report["warnings"]:
        print("calibrate: the dream ranks the policies as the real task does")
    row: dict[str, Any] = {}
    for name, p in report["policies"].items():
        row.update({f"calibrate_{name}_{k}": p[f"{k}_mean"] for k in ("dream", "real")})
        row[f"calibrate_{name}_ratio"] = p["ratio"]
    row.update(calibrate_spearman=report["spearman"], calibrate_warnings=len(report["warnings"]))
    with logging_lib.Logger(run.logdir) as logger:
        logger.scalars(0, row)
    _write_json(path, report)
    return {k: row[k] for k in ("calibrate_spearman", "calibrate_warnings")}


def _write_json(path: os.PathLike, data: dict[str, Any]) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        f.write(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)

"""What a World Models run prints: the start banners (training and ``--mode=eval``) and the end
table (stage results, the paper's figure, the dream's calibration)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jaxplanet import envs
from jaxplanet.core import console
from jaxplanet.worldmodels import config as world_models_config
from jaxplanet.worldmodels.calibrate import policies
from jaxplanet.worldmodels.config import WorldModelsConfig, resolved
from jaxplanet.worldmodels.evolve import controller_choice
from jaxplanet.worldmodels.run import STAGES, Run

__all__ = ["PAPER_RESULTS", "ZERO_ACTION", "banner", "eval_banner", "summary_rows"]

#: The paper's take_cover result (Ha & Schmidhuber 2018, Table 2), for the end table.
PAPER_RESULTS = {
    "doom_take_cover": "C evolved in the dream 1092 ± 556 steps survived, the random policy "
    "210 ± 108 (5.2x)",
    "car_racing": "C evolved in the real game 906 ± 21 (100 episodes)",
}
#: What C = 0 (a = 0, the evaluate stage's trivial policy) does in each task.
ZERO_ACTION = {
    "doom_take_cover": "standing still: take_cover's stay",
    "car_racing": "straight on at half gas, no brake",
    "point_reach": "standing still: no force",
}


def eval_banner(run: Run) -> str:
    """``--mode=eval``'s start block: the run, the task, devices, what is scored, the output."""
    cfg, spec = run.cfg, run.spec
    choice = controller_choice(run, "evaluate")
    return console.eval_banner(
        f"World Models evaluation of {run.logdir}",
        console.env_line(spec),
        [
            ("C", f"the final C: the CMA-ES mean of generation {choice.generation}"),
            (
                "episodes",
                f"C on {cfg.eval_episodes} real episodes beside {cfg.random_episodes} of i.i.d. "
                f"random actions; a real-vs-dream video of {cfg.video_length} steps",
            ),
            (
                "output",
                f"{run.logdir / 'eval'}/  evaluate.json, metrics.jsonl, TensorBoard events, "
                "videos/ (the run's own evaluate.json stays)",
            ),
        ],
    )


def banner(
    cfg: WorldModelsConfig,
    logdir: str | os.PathLike,
    preset: str = "",
    stage: str = "all",
    spec: envs.EnvSpec | None = None,
    done: Sequence[str] = (),
    backend: str | None = None,
) -> str:
    """The start-of-run block: what runs (each stage's budget), on what, where its outputs go,
    and a warning when GPU-sized settings run on a CPU (``backend``, default JAX's).

    Built from the config alone (``spec``, the task's `EnvSpec`, adds its sizes; ``done``
    lists the stages whose artifacts exist), so it can be shown before anything runs.
    """
    r = resolved(cfg)
    host = cfg.env not in envs.JAX_ENVS
    env = cfg.env
    if spec is not None:
        env = console.env_line(spec)
    if host:
        env += f"; real episodes in {cfg.workers} worker processes"
    measure = "steps survived" if r.reward == "survival" else "return"
    order = [n for n in STAGES if n != "iterate" or r.iterations > 1]
    stages = " -> ".join(order) if stage == "all" else stage
    done = [n for n in done if n in order]
    if done:
        stages += f" (done already: {', '.join(done)})"
    held = (
        "a C with random Cauchy weights on an untrained V and M, as released"
        if r.random_policy == "weights"
        else f"each action held 1..{r.random_hold_max} steps"
        if r.random_hold_max
        else ("a new action every step" if r.random_hold == 1 else f"held {r.random_hold} steps")
    )
    drop = (
        f"; episodes of <= {r.min_random_length} steps collected again"
        if r.min_random_length
        else ""
    )
    c_in = {"z": "z alone", "zh": "[z, h]", "zch": "[z, c, h]"}[r.c_input]
    where = f"the dream (tau {r.temperature:g})" if r.in_dream else "the real task"
    dream_eps = cfg.generations * cfg.population * cfg.rollouts_per_candidate
    every = "generation" if cfg.eval_every == 1 else f"{cfg.eval_every} generations"
    scored = min(cfg.eval_episodes, cfg.rollouts_per_candidate)
    checks = (
        f"; the mean scored on {scored} real episode{'s' if scored > 1 else ''} every {every}"
        if cfg.eval_every
        else ""
    )
    if r.iterations > 1:
        rounds = (
            f"{r.iterations} rounds: each after the first collects "
            f"{cfg.iteration_rollouts or cfg.rollouts:,} rollouts with C (+ N(0, "
            f"{cfg.iteration_noise:g}^2) on its action), trains M "
            f"{cfg.iteration_mdn_steps or cfg.mdn_steps:,} more updates and runs "
            f"{cfg.generations} more generations of a CMA-ES started "
            f"{'at C = 0' if cfg.iteration_restart == 'zero' else 'around the last C'}"
        )
    elif cfg.iterations > 1:
        rounds = "1 (C evolves in the real task; iterative training refines a dream)"
    else:
        rounds = "1 (one pass on the random rollouts)"
    rows = [
        (
            "preset",
            console.preset_line(
                cfg,
                preset,
                {
                    p: lambda p=p: world_models_config.preset(p, cfg.env)
                    for p in world_models_config.PRESETS
                },
            ),
        ),
        ("env", f"{env}; score: {measure}"),
        ("devices", console.devices_line()),
        ("stages", stages),
        ("rollouts", f"{cfg.rollouts:,} random ({held}{drop})"),
        (
            "V",
            f"conv VAE, z {r.vae.z_dim}, depth {r.vae.depth}: {cfg.vae_steps:,} updates of "
            f"{cfg.vae_batch} frames (from at most {cfg.vae_max_frames:,} frames)",
        ),
        (
            "M",
            f"MDN-LSTM, {r.mdn.hidden} units, {r.mdn.mixtures} Gaussians per dim: "
            f"{cfg.mdn_steps:,} updates of {cfg.mdn_batch} x {r.mdn_seq_len}-step "
            f"{'chunks of episode streams' if cfg.mdn_batches == 'streams' else 'windows'}",
        ),
    ]
    if cfg.calibrate_episodes and r.reward == "head" and not r.mdn.reward_head:
        rows.append(("calibrate", "skipped: M has no reward head (C trains in the real task)"))
    elif cfg.calibrate_episodes:
        rows.append(
            (
                "calibrate",
                f"{len(policies(r.action_map))} simple policies x {cfg.calibrate_episodes} "
                "episodes, in the dream and in the real task",
            )
        )
    rows += [
        (
            "C",
            f"linear on {c_in}{'' if r.c_bias else ' (no bias)'}; CMA-ES in {where}: "
            f"{cfg.generations} generations x {cfg.population} candidates x "
            f"{cfg.rollouts_per_candidate} rollout{'s' if cfg.rollouts_per_candidate > 1 else ''}"
            f" = {dream_eps:,} episodes{checks}",
        ),
        ("iterations", rounds),
        (
            "evaluate",
            f"C on {cfg.eval_episodes} real episodes beside {cfg.random_episodes} of i.i.d. "
            f"random actions; a real-vs-dream video of {cfg.video_length} steps",
        ),
        (
            "output",
            f"{logdir}/  evaluate.json, metrics.jsonl, TensorBoard events, videos/, "
            "learning_curves.png; rollouts/; vae/, mdn/, controller/: checkpoints, metrics",
        ),
    ]
    gpu_sized = (
        cfg.rollouts >= 2000 or cfg.vae_steps >= 20_000 or dream_eps >= 100_000
    ) and stage in ("all", "collect", "vae", "controller")
    quick = world_models_config.quick()
    warn = console.gpu_sized_warning(
        f"the collect stage alone plays {cfg.rollouts:,} real {cfg.env} episodes (hours on a "
        f"CPU), then V trains {cfg.vae_steps:,} updates, M {cfg.mdn_steps:,} and CMA-ES runs "
        f"{cfg.generations} generations of {cfg.population} x {cfg.rollouts_per_candidate} "
        "episodes: a day or more on a CPU",
        f"--preset=quick ({quick.rollouts} rollouts, {quick.vae_steps:,} V and "
        f"{quick.mdn_steps:,} M updates, {quick.generations} generations of {quick.population} "
        f"x {quick.rollouts_per_candidate}; every Doom stage in 35-45 min on 2 cores)",
        backend,
    )
    return console.banner(f"World Models on {cfg.env}", rows, warn if gpu_sized else [])


def summary_rows(summary: dict[str, Any], command: str = "jaxplanet-world-models") -> list:
    """The end table's rows (`train_and_evaluate`'s or `evaluate_run`'s summary): the stages
    that ran, wall and CPU time, C's real score beside the random policy's and what the
    difference means, and where the outputs are (``command``: how to evaluate again)."""
    logdir, directory = Path(summary["logdir"]), Path(summary["directory"])
    rows = []
    if "stage_seconds" in summary:
        ran = summary["stage_seconds"]
        rows.append(
            (
                "stages run",
                ", ".join(f"{k} {console.format_duration(v)}" for k, v in ran.items())
                or "none: every stage's result was there already",
            )
        )
    rows += console.time_rows(summary["wall_seconds"], summary.get("cpu_seconds"))
    if "eval_return_mean" in summary:
        rows += _result_rows(summary)
    elif summary.get("stage") not in (None, "all", "evaluate"):
        rows.append(("result", "none yet: --stage=all runs the remaining stages"))
    rows += _calibration_rows(logdir)
    if summary.get("note"):
        rows.append(("note", summary["note"]))
    if (directory / "evaluate.json").exists():
        rows.append(("result", str(directory / "evaluate.json")))
    stage_metrics = [] if directory != logdir else ["{vae,mdn,controller}/metrics.jsonl"]
    rows += console.output_rows(
        directory,
        ["metrics.jsonl", *stage_metrics],
        videos="left: a real episode of C; right: M's dream from its first frame",
        evaluate=f"{command} --logdir={logdir} --mode=eval --eval_episodes=N",
    )
    return rows


def _result_rows(s: dict[str, Any]) -> list[tuple[str, str]]:
    """C's score beside the random policy's, their ratio and what the difference means."""
    key, unit = ("length", "steps survived") if s.get("survival") else ("return", "return")
    c_mean, c_std, n = s[f"eval_{key}_mean"], s[f"eval_{key}_std"], s["eval_episodes"]
    r_mean, r_std, m = s[f"random_{key}_mean"], s[f"random_{key}_std"], s["random_episodes"]
    gen, rounds = s.get("controller_generation"), s.get("rounds", 1)
    where = f", round {s.get('controller_round', 0)} of {rounds}" if rounds > 1 else ""
    rows = [
        (
            "C (controller)",
            f"{c_mean:.2f} ± {c_std:.2f} {unit}, mean ± std over {n} real episodes"
            + (f" (the CMA-ES mean of generation {gen}{where})" if gen is not None else ""),
        ),
        (
            "random policy",
            f"{r_mean:.2f} ± {r_std:.2f} {unit} over {m} real episodes of i.i.d. uniform actions",
        ),
    ]
    se = math.sqrt(c_std**2 / max(n, 1) + r_std**2 / max(m, 1))
    diff = c_mean - r_mean
    if abs(diff) > 2 * se:
        meaning = f"C is {'better' if diff > 0 else 'worse'} than random (beyond 2 std errors)"
    else:
        meaning = "within 2 std errors of random: no clear difference"
    versus = f"{c_mean / r_mean:.2f}x" if r_mean > 0 else f"difference {diff:+.2f}"
    rows.append(("C vs random", f"{versus}; {meaning}"))
    if f"still_{key}_mean" in s:  # evaluate.json written before standing still was scored lacks it
        rows.append(
            (
                "C = 0 (a = 0)",
                f"{s[f'still_{key}_mean']:.2f} ± {s[f'still_{key}_std']:.2f} {unit} on C's "
                f"episodes ({ZERO_ACTION.get(s.get('env'), 'a constant a = 0')})",
            )
        )
    if s.get("env") in PAPER_RESULTS:
        rows.append(("paper", PAPER_RESULTS[s["env"]]))
    return rows


def _calibration_rows(logdir: Path) -> list[tuple[str, str]]:
    """The calibrate stage's verdict (from ``calibrate.json``), if it ran."""
    try:
        report = json.loads((logdir / "calibrate.json").read_text())
    except (OSError, ValueError):
        return []
    if "warnings" not in report:
        return []
    if report["warnings"]:
        return [
            (
                "calibration",
                f"{len(report['warnings'])} warning(s): the dream mis-ranks simple policies "
                f"(see {logdir / 'calibrate.json'})",
            )
        ]
    return [
        (
            "calibration",
            f"the dream ranks the {len(report['policies'])} simple policies as the real task "
            f"does (Spearman {report['spearman']:.2f})",
        )
    ]

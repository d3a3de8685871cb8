"""What a SOLAR run prints: the start banner, the end table and a one-line config summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxplanet import envs
from jaxplanet.core import config as config_lib
from jaxplanet.core import console, timing
from jaxplanet.solar import config as solar_config
from jaxplanet.solar.config import PRESETS, SolarConfig

__all__ = ["banner", "config_summary", "eval_banner", "summary_rows"]


def banner(
    cfg: SolarConfig,
    logdir: str | Path,
    preset: str = "",
    spec: envs.EnvSpec | None = None,
    backend: str | None = None,
) -> str:
    """The start-of-run block: what runs (policy, model, budget), on what, where its outputs go,
    and a warning when GPU-sized settings run on a CPU (``backend``, default JAX's). Built
    from the config alone (``spec``, the task's `EnvSpec`, adds its sizes)."""
    m = cfg.model
    env = cfg.env
    if spec is not None:
        env = console.env_line(spec, f"{cfg.horizon} agent steps per rollout")
    if cfg.policy == "lqr_flm":
        policy = (
            f"LQR-FLM: time-varying linear-Gaussian, KL bound {cfg.kl_step:g} x {cfg.horizon} x "
            f"step_mult ({cfg.min_step_mult:g}-{cfg.max_step_mult:g}) per iteration; local "
            f"dynamics by EM ({cfg.em_iterations} iterations)"
        )
    else:
        p = cfg.mpc
        policy = (
            f"MPC baseline: CEM on the latent model, horizon {p.horizon}, {p.iterations} "
            f"iterations, {p.candidates} candidates, top {p.top_k}"
        )
    encoder = "spatial-softmax" if m.encoder == "spatial_softmax" else "conv"
    model = (
        f"{'SOLAR' if m.variant == 'solar' else 'VAE ablation'}: latent {m.latent}"
        + (
            f" ({m.latent // 2} positions seen, {m.latent // 2} velocities inferred)"
            if m.velocity
            else ""
        )
        + ", "
        + f"{m.dynamics.replace('_', '-')} MNIW dynamics, {encoder} encoder "
        + (f"on windows of {m.frames} frames " if m.frames > 1 else "")
        + f"{tuple(m.channels)}, hidden {m.hidden}, lr {m.lr:g}"
        + (", canvas" if m.canvas else "")
    )
    episodes = cfg.pretrain_rollouts + cfg.iterations * cfg.rollouts
    steps = cfg.pretrain_steps + cfg.iterations * cfg.model_steps
    rows = [
        (
            "preset",
            console.preset_line(
                cfg, preset, {p: lambda p=p: solar_config.preset(p, cfg.env) for p in PRESETS}
            ),
        ),
        ("env", env),
        ("devices", console.devices_line()),
        ("policy", policy),
        ("model", model),
        (
            "pretraining",
            f"{cfg.pretrain_rollouts} rollouts of Gaussian random actions (std "
            f"{cfg.pretrain_action_std:g}"
            + (
                f", each held {cfg.pretrain_action_hold} steps"
                if cfg.pretrain_action_hold > 1
                else ""
            )
            + f"), {cfg.pretrain_steps:,} model steps"
            + (", from random starts" if cfg.pretrain_random_start else ""),
        ),
        (
            "iterations",
            f"{cfg.iterations} x ({cfg.rollouts} rollouts, {cfg.model_steps} model steps, "
            f"policy update), {cfg.eval_episodes} noise-free eval episode(s) each",
        ),
        (
            "budget",
            f"{episodes} rollouts ({episodes * cfg.horizon:,} agent steps), {steps:,} model "
            f"steps on batches of {cfg.batch_size} x {cfg.horizon + 1} frames",
        ),
        (
            "output",
            f"{logdir}/  metrics.jsonl, TensorBoard events, videos/, learning_curves.png, "
            "checkpoints/, episodes/",
        ),
    ]
    frames = steps * cfg.batch_size * (cfg.horizon + 1)
    quick = solar_config.quick()
    warn = console.gpu_sized_warning(
        f"{steps:,} model steps on batches of {cfg.batch_size} x {cfg.horizon + 1} 64x64 frames "
        f"({frames / 1e6:.1f} M frames through the encoder and decoder): many hours on a CPU",
        f"--preset=quick (nav2d, {quick.pretrain_steps + quick.iterations * quick.model_steps} "
        f"model steps of {quick.batch_size} x {quick.horizon + 1} frames; about 5 min on 2 cores)",
        backend,
    )
    return console.banner(f"SOLAR on {cfg.env}", rows, warn if frames >= 1_000_000 else [])


def _return_text(value: float, success: float | None, what: str) -> str:
    """'-12.33, success 0%  <what>' (no success part for tasks without a goal)."""
    part = f", success {success:.0%}" if success is not None else ""
    return f"{value:.2f}{part}  {what}"


def summary_rows(summary: dict[str, Any], command: str = "jaxplanet-solar") -> list:
    """The end table's rows (`train_and_evaluate`'s or `evaluate_run`'s summary): budget, wall
    and CPU time, the evaluation beside the random policy and what it means, where the outputs
    are (``command``: how to evaluate again)."""
    logdir = Path(summary["logdir"])
    directory = Path(summary.get("directory", logdir))
    rows = []
    if "episodes" in summary:
        rows.append(
            (
                "rollouts",
                f"{summary['episodes']} ({summary['env_steps']:,} env steps, "
                f"{summary['grad_steps']:,} model steps)",
            )
        )
    rows += console.time_rows(summary["wall_seconds"], summary.get("cpu_seconds"), "this process")
    if summary.get("time_shares"):
        rows.append(("time went to", timing.format_shares(summary["time_shares"])))
    if "eval_return_mean" in summary:  # --mode=eval: every episode of this evaluation
        n = summary["eval_episodes"]
        rows.append(
            (
                "eval return",
                f"{summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f}  mean ± "
                f"std over {n} noise-free episode(s), the policy after iteration "
                f"{summary['iteration']}",
            )
        )
        rate = summary.get("eval_success_rate")
    elif "eval_return" in summary:
        n = summary.get("eval_episodes", 1)
        rows.append(
            (
                "eval return",
                f"{summary['eval_return']:.2f}  mean of {n} noise-free episode(s) after "
                f"iteration {summary.get('eval_iteration')}",
            )
        )
        rate = summary.get("eval_success")
    else:
        rate = None
    if rate is not None:
        rows.append(
            ("eval success", f"{round(rate * n)}/{n} episodes end in the goal region ({rate:.0%})")
        )
    if "random_return" in summary:
        success = summary.get("random_success")
        episodes = summary.get("random_episodes", "the")
        what = f"mean of {episodes} rollouts of Gaussian random actions"
        rows.append(("random return", _return_text(summary["random_return"], success, what)))
        ours = summary.get("eval_return_mean", summary.get("eval_return"))
        if ours is not None:
            diff = ours - summary["random_return"]
            meaning = f"{'above' if diff > 0 else 'below'} random by {abs(diff):.2f} return"
            if rate is not None and success is not None:
                meaning += f"; goal reached {rate:.0%} vs random's {success:.0%}"
            rows.append(("eval vs random", meaning))
    if "train_return" in summary:
        what = "mean of the last iteration's rollouts (with policy noise)"
        text = _return_text(summary["train_return"], summary.get("train_success"), what)
        rows.append(("last train return", text))
    rows += console.output_rows(
        directory,
        videos="left: real frames; right: the model's smoothed reconstructions",
        evaluate=f"{command} --logdir={logdir} --mode=eval --eval_episodes=N",
    )
    return rows


def config_summary(cfg: SolarConfig) -> str:
    """Non-default fields, one line."""
    default = config_lib.flatten(config_lib.to_dict(SolarConfig()))
    current = config_lib.flatten(config_lib.to_dict(cfg))
    return ", ".join(f"{k}={v}" for k, v in current.items() if default.get(k) != v) or "defaults"


def eval_banner(cfg: SolarConfig, spec: envs.EnvSpec, logdir: str | Path, iteration: int) -> str:
    """``--mode=eval``'s start block: the run, the task, devices, what is scored, the output."""
    return console.eval_banner(
        f"SOLAR evaluation of {logdir}",
        console.env_line(spec, f"{cfg.horizon} agent steps per rollout"),
        [
            ("policy", f"the newest checkpoint's: the policy after iteration {iteration}"),
            (
                "episodes",
                f"{cfg.eval_episodes} noise-free episode(s), the in-training evaluation's env "
                "seeds and keys; a reconstruction video each",
            ),
            ("output", f"{Path(logdir) / 'eval'}/  metrics.jsonl, TensorBoard events, videos/"),
        ],
    )

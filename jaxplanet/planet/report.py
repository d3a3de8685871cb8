"""What a PlaNet run prints: the start banner, the configuration lines and the end table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jaxplanet.core import console, timing
from jaxplanet.core import logging as logging_lib
from jaxplanet.planet.config import PRESETS, PlanetConfig
from jaxplanet.planet.functions import replay_device

__all__ = ["banner", "describe", "eval_banner", "eval_rows", "summary_rows"]


def banner(cfg: PlanetConfig, run: Any, preset: str, capacity: int, nbytes: int) -> str:
    """The start-of-run block: what runs, on what, and where its outputs go (``run``: the
    loop's `agent.Run`)."""
    spec, host = run.spec, replay_device(cfg) is not None
    gpu_sized = cfg.model.deter >= 200 and cfg.episodes >= 500
    cost = (
        "on a CPU one training episode takes minutes (about 15 min on 2 cores at the paper "
        "size) and the run takes days"
    )
    warnings = console.gpu_sized_warning(cost) if gpu_sized else []
    rows = [
        ("preset", console.preset_line(cfg, preset, PRESETS)),
        (
            "env",
            console.env_line(spec),
        ),
        ("devices", console.devices_line()),
        *(
            [("rendering", f"MuJoCo, MUJOCO_GL={run.lanes[0].env.backend}")]
            if hasattr(run.lanes[0].env, "backend")
            else []
        ),
        (
            "replay",
            f"{capacity} steps, {nbytes / 2**20:.1f} MiB in "
            f"{'host memory (batches prefetched to the device)' if host else 'device memory'}",
        ),
        (
            "episodes",
            f"{cfg.episodes} ({cfg.seed_episodes} random, then {cfg.train_steps} "
            f"updates + 1 planned episode each; eval every {cfg.eval_every})",
        ),
        (
            "output",
            f"{run.logdir}/  metrics.jsonl, TensorBoard events, videos/, checkpoints/, episodes/"
            if cfg.num_seeds == 1
            else f"{run.logdir}/  checkpoints/, learning_curves.png; seed_0/ .. "
            f"seed_{cfg.num_seeds - 1}/: metrics.jsonl, TensorBoard events, videos/, episodes/",
        ),
    ]
    if cfg.num_envs > 1 or cfg.num_seeds > 1 or run.mesh is not None or cfg.collect == "device":
        where = "on the device (lax.scan)" if cfg.collect == "device" else "from the host"
        rows.insert(
            3,
            (
                "scale",
                f"{cfg.num_seeds} seed(s) x {cfg.num_envs} env(s) per round, collected {where}; "
                f"{run.mesh.devices.size if run.mesh is not None else 1} device(s) for training",
            ),
        )
    return console.banner(f"PlaNet on {spec.name}", rows, warnings) + "\n" + describe(cfg)


def summary_rows(
    summary: dict[str, Any], command: str = "jaxplanet-planet"
) -> list[tuple[str, str]]:
    """The end-of-run table's rows (see `train_and_evaluate` for the keys; ``command``: how to
    evaluate again). A ``--mode=eval`` summary (`evaluate.evaluate_run`) gets `eval_rows`."""
    if "checkpoint_episodes" in summary:
        return eval_rows(summary)
    logdir = Path(summary["logdir"])
    rows = [
        (
            "episodes",
            f"{summary['episodes']} ({summary['env_steps']} env steps, "
            f"{summary['grad_steps']} gradient updates)",
        ),
        *console.time_rows(summary["wall_seconds"], summary.get("cpu_seconds")),
    ]
    if summary.get("time_shares"):
        rows.append(("time went to", timing.format_shares(summary["time_shares"])))
    if "eval_return_mean" in summary:
        rows.append(
            (
                "eval return",
                f"{summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f}  mean ± std "
                f"over {len(summary['seeds'])} seeds (per seed: "
                + ", ".join(f"{r['eval_return']:.2f}" for r in summary["seeds"])
                + ")",
            )
        )
    elif "eval_return" in summary:
        rows.append(
            (
                "eval return",
                f"{summary['eval_return']:.2f}  mean of "
                f"{summary['eval_episodes']} noise-free episode(s) after episode "
                f"{summary['eval_episode']}",
            )
        )
    if "random_return_mean" in summary:
        rows.append(
            (
                "random return",
                f"{summary['random_return_mean']:.2f} ± {summary['random_return_std']:.2f}  "
                "mean ± std over seeds of each seed's random seed episodes",
            )
        )
    elif "random_return" in summary:
        rows.append(
            ("random return", f"{summary['random_return']:.2f}  mean of the random seed episodes")
        )
    if "train_return_mean" in summary:
        rows.append(
            (
                "last train return",
                f"{summary['train_return_mean']:.2f} ± {summary['train_return_std']:.2f}  "
                "mean ± std over seeds, one episode with exploration noise each",
            )
        )
    elif "train_return" in summary:
        rows.append(
            (
                "last train return",
                f"{summary['train_return']:.2f}  one episode with exploration noise",
            )
        )
    seed_dirs = "seed_*/" if "seeds" in summary else ""
    rows += [
        ("metrics", str(logdir / seed_dirs / logging_lib.METRICS_FILE)),
        ("TensorBoard", f"tensorboard --logdir {logdir}"),
    ]
    if seed_dirs:
        rows.append(("videos", f"{logdir / seed_dirs / 'videos'}/"))
    elif (logdir / "videos").is_dir():
        rows.append(
            (
                "videos",
                f"{logdir / 'videos'}/  (real frames beside the model's open-loop predictions)",
            )
        )
    plots = sorted(logdir.glob("*.png"))
    if plots:
        rows.append(("plot", str(plots[0])))
    rows.append(("evaluate", f"{command} --logdir={logdir} --mode=eval --eval_episodes=N"))
    return rows


def eval_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The ``--mode=eval`` table's rows (`evaluate.evaluate_run`'s summary)."""
    n = summary["eval_episodes"]
    rows = [
        (
            "checkpoint",
            f"after episode {summary['checkpoint_episodes']} ({summary['env_steps']} env steps)",
        ),
        *console.time_rows(summary["wall_seconds"], summary.get("cpu_seconds"), "this process"),
        (
            "eval return",
            f"{summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f}  mean ± std "
            f"over {n} noise-free episode(s)",
        ),
    ]
    if "seeds_eval_return_mean" in summary:
        rows.append(
            (
                "over seeds",
                f"{summary['seeds_eval_return_mean']:.2f} ± "
                f"{summary['seeds_eval_return_std']:.2f}  mean ± std of the seeds' means "
                "(seed 0's above; each seed's under seed_k/eval/)",
            )
        )
    rows += console.output_rows(
        summary["directory"], videos="real frames beside the model's open-loop predictions"
    )
    return rows


def describe(cfg: PlanetConfig) -> str:
    """The configuration a run uses, as a few readable lines (printed at start-up)."""
    m, p = cfg.model, cfg.planner
    losses = (
        f"image + {m.reward_scale:g} x reward NLL + {m.kl_scale:g} x KL, free nats {m.free_nats:g}"
    )
    if m.overshooting_distance > 1:
        losses += f", overshooting D={m.overshooting_distance} beta={m.overshooting_kl_scale:g}"
    else:
        losses += ", no overshooting"
    return "\n".join(
        [
            f"  model: {m.variant}, deter {m.deter}, stoch {m.stoch}, hidden {m.hidden}, "
            f"conv depth {m.depth}, reward MLP {m.reward_layers} x {m.reward_hidden}",
            f"  loss: {losses}",
            f"  optimiser: Adam lr {m.lr:g} (ramp {m.lr_warmup} updates), eps {m.adam_eps:g}, "
            f"clip {m.grad_clip:g}; batch {cfg.batch_size} x {cfg.seq_length}, "
            f"{cfg.train_steps} updates per episode",
            f"  planner: CEM horizon {p.horizon}, {p.iterations} iterations, {p.candidates} "
            f"candidates, top {p.top_k}, discount {p.discount:g}, var_eps {p.var_eps:g}, "
            f"{'sampled' if p.sample else 'mean'} latent rollouts",
            f"  data: {cfg.seed_episodes} seed episodes, {cfg.episodes} episodes, exploration "
            f"noise {cfg.exploration_noise:g}, eval {cfg.eval_episodes} episode(s) every "
            f"{cfg.eval_every}",
        ]
    )


def eval_banner(cfg: PlanetConfig, spec: Any, logdir: str | Path, episodes: int) -> str:
    """``--mode=eval``'s start block: the run, the task, devices, what is scored, the output."""
    seeds = f" of each of {cfg.num_seeds} seeds" if cfg.num_seeds > 1 else ""
    out = Path(logdir) / ("seed_*/eval" if cfg.num_seeds > 1 else "eval")
    return console.eval_banner(
        f"PlaNet evaluation of {logdir}",
        console.env_line(spec),
        [
            ("checkpoint", f"the newest{seeds}: after episode {episodes}"),
            (
                "episodes",
                f"{cfg.eval_episodes} noise-free episode(s) with the planner, the in-training "
                "evaluation's env seeds and keys; an open-loop video each",
            ),
            ("output", f"{out}/  metrics.jsonl, TensorBoard events, videos/"),
        ],
    )

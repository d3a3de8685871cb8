"""Runs of different configs side by side: one curve (mean ± std over seeds) per config.

`jaxplanet.core.plot` averages seeds of one config and refuses runs of different configs; this
module is for the other question, which of several configs does better (SOLAR against its VAE
ablation and MPC, say). Runs are grouped by their ``config.json`` outside the seed and the
reporting fields (`plot.SEED_FREE_FIELDS`); each group is labelled by the fields in which the
groups differ (``model.variant=vae``), and every group's ``key`` (default ``eval_return``) is
drawn against env steps, with the random line of the runs that log one.

    write_comparison(["runs/solar_s0", "runs/solar_s1", "runs/vae_s0"], "compare.png")
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxplanet.core import plot

__all__ = [
    "MAX_LABEL_FIELDS",
    "comparison_figure",
    "group_runs",
    "summary_rows",
    "write_comparison",
]

#: A group's label names at most this many of the fields in which the groups differ.
MAX_LABEL_FIELDS = 3


def group_runs(runs: Sequence[plot.Run]) -> dict[str, list[plot.Run]]:
    """Runs grouped by config (outside the seed-free fields), in first-seen order.

    Returns:
      label -> runs; the label lists the fields whose values differ between groups as
      ``field=value`` (the first group's fields too), or the env name when there is one group.

    Raises:
      ValueError: no runs, a run without ``config.json`` (it cannot be grouped), or runs of
        different tasks (their returns are on different scales).
    """
    if not runs:
        raise ValueError("no runs to compare")
    missing = [run.name for run in runs if not run.config]
    if missing:
        raise ValueError(f"runs without config.json cannot be grouped: {', '.join(missing)}")
    tasks = {run.env: run.name for run in runs}
    if len(tasks) > 1:
        shown = ", ".join(f"{name} ({env})" for env, name in tasks.items())
        raise ValueError(f"runs of different tasks are not compared on one scale: {shown}")
    configs: list[dict] = []
    members: list[list[plot.Run]] = []
    for run in runs:
        fields = plot.compared_fields(run.config)
        for i, seen in enumerate(configs):
            if seen == fields:
                members[i].append(run)
                break
        else:
            configs.append(fields)
            members.append([run])
    keys = sorted({k for c in configs for k in c})
    differing = [k for k in keys if len({repr(c.get(k)) for c in configs}) > 1]

    def labels(most: int) -> list[str]:
        out = []
        for fields, group in zip(configs, members, strict=True):
            shown = ", ".join(f"{k}={fields.get(k)}" for k in differing[:most])
            if len(differing) > most:
                shown += f" (+{len(differing) - most} more)"
            out.append(shown or group[0].env or group[0].name)
        return out

    short = labels(MAX_LABEL_FIELDS)
    if len(set(short)) < len(short):  # groups that differ only beyond the first fields
        short = labels(len(differing))
    return dict(zip(short, members, strict=True))


def summary_rows(groups: dict[str, list[plot.Run]], key: str = "eval_return") -> list[dict]:
    """Per group: label, seeds, the mean and std over its runs of each run's last ``key`` and
    of the mean of its last two, and the env steps of the last row (the largest over runs)."""
    rows = []
    for label, runs in groups.items():
        last, last_two = [], []
        for run in runs:
            _, ys = plot.series(run.rows, key)
            last.append(float(ys[-1]) if ys.size else float("nan"))
            last_two.append(float(np.mean(ys[-2:])) if ys.size else float("nan"))
        steps = max(max(plot.number(r.get("step")) for r in run.rows) for run in runs)
        rows.append(
            {
                "label": label,
                "runs": len(runs),
                "final_mean": float(np.mean(last)),
                "final_std": float(np.std(last)),
                "last_two_mean": float(np.mean(last_two)),
                "last_two_std": float(np.std(last_two)),
                "env_steps": steps,
            }
        )
    return rows


def comparison_figure(
    groups: dict[str, list[plot.Run]], keys: Sequence[str] = ("eval_return",)
) -> Figure:
    """One panel per key of ``keys`` over env steps, one colour per group (thin line per run,
    mean ± std for 2+ runs; gids as in `plot`); on the first panel, the random line of the
    runs that log one (named in the legend as off the scale when it lies more than one span of
    the curves away from them). Not saved."""
    fig = Figure(figsize=(6.0 * len(keys), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(keys), squeeze=False).ravel()
    all_runs = [run for runs in groups.values() for run in runs]
    envs = ", ".join(dict.fromkeys(run.env for run in all_runs if run.env))
    fig.suptitle(f"{envs or 'runs'}: {len(groups)} configs, {len(all_runs)} runs")
    for k, (ax, key) in enumerate(zip(axes, keys, strict=True)):
        seen = []
        for i, (label, runs) in enumerate(groups.items()):
            curves = [(run.name, *plot.series(run.rows, key)) for run in runs]
            curves = [c for c in curves if c[1].size]
            if not curves:
                logged = sorted(
                    {name for run in runs for row in run.rows for name in row} - {"step"}
                )
                close = difflib.get_close_matches(key, logged, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise ValueError(f"group {label!r}: no run logged {key!r}{hint}")
            seen += [y for _, _, y in curves]
            plot.draw_curves(ax, curves, key, f"C{i % 10}", label=label)
        if k == 0:
            low, high = plot.return_range(seen, {})
            span = max(high - low, 1e-6)
            random = plot.reference_returns(all_runs).get("random")
            if random is not None:
                on_scale = low - span <= random <= high + span
                plot.draw_reference(ax, "random", random, on_scale)
                if on_scale:
                    low, high = min(low, random - 0.05 * span), max(high, random + 0.05 * span)
            ax.set_ylim(low, high)
        ax.set_title(key)
        ax.set_xlabel("env steps")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


def write_comparison(
    logdirs: str | os.PathLike | Iterable[str | os.PathLike],
    out_png: str | os.PathLike,
    key: str = "eval_return",
) -> tuple[Path, list[dict]]:
    """Groups the runs under ``logdirs`` (`plot.find_runs`) by config, draws `comparison_figure`
    of ``key`` (beside the success rate, for ``eval_return`` when every run logs
    ``eval_success``) to ``out_png`` (atomically) and returns (its path, `summary_rows`)."""
    runs = [plot.load_run(p) for p in plot.find_runs(logdirs)]
    groups = group_runs(runs)
    keys = [key]
    if key == "eval_return" and all(plot.series(run.rows, "eval_success")[0].size for run in runs):
        keys.append("eval_success")
    return plot.save_png(comparison_figure(groups, keys), out_png), summary_rows(groups, key)

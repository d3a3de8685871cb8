"""Learning curves from run directories: returns and loss terms over environment steps.

Reads the ``metrics.jsonl`` that `jaxplanet.core.logging.Logger` writes in each run directory
(PlaNet, World Models, SOLAR) and draws, with matplotlib's Agg backend (no display needed):

* a **return** panel: every ``*_return`` / ``*_return_mean`` key (train and evaluation, e.g.
  ``train_return``, ``eval_return``) against ``step`` (environment steps after action repeat),
  with horizontal reference lines for the random policy (``random_return`` or
  ``random_return_mean`` in the rows), for ``oracle_return`` / ``paper_return`` when a run logs
  them, and for the published figures of `PAPER_RETURNS` when the run's ``config.json`` names one
  of their tasks;
* for World Models, whose return keys all sit at one ``step`` (the end-of-run evaluation at
  step 0), the return panel is over CMA-ES **generations** instead: the real return of the
  CMA-ES mean at the periodic evaluations (``controller/real_return_of_mean``) and the
  population's mean fitness (``controller/fitness_mean``: in the dream, or in the real task
  when C evolves there, told by its rows' ``env_steps`` > 0) from ``controller/metrics.jsonl``,
  the random line, and the final C's evaluation (``eval_return_mean``) as a horizontal line
  with a star at the generation it came from (``controller_generation``); the other step-0 keys
  (``controller_real_return``, ...) are not drawn there. This holds when every run's returns
  lie at a single step (or none yet) and every run logged ``controller/real_return_of_mean``;
* a **success** panel when rows carry ``*_success``;
* one panel per **loss term**: every key with a ``/`` (``train/loss``, ``train/kl``, ...) but the
  timings ``time/*`` (seconds per phase, which the end-of-run tables report), and
  those of stage sub-directories holding their own ``metrics.jsonl`` (World Models' ``vae/``,
  ``mdn/``, ``controller/``, whose ``step`` counts updates or generations).

Several run directories (seeds) give one thin curve per run and their mean ± std (runs are
interpolated onto the union of their steps, within each run's range). Runs are averaged only
when their ``config.json`` agree in every field but the seed and the reporting fields of
`SEED_FREE_FIELDS` (a run of another preset or setting is refused, naming the differing
fields). The return panel's vertical range is the runs' own curves and the random line: a
published figure far above them (a CPU-sized run beside the paper's ~850) is named in the
legend as off the scale instead of squashing the curves. Missing keys, single rows and NaN
values are tolerated; a directory without rows is a clear error.

    write_learning_curves(["runs/s0", "runs/s1"], "curves.png")   # -> Path("curves.png")
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from jaxplanet.core import config as config_lib
from jaxplanet.core.logging import METRICS_FILE, read_metrics

__all__ = [
    "PAPER_RETURNS",
    "SEED_FREE_FIELDS",
    "Run",
    "check_same_config",
    "compared_fields",
    "draw_curves",
    "draw_reference",
    "find_runs",
    "learning_curves_figure",
    "load_run",
    "number",
    "reference_returns",
    "return_range",
    "save_png",
    "series",
    "try_write_learning_curves",
    "write_learning_curves",
]

DEFAULT_FILE = "learning_curves.png"

#: Published returns per task: env name -> {label: return}. PlaNet: Hafner et al. 2019,
#: Table 1 (the agent, and CEM planning with the true simulator). World Models: Ha &
#: Schmidhuber 2018, CarRacing-v0 (average over 100 trials).
PAPER_RETURNS: dict[str, dict[str, float]] = {
    "cartpole_swingup": {"PlaNet (paper)": 821.0, "CEM + true simulator (paper)": 850.0},
    "reacher_easy": {"PlaNet (paper)": 832.0, "CEM + true simulator (paper)": 964.0},
    "cheetah_run": {"PlaNet (paper)": 662.0, "CEM + true simulator (paper)": 656.0},
    "finger_spin": {"PlaNet (paper)": 700.0, "CEM + true simulator (paper)": 840.0},
    "ball_in_cup_catch": {"PlaNet (paper)": 930.0, "CEM + true simulator (paper)": 993.0},
    "walker_walk": {"PlaNet (paper)": 951.0, "CEM + true simulator (paper)": 993.0},
    "car_racing": {"World Models (paper)": 906.0},
}

#: config.json fields that may differ between runs averaged in one plot: the seed, and fields that
#: change only how long a run goes or what it reports (of PlaNet, World Models and SOLAR).
SEED_FREE_FIELDS = frozenset(
    {
        "seed",
        "episodes",
        "iterations",
        "generations",
        "eval_every",
        "eval_episodes",
        "video",
        "video_length",
        "progress",
        "debug_nans",
        "keep_checkpoints",
        "checkpoint_every",
        "workers",
        "devices",
    }
)

_RETURN = re.compile(r"^(?!random|oracle|paper)[^/]*return(_mean)?$")
_REFERENCE = {
    "random_return": "random",
    "random_return_mean": "random",
    "oracle_return": "oracle",
    "paper_return": "paper",
}
_SUCCESS = re.compile(r"^(?!random)[^/]*_success$")
_SKIP_SUBDIRS = {"set_aside", "eval", "checkpoints", "episodes", "videos"}
#: World Models' controller stage: the real return of the CMA-ES mean, the population's fitness.
_REAL_OF_MEAN = "controller/real_return_of_mean"
_FITNESS_MEAN = "controller/fitness_mean"


class Run(NamedTuple):
    """One run directory's metrics.

    Attributes:
      name: label of the run (its directory name).
      env: the ``env`` of its ``config.json`` ("" when unknown).
      rows: rows of its ``metrics.jsonl`` (dicts with ``step``).
      stages: sub-directory name -> its rows (World Models' vae / mdn / controller).
      config: its ``config.json`` ({} when missing or unreadable).
    """

    name: str
    env: str
    rows: list[dict]
    stages: dict[str, list[dict]]
    config: dict = {}


def number(value: Any) -> float:
    """A row value as float; NaN for missing, non-numeric or non-finite ("nan", "inf")."""
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out if math.isfinite(out) else math.nan


def find_runs(logdir_or_dirs: str | os.PathLike | Iterable[str | os.PathLike]) -> list[Path]:
    """Run directories: each given directory holding ``metrics.jsonl``, or else its immediate
    sub-directories that do (a folder of seeds).

    Raises:
      FileNotFoundError: a directory does not exist or holds no run.
    """
    dirs = [logdir_or_dirs] if isinstance(logdir_or_dirs, str | os.PathLike) else logdir_or_dirs
    runs: list[Path] = []
    for d in map(Path, dirs):
        if not d.is_dir():
            raise FileNotFoundError(f"--logdir {d}: no such directory")
        if (d / METRICS_FILE).is_file():
            runs.append(d)
            continue
        subs = sorted(p for p in d.iterdir() if (p / METRICS_FILE).is_file())
        if not subs:
            raise FileNotFoundError(
                f"--logdir {d}: no {METRICS_FILE} in it or in its sub-directories (not a run "
                "directory, or the run has not written any metrics yet)"
            )
        runs.extend(subs)
    if not runs:
        raise FileNotFoundError("no run directories given")
    return runs


def load_run(logdir: str | os.PathLike) -> Run:
    """Reads ``logdir/metrics.jsonl``, the stage sub-directories' and ``config.json``'s env
    (a ``seed_<k>`` directory of a ``--num_seeds`` run takes its program's, one level up).

    Raises:
      FileNotFoundError: no ``metrics.jsonl`` in ``logdir``.
      ValueError: the file holds no rows with a ``step``.
    """
    logdir = Path(logdir)
    path = logdir / METRICS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"--logdir {logdir}: no {METRICS_FILE}")
    rows = [r for r in read_metrics(path) if isinstance(r, dict) and "step" in r]
    if not rows:
        raise ValueError(f"{path}: no metric rows yet (the run has not logged anything)")
    stages = {}
    for sub in sorted(p for p in logdir.iterdir() if p.is_dir() and p.name not in _SKIP_SUBDIRS):
        if (sub / METRICS_FILE).is_file():
            sub_rows = [r for r in read_metrics(sub) if isinstance(r, dict) and "step" in r]
            if sub_rows:
                stages[sub.name] = sub_rows
    config: dict = {}
    config_path = logdir / "config.json"
    if not config_path.is_file() and re.fullmatch(r"seed_\d+", logdir.name):
        config_path = logdir.parent / "config.json"
    try:
        loaded = json.loads(config_path.read_text())
        config = loaded if isinstance(loaded, dict) else {}
    except (OSError, ValueError):
        pass
    return Run(logdir.name or str(logdir), str(config.get("env", "")), rows, stages, config)


def compared_fields(config: dict) -> dict[str, Any]:
    """The dotted fields of ``config`` that runs averaged together must share."""
    return {k: v for k, v in config_lib.flatten(config).items() if k not in SEED_FREE_FIELDS}


def check_same_config(runs: Sequence[Run]) -> None:
    """Raises ValueError unless every run's config equals the first's outside `SEED_FREE_FIELDS`
    (runs without a ``config.json`` are not compared).

    The error names the first differing runs and up to five differing fields with both values.
    """
    known = [run for run in runs if run.config]
    if len(known) < 2:
        return
    first = compared_fields(known[0].config)
    for run in known[1:]:
        other = compared_fields(run.config)
        diff = sorted(k for k in first.keys() | other.keys() if first.get(k) != other.get(k))
        if diff:
            shown = ", ".join(f"{k}: {first.get(k)!r} vs {other.get(k)!r}" for k in diff[:5])
            more = f" and {len(diff) - 5} more" if len(diff) > 5 else ""
            raise ValueError(
                f"runs {known[0].name} and {run.name} have different configs ({shown}{more}); "
                "only seeds of one config are averaged: plot them separately"
            )


def series(rows: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """Finite (step, value) points of ``key``, sorted by step (last row wins per step)."""
    points = {}
    for r in rows:
        if key in r:
            x, y = number(r.get("step")), number(r[key])
            if not (math.isnan(x) or math.isnan(y)):
                points[x] = y
    xs = np.array(sorted(points), dtype=np.float64)
    return xs, np.array([points[x] for x in xs], dtype=np.float64)


def _keys(rows: Iterable[dict], pattern: re.Pattern | None = None, slash: bool = False) -> list:
    seen: dict[str, None] = {}
    for r in rows:
        for k, v in r.items():
            if k == "step" or isinstance(v, bool | list | dict):
                continue
            loss_term = slash and "/" in k and not k.startswith("time/")
            if (pattern is not None and pattern.match(k)) or loss_term:
                seen[k] = None
    return list(seen)


def reference_returns(runs: Sequence[Run]) -> dict[str, float]:
    """Horizontal reference lines: label -> return.

    From the rows (``random_return``/``random_return_mean``, ``oracle_return``,
    ``paper_return``; the mean over the runs that log them) and from `PAPER_RETURNS` for the
    runs' env.
    """
    values: dict[str, list[float]] = {}
    for run in runs:
        for key, label in _REFERENCE.items():
            _, ys = series(run.rows, key)
            if ys.size:
                values.setdefault(label, []).append(float(ys[-1]))
    refs = {label: float(np.mean(v)) for label, v in values.items()}
    for env in dict.fromkeys(run.env for run in runs):
        refs.update(PAPER_RETURNS.get(env, {}))
    return refs


def _mean_std(curves: list[tuple[np.ndarray, np.ndarray]]):
    """Mean and std over runs on the union of their steps (each run only within its range)."""
    grid = np.unique(np.concatenate([x for x, _ in curves]))
    stack = np.full((len(curves), grid.size), np.nan)
    for i, (x, y) in enumerate(curves):
        inside = (grid >= x[0]) & (grid <= x[-1])
        stack[i, inside] = np.interp(grid[inside], x, y)
    count = np.sum(~np.isnan(stack), axis=0)
    mean = np.nansum(stack, axis=0) / np.maximum(count, 1)
    var = np.nansum((stack - mean) ** 2, axis=0) / np.maximum(count, 1)
    keep = count > 0
    return grid[keep], mean[keep], np.sqrt(var[keep])


def draw_curves(
    ax,
    curves: list[tuple[str, np.ndarray, np.ndarray]],
    key: str,
    color,
    label: str | None = None,
    marker: str | None = None,
) -> None:
    """One thin line per run (gid ``run:<name>:<key>``) and, for 2+ runs, mean ± std.

    ``label`` names the curve in the legend (default ``key``); ``marker`` marks every point
    (default: only curves of fewer than 3 points, with "o").
    """
    several = len(curves) > 1
    label = label or key
    for name, x, y in curves:
        (line,) = ax.plot(
            x,
            y,
            color=color,
            lw=0.8 if several else 1.5,
            alpha=0.45 if several else 1.0,
            marker=marker or ("o" if x.size < 3 else None),
            ms=4,
            label=None if several else label,
        )
        line.set_gid(f"run:{name}:{key}")
    if several:
        grid, mean, std = _mean_std([(x, y) for _, x, y in curves])
        (line,) = ax.plot(grid, mean, color=color, lw=2.0, label=f"{label} (mean ± std)")
        line.set_gid(f"mean:{key}")
        ax.fill_between(grid, mean - std, mean + std, color=color, alpha=0.2, lw=0)


def draw_reference(ax, label: str, value: float, on_scale: bool, ls: str = "--") -> None:
    """A grey horizontal reference line at ``value``; off the panel's scale, only a legend entry
    naming its value (not drawn; gid ``offscale:<label>``)."""
    style = dict(color="0.3", ls=ls, lw=1.0)
    if on_scale:
        ax.axhline(value, **style, label=label)
    else:
        (line,) = ax.plot([], [], **style, label=f"{label}: {value:.4g} (off scale)")
        line.set_gid(f"offscale:{label}")


def _by_generation(runs: Sequence[Run]) -> bool:
    """Whether the return panel is drawn over CMA-ES generations (World Models): every run's
    return keys lie at one ``step`` at most and its controller stage logged `_REAL_OF_MEAN`."""
    for run in runs:
        steps = {x for key in _keys(run.rows, _RETURN) for x in series(run.rows, key)[0]}
        if len(steps) > 1 or not series(run.stages.get("controller", []), _REAL_OF_MEAN)[0].size:
            return False
    return True


def _draw_generations(ax, runs: Sequence[Run]) -> list[np.ndarray]:
    """World Models' return panel over generations (see the module docstring); returns the
    values drawn (for the vertical range)."""
    seen: list[np.ndarray] = []
    controller = {run.name: run.stages.get("controller", []) for run in runs}
    env_steps = [number(r.get("env_steps")) for rows in controller.values() for r in rows]
    known = [s for s in env_steps if not math.isnan(s)]
    where = "" if not known else " (real task)" if max(known) > 0 else " (dream)"
    lines = (
        (_REAL_OF_MEAN, "real return of the CMA-ES mean", "C0", "o"),
        (_FITNESS_MEAN, f"population mean fitness{where}", "C1", None),
    )
    for key, label, color, marker in lines:
        curves = [(run.name, *series(controller[run.name], key)) for run in runs]
        curves = [c for c in curves if c[1].size]
        seen += [y for _, _, y in curves]
        draw_curves(ax, curves, key, color, label=label, marker=marker)
    finals, gens, episodes = [], set(), set()
    for run in runs:
        evaluated = [r for r in run.rows if not math.isnan(number(r.get("eval_return_mean")))]
        if not evaluated:
            continue
        final_row = evaluated[-1]
        finals.append(number(final_row["eval_return_mean"]))
        gen = number(final_row.get("controller_generation"))
        n = final_row.get("eval_episodes")
        episodes.add(n if isinstance(n, int) and not isinstance(n, bool) else None)
        if not math.isnan(gen):
            gens.add(int(gen))
            (star,) = ax.plot([gen], [finals[-1]], color="C2", marker="*", ms=11, ls="none")
            star.set_gid(f"run:{run.name}:eval_return_mean")
    if finals:
        value = float(np.mean(finals))
        label = "final C" + (f" (gen {next(iter(gens))})" if len(gens) == 1 else "")
        if len(episodes) == 1 and None not in episodes:
            label += f", {next(iter(episodes))} real episodes"
        label += f" (mean of {len(finals)} runs)" if len(finals) > 1 else ""
        line = ax.axhline(value, color="C2", ls="--", lw=1.2, label=f"{label}: {value:.4g}")
        line.set_gid("final:eval_return_mean")
        seen.append(np.array([value]))
    return seen


def learning_curves_figure(runs: Sequence[Run]) -> Figure:
    """The learning-curve figure of ``runs`` (see the module docstring); not saved.

    Each run's line carries the gid ``run:<run name>:<key>``; means ``mean:<key>``; World
    Models' final-C line ``final:eval_return_mean``.
    """
    if not runs:
        raise ValueError("no runs to plot")
    check_same_config(runs)
    all_rows = [r for run in runs for r in run.rows]
    return_keys = _keys(all_rows, _RETURN)
    success_keys = _keys(all_rows, _SUCCESS)
    loss_keys = [("", k) for k in _keys(all_rows, slash=True)]
    stage_names = list(dict.fromkeys(s for run in runs for s in run.stages))
    for stage in stage_names:
        stage_rows = [r for run in runs for r in run.stages.get(stage, [])]
        loss_keys += [(stage, k) for k in _keys(stage_rows, slash=True) if k != "env_steps"]

    n_panels = 1 + bool(success_keys) + len(loss_keys)
    ncols = min(n_panels, 4)
    nrows = math.ceil(n_panels / ncols)
    fig = Figure(figsize=(4.2 * ncols, 3.2 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    envs = ", ".join(dict.fromkeys(run.env for run in runs if run.env))
    fig.suptitle(f"{envs or 'run'}: {len(runs)} run(s) ({', '.join(r.name for r in runs)})")
    colors = [f"C{i}" for i in range(10)]

    ax = axes[0]
    ax.set_title("return")
    seen: list[np.ndarray] = []
    by_generation = _by_generation(runs)
    if by_generation:
        seen = _draw_generations(ax, runs)
    for i, key in enumerate([] if by_generation else return_keys):
        curves = [(run.name, *series(run.rows, key)) for run in runs]
        curves = [c for c in curves if c[1].size]
        seen += [y for _, _, y in curves]
        draw_curves(ax, curves, key, colors[i % 10])
    refs = reference_returns(runs)
    low, high = return_range(seen, refs)
    for j, (label, value) in enumerate(refs.items()):
        on_scale = low is None or low <= value <= high
        draw_reference(ax, label, value, on_scale, ls=("--", ":", "-.")[j % 3])
    if low is not None:
        ax.set_ylim(low, high)
    if not return_keys and not by_generation:
        ax.text(0.5, 0.5, "no return logged", ha="center", va="center", transform=ax.transAxes)
    panel = 1
    if success_keys:
        ax = axes[panel]
        ax.set_title("success")
        for i, key in enumerate(success_keys):
            curves = [(run.name, *series(run.rows, key)) for run in runs]
            draw_curves(ax, [c for c in curves if c[1].size], key, colors[i % 10])
        panel += 1
    for stage, key in loss_keys:
        ax = axes[panel]
        ax.set_title(
            key if not stage or key.startswith(f"{stage}/") else f"{stage}: {key}", fontsize=9
        )
        curves = [
            (run.name, *series(run.stages.get(stage, []) if stage else run.rows, key))
            for run in runs
        ]
        draw_curves(ax, [c for c in curves if c[1].size], key, "C0")
        ax.set_xlabel(f"{stage} step" if stage else "env steps")
        panel += 1
    axes[0].set_xlabel("generation" if by_generation else "env steps")
    if axes[0].get_legend_handles_labels()[0]:
        axes[0].legend(fontsize=7)
    if success_keys and axes[1].get_legend_handles_labels()[0]:
        axes[1].legend(fontsize=7)
    for ax in axes[:panel]:
        ax.grid(alpha=0.3)
    for ax in axes[panel:]:
        ax.set_visible(False)
    return fig


def return_range(
    curves: list[np.ndarray], refs: dict[str, float]
) -> tuple[float, float] | tuple[None, None]:
    """The return panel's y-range: the runs' returns and the random line, widened to take in
    each other reference line that lies within one such span of it, plus a 5 % margin.
    (None, None) without returns."""
    values = [float(v) for y in curves for v in y]
    if not values:
        return None, None
    if "random" in refs:
        values.append(refs["random"])
    lo, hi = min(values), max(values)
    span = max(hi - lo, 1e-6)
    near = [v for v in refs.values() if lo - span <= v <= hi + span]
    lo, hi = min([lo, *near]), max([hi, *near])
    pad = 0.05 * max(hi - lo, 1e-6)
    return lo - pad, hi + pad


def write_learning_curves(
    logdir_or_dirs: str | os.PathLike | Iterable[str | os.PathLike],
    out_png: str | os.PathLike | None = None,
) -> Path:
    """Draws the learning curves of one or more runs to a PNG (written atomically).

    Args:
      logdir_or_dirs: a run directory, a folder of run directories, or several of either
        (seeds: mean ± std).
      out_png: output file (default ``learning_curves.png`` in the run directory, or in the
        runs' common parent directory for several runs).

    Returns:
      The path written.

    Raises:
      FileNotFoundError / ValueError: naming the directory without metrics.
    """
    paths = find_runs(logdir_or_dirs)
    runs = [load_run(p) for p in paths]
    if out_png is None:
        parent = Path(os.path.commonpath([p.resolve() for p in paths]))
        out_png = (paths[0] if len(paths) == 1 else parent) / DEFAULT_FILE
    return save_png(learning_curves_figure(runs), out_png)


def save_png(fig: Figure, out_png: str | os.PathLike) -> Path:
    """Writes ``fig`` to ``out_png`` atomically (a temporary file renamed over it; its folder is
    created); returns the path."""
    out = Path(out_png)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".png", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            fig.savefig(f, format="png", dpi=90)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return out


def try_write_learning_curves(logdir: str | os.PathLike) -> Path | None:
    """`write_learning_curves` for a run in progress: a failure warns and never stops the run."""
    try:
        return write_learning_curves(logdir)
    except Exception as err:  # noqa: BLE001 — a plot must not end a training run
        warnings.warn(f"could not write the learning-curve plot for {logdir}: {err}", stacklevel=2)
        return None

"""What a resumed run has done, decided by its checkpoint; shared by every agent.

A run writes three kinds of record: episode files (``episodes/{index:06d}-{T}.npz``, written as
each episode ends), metric rows (``metrics.jsonl``) and checkpoints of its whole state. A kill can
land between any two of them, and the newest checkpoint may be unusable (the checkpointer then
falls back to an older one). On resume the *checkpoint* decides what the run has done: its
`Progress` (episodes, env steps, gradient steps, evaluations, metric rows) is read back, and

* episode files beyond what it covers are **set aside** (moved, never deleted or overwritten, to
  ``set_aside/<n>/episodes``) and collected again by the resumed run, which gives exactly the
  episodes, updates and evaluations an uninterrupted run would have produced;
* metric rows written after it are moved to ``set_aside/<n>/metrics.jsonl``, so the log holds each
  episode and evaluation once;
* an unreadable episode file is named in a warning and set aside the same way (one the checkpoint
  covers cannot be collected again: the replay then lacks it, and the message says so);
* episode files the checkpoint covers but that are missing are named in the message.

Each agent calls `reconcile` once before it opens its logger, and prints `Resumed.message`.
World Models stages and SOLAR iterations use the same code with their own units.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from jaxplanet.core import replay

SET_ASIDE = "set_aside"
METRICS_FILE = "metrics.jsonl"

__all__ = ["Progress", "Resumed", "count_rows", "reconcile", "set_aside"]


@dataclasses.dataclass(frozen=True)
class Progress:
    """Counters a checkpoint covers (store ``as_dict()`` in the checkpoint's state).

    Attributes:
      episodes: episodes collected (files ``0 .. episodes - 1``).
      env_steps: environment steps after action repeat.
      grad_steps: gradient updates.
      evaluations: evaluations run.
      metric_rows: lines of ``metrics.jsonl`` written.
    """

    episodes: int = 0
    env_steps: int = 0
    grad_steps: int = 0
    evaluations: int = 0
    metric_rows: int = 0

    def as_dict(self) -> dict[str, np.ndarray]:
        """int64 arrays, a pytree that checkpoints as it is."""
        fields = dataclasses.fields(self)
        return {f.name: np.asarray(getattr(self, f.name), np.int64) for f in fields}

    @classmethod
    def from_dict(cls, tree: Mapping[str, Any]) -> Progress:
        """Inverse of `as_dict`."""
        return cls(**{f.name: int(np.asarray(tree[f.name])) for f in dataclasses.fields(cls)})

    def describe(self) -> str:
        return (
            f"{self.episodes} episodes, {self.env_steps} env steps, {self.grad_steps} gradient "
            f"steps, {self.evaluations} evaluations"
        )


@dataclasses.dataclass
class Resumed:
    """What `reconcile` did: the progress kept and a message for the user."""

    progress: Progress
    checkpoint: int | None
    set_aside: Path | None
    redo: list[int]
    message: str


def count_rows(path: str | os.PathLike) -> int:
    """Number of complete lines of a jsonl file (0 when missing)."""
    path = Path(path)
    if not path.exists():
        return 0
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def _aside_dir(logdir: Path) -> Path:
    root = logdir / SET_ASIDE
    n = 0
    while (root / str(n)).exists():
        n += 1
    return root / str(n)


def _readable(path: Path, length: int) -> bool:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ok = replay.load_episode_file(path, length) is not None
    for w in caught:
        warnings.warn(str(w.message), stacklevel=4)
    return ok


def reconcile(
    logdir: str | os.PathLike,
    progress: Progress | None,
    checkpoint: int | None = None,
    episode_dir: str = "episodes",
    unit: str = "episode",
) -> Resumed:
    """Brings the run directory back to what ``progress`` (the restored checkpoint) covers.

    Args:
      logdir: the run directory.
      progress: counters of the restored checkpoint, or None when there is none (a fresh start:
        every episode file and metric row is set aside).
      checkpoint: the checkpoint step restored (for the message).
      episode_dir: episode folder under ``logdir``.
      unit: what one episode-file index counts ("episode", "rollout", ...), for the message.

    Returns:
      `Resumed` with the kept progress, where files went, the indices to collect again, and a
      message naming the checkpoint, what it covers and what is redone.
    """
    logdir = Path(logdir)
    progress = progress or Progress()
    aside = _aside_dir(logdir)
    moved: list[str] = []

    def move(path: Path, sub: str) -> None:
        dest = aside / sub / path.name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(path), str(dest))
        moved.append(path.name)

    files = replay.episode_files(logdir / episode_dir)
    beyond = [i for i, _, _ in files if i >= progress.episodes]
    lost: list[int] = []
    for index, length, path in files:
        if index >= progress.episodes:
            move(path, episode_dir)
        elif not _readable(path, length):
            move(path, episode_dir)
            lost.append(index)
    present = {i for i, _, _ in files if i < progress.episodes and i not in lost}
    missing = sorted(set(range(progress.episodes)) - present)

    metrics = logdir / METRICS_FILE
    rows = count_rows(metrics)
    extra_rows = 0
    if rows > progress.metric_rows:
        with open(metrics, "rb") as f:
            lines = f.read().split(b"\n")
        keep = lines[: progress.metric_rows]
        drop = [ln for ln in lines[progress.metric_rows :] if ln]
        extra_rows = len(drop)
        (aside).mkdir(parents=True, exist_ok=True)
        with open(aside / METRICS_FILE, "wb") as f:
            f.write(b"".join(ln + b"\n" for ln in drop))
        tmp = metrics.with_suffix(".jsonl.tmp")
        with open(tmp, "wb") as f:
            f.write(b"".join(ln + b"\n" for ln in keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, metrics)
    elif rows < progress.metric_rows:
        warnings.warn(
            f"{metrics} has {rows} rows, fewer than the {progress.metric_rows} the checkpoint "
            "covers; continuing",
            stacklevel=2,
        )

    parts = []
    if checkpoint is not None:
        parts.append(f"checkpoint {checkpoint} covers {progress.describe()}")
    if beyond:
        parts.append(
            f"{len(beyond)} {unit} file(s) beyond it ({unit}s {beyond[0] + 1}-{beyond[-1] + 1}) "
            f"set aside in {aside} and collected again"
        )
    if extra_rows:
        parts.append(f"{extra_rows} metric row(s) written after it moved to {aside / METRICS_FILE}")
    if lost:
        parts.append(
            f"unreadable {unit} file(s) {[i + 1 for i in lost]} set aside; the replay lacks them"
        )
    if missing:
        numbers = [i + 1 for i in missing]
        parts.append(f"{unit} file(s) {numbers} are missing; the replay lacks them")
    message = "; ".join(parts)
    return Resumed(progress, checkpoint, aside if moved or extra_rows else None, beyond, message)


def set_aside(
    logdir: str | os.PathLike, paths: list[Path] | list[str], sub: str = "episodes"
) -> Path | None:
    """Moves ``paths`` (never deleting or overwriting) to ``logdir/set_aside/<n>/<sub>/``.

    For files an agent will redo outside `reconcile` (e.g. an unreadable rollout collected
    again). Returns the ``set_aside/<n>`` folder used, or None when ``paths`` is empty.
    """
    if not paths:
        return None
    aside = _aside_dir(Path(logdir))
    (aside / sub).mkdir(parents=True, exist_ok=True)
    for path in paths:
        path = Path(path)
        shutil.move(str(path), str(aside / sub / path.name))
    return aside

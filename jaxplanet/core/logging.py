"""Run logging: JSON-lines metrics, TensorBoard scalars, evaluation videos and a progress bar.

Every metrics row carries ``step`` — environment steps after action repeat, the one step
convention of jaxplanet — so curves from PlaNet, World Models and SOLAR runs line up.
``metrics.jsonl`` is flushed after each line, so a killed run keeps every row written.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

__all__ = [
    "Logger",
    "METRICS_FILE",
    "format_metrics",
    "progress",
    "read_metrics",
    "set_postfix",
]

METRICS_FILE = "metrics.jsonl"
_HAS_MOVIEPY = importlib.util.find_spec("moviepy") is not None


def _to_python(value: Any) -> Any:
    """jax/numpy scalars and 0-d arrays become Python numbers; other values pass through."""
    if isinstance(value, bool | str) or value is None:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):  # jax / numpy arrays
        arr = np.asarray(value)
        if arr.ndim == 0:
            if arr.dtype == np.bool_:
                return bool(arr)
            return int(arr) if np.issubdtype(arr.dtype, np.integer) else float(arr)
        return arr.tolist()
    if isinstance(value, Mapping):
        return {str(k): _to_python(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_to_python(v) for v in value]
    return str(value)


def _json_safe(value: Any) -> Any:
    """NaN/inf floats become the strings "nan"/"inf"/"-inf" so each line is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


class Logger:
    """Writes ``logdir/metrics.jsonl``, TensorBoard events and ``logdir/videos/*.mp4``.

    Example:
        with Logger(workdir) as log:
            log.scalars(env_steps, {"train/return": 123.4, "train/loss": loss})
            log.video(env_steps, "eval", frames)  # uint8 [T, H, W, 3]
    """

    def __init__(self, logdir: str | os.PathLike, use_tensorboard: bool = True):
        self.logdir = Path(logdir)
        self.logdir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.logdir / METRICS_FILE
        #: complete rows in metrics.jsonl (those already there plus those written since)
        self.rows = 0
        if self.metrics_path.exists():
            with open(self.metrics_path, "rb") as f:
                self.rows = f.read().count(b"\n")
        self._file = open(self.metrics_path, "a")  # noqa: SIM115 — closed in close()
        self._tb = None
        if use_tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(self.logdir), flush_secs=10)

    def scalars(self, step: int, metrics: Mapping[str, Any]) -> dict:
        """Append ``{"step": step, **metrics}`` as one JSON line and write TensorBoard scalars.

        Args:
            step: environment steps (after action repeat).
            metrics: name -> value; jax/numpy scalars become Python numbers, other values
                (strings, lists) are kept in the JSON line but not sent to TensorBoard.

        Returns:
            The row written.
        """
        row = {"step": int(step)}
        row.update({str(k): _to_python(v) for k, v in metrics.items() if k != "step"})
        self._file.write(json.dumps(_json_safe(row)) + "\n")
        self._file.flush()
        self.rows += 1
        if self._tb is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, int | float) and not isinstance(v, bool):
                    self._tb.add_scalar(k, v, int(step))
        return row

    def video(self, step: int, name: str, frames: np.ndarray, fps: int = 20) -> Path:
        """Write ``frames`` to ``logdir/videos/{name}_{step:08d}.mp4`` (``.gif`` if mp4 fails).

        Args:
            step: environment steps.
            name: file stem, e.g. "eval" or "eval/open_loop" ("/" becomes "_").
            frames: uint8 [T, H, W, 3] (any H, W; 64x64 works).
            fps: frames per second.

        Returns:
            Path of the file written.
        """
        import imageio.v2 as imageio

        frames = np.asarray(frames)
        if frames.dtype != np.uint8:
            frames = np.clip(frames, 0, 255).astype(np.uint8)
        if frames.ndim != 4 or frames.shape[-1] not in (1, 3):
            raise ValueError(f"frames must be [T, H, W, 3] uint8, got {frames.shape}")
        vdir = self.logdir / "videos"
        vdir.mkdir(parents=True, exist_ok=True)
        stem = f"{name.replace('/', '_')}_{int(step):08d}"
        path = vdir / f"{stem}.mp4"
        try:
            with warnings.catch_warnings():  # ffmpeg runs as a subprocess (exec right after fork)
                warnings.filterwarnings("ignore", message=r"os\.fork\(\) was called")
                # macro_block_size=1 keeps 64x64 frames as they are (no resize warning).
                imageio.mimwrite(path, list(frames), fps=fps, macro_block_size=1)
        except Exception:  # noqa: BLE001 — no ffmpeg: fall back to GIF
            path.unlink(missing_ok=True)
            path = vdir / f"{stem}.gif"
            imageio.mimwrite(path, list(frames), duration=1000 / fps, loop=0)
        if self._tb is not None and _HAS_MOVIEPY and frames.size <= 2**24:
            try:  # TensorBoard video wants [N, T, C, H, W]; optional (needs moviepy).
                self._tb.add_video(name, frames.transpose(0, 3, 1, 2)[None], int(step), fps=fps)
            except Exception:  # noqa: BLE001
                pass
        return path

    def flush(self) -> None:
        """Flush the metrics file and TensorBoard events."""
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        """Flush and close all writers (safe to call twice)."""
        if not self._file.closed:
            self._file.close()
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Rows of a metrics.jsonl file (or of ``path/metrics.jsonl`` for a log directory).

    A torn last line (run killed mid-write) is skipped.
    """
    path = Path(path)
    if path.is_dir():
        path = path / METRICS_FILE
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


def progress(total: int, desc: str = "", unit: str = "step", **kwargs: Any) -> tqdm:
    """A tqdm bar over ``total`` units (e.g. environment steps); see `set_postfix`."""
    return tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, **kwargs)


_SHORT = {"episode": "ep", "return": "ret", "loss": "loss", "steps_per_sec": "sps"}


def _fmt(v: Any) -> str:
    v = _to_python(v)
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return str(v)
    if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
        return f"{v:.2e}"
    return f"{v:.4g}" if abs(v) < 100 else f"{v:.1f}"


def format_metrics(metrics: Mapping[str, Any], keys: tuple[str, ...] | None = None) -> dict:
    """Compact strings for a bar postfix: short names ("ret", "sps") and 4 significant figures.

    Args:
        metrics: name -> value; names are matched by their last "/" part
            ("train/return" shows as "ret").
        keys: last-part names to show, in order (default: episode, return, loss, steps_per_sec
            when present, else everything).
    """
    by_last = {str(k).split("/")[-1]: v for k, v in metrics.items()}
    if keys is None:
        keys = tuple(k for k in _SHORT if k in by_last) or tuple(by_last)
    return {_SHORT.get(k, k): _fmt(by_last[k]) for k in keys if k in by_last}


def set_postfix(bar: tqdm, metrics: Mapping[str, Any], keys: tuple[str, ...] | None = None):
    """Show ``metrics`` compactly on ``bar`` (see `format_metrics`)."""
    bar.set_postfix(format_metrics(metrics, keys), refresh=False)

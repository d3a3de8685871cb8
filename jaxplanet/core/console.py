"""What a run tells the terminal: start banner, a truthful progress line, Ctrl-C, end summary.

Shared by the experiment entry points of all three systems.

- `banner` lists what runs where (backend and devices, replay size, output files).
- `RunProgress` is one tqdm line per run whose postfix always names the current phase
  (``seed``, ``compile``, ``train 40/100``, ``collect 230/1000``, ``eval``), the env steps and
  updates done, the last evaluation beside random, and an ETA estimated from training
  episodes only (random seed episodes and the compiling first episode are not representative).
  A resumed run starts the bar at the episode it reached.
- `StopOnInterrupt` turns the first Ctrl-C into a request the loop honours at its next safe
  point (within seconds); a second Ctrl-C, or no safe point within ``grace`` seconds (e.g.
  during an XLA compile), exits at once. Both leave a run directory that resumes from its last
  checkpoint exactly as after a kill.
- `summary_table` is the end-of-run report.

Rows every system's banner and table share: `preset_line` (the preset and the fields changed
from it), `gpu_sized_warning` (GPU-sized settings on a CPU), `time_rows` (``wall time``, ``CPU
time``) and `output_rows` (metrics, TensorBoard, videos, plot, how to evaluate).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
from tqdm.auto import tqdm

__all__ = [
    "RunProgress",
    "StopOnInterrupt",
    "StopRequested",
    "banner",
    "changed_fields",
    "devices_line",
    "env_line",
    "eval_banner",
    "format_duration",
    "gpu_sized_warning",
    "output_rows",
    "preset_line",
    "summary_table",
    "time_rows",
]

INTERRUPT_EXIT = 130


def format_duration(seconds: float) -> str:
    """'45 s', '12 min 5 s', '3 h 20 min', '2 d 4 h' (for ETAs and wall times)."""
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def devices_line() -> str:
    """'cpu (1 device: cpu:0)' or 'gpu (2 devices: cuda:0, cuda:1)'."""
    devices = jax.devices()
    names = ", ".join(f"{d.platform}:{d.id}" for d in devices[:4])
    if len(devices) > 4:
        names += ", ..."
    kind = getattr(devices[0], "device_kind", "")
    kind = f" {kind}" if kind and kind.lower() != "cpu" else ""
    plural = "s" if len(devices) != 1 else ""
    return f"{jax.default_backend()}{kind} ({len(devices)} device{plural}: {names})"


def env_line(spec: Any, steps: str = "") -> str:
    """A banner's task line: 'point_reach: action_dim 2, action repeat 2, 40 env steps per
    episode' (``steps`` replaces the episode length part, e.g. SOLAR's rollout horizon)."""
    steps = steps or f"{spec.episode_length} env steps per episode"
    return f"{spec.name}: action_dim {spec.action_dim}, action repeat {spec.action_repeat}, {steps}"


def eval_banner(title: str, env: str, rows: Sequence[tuple[str, str]]) -> str:
    """``--mode=eval``'s start block: ``title``, the task (``env``, an `env_line`), the devices,
    then ``rows`` (what is scored, the episodes, the output)."""
    return banner(title, [("env", env), ("devices", devices_line()), *rows])


def banner(title: str, rows: Sequence[tuple[str, str]], warnings: Sequence[str] = ()) -> str:
    """A start-of-run block: ``title`` then aligned ``name: value`` rows and warnings."""
    width = max((len(k) for k, _ in rows), default=0)
    lines = [title] + [f"  {k.ljust(width)}  {v}" for k, v in rows]
    lines += [f"  warning: {w}" for w in warnings]
    return "\n".join(lines)


def summary_table(title: str, rows: Sequence[tuple[str, str]]) -> str:
    """The end-of-run report, aligned like `banner`."""
    return banner(title, rows)


def changed_fields(cfg: Any, base: Any, ignore: Sequence[str] = ("env", "seed")) -> str:
    """``"a=1, model.b=2"``: the fields of the dataclass config ``cfg`` whose values differ
    from ``base``'s (flattened, in field order; ``ignore``d fields never count), or ""."""
    from jaxplanet.core import config as config_lib

    default = config_lib.flatten(config_lib.to_dict(base))
    current = config_lib.flatten(config_lib.to_dict(cfg))
    return ", ".join(
        f"{k}={v}" for k, v in current.items() if k not in ignore and default.get(k) != v
    )


def preset_line(cfg: Any, preset: str, presets: Mapping[str, Callable[[], Any]]) -> str:
    """The banner's ``preset`` row: ``"quick"``, ``"quick, changed: episodes=60, ..."`` (the
    fields set by flags; env and seed have rows of their own), ``"the run directory's saved
    config"`` (``preset="saved"``, a resumed run) or ``"custom config"``."""
    if preset not in presets:
        return "the run directory's saved config" if preset == "saved" else "custom config"
    changed = changed_fields(cfg, presets[preset]())
    return preset + (f", changed: {changed}" if changed else "")


def gpu_sized_warning(cost: str, instead: str = "--preset=quick", backend: str | None = None):
    """``["these are GPU/TPU-sized settings: <cost>; <instead> is sized for a CPU"]`` when the
    run is on the CPU backend (``backend``, default JAX's), else ``[]``."""
    if (backend or jax.default_backend()) != "cpu":
        return []
    return [f"these are GPU/TPU-sized settings: {cost}; {instead} is sized for a CPU"]


def time_rows(
    wall_seconds: float,
    cpu_seconds: float | None = None,
    cpu_note: str = "this process and its finished worker processes",
) -> list[tuple[str, str]]:
    """The end table's ``wall time`` row (this session) and, given, its ``CPU time`` row."""
    rows = [("wall time", f"{format_duration(wall_seconds)} (this session)")]
    if cpu_seconds is not None:
        rows.append(("CPU time", f"{format_duration(cpu_seconds)} ({cpu_note})"))
    return rows


def output_rows(
    logdir: str | Path,
    metrics: Sequence[str | Path] = ("metrics.jsonl",),
    videos: str = "",
    evaluate: str = "",
) -> list[tuple[str, str]]:
    """The end table's rows saying where the outputs are: ``metrics`` (files under ``logdir``),
    ``TensorBoard``, ``videos`` (when ``logdir/videos`` exists; ``videos`` says what they
    show), ``plot`` (the first ``*.png`` in ``logdir``) and ``evaluate`` (a command)."""
    logdir = Path(logdir)
    rows = [
        ("metrics", "  ".join(str(logdir / m) for m in metrics)),
        ("TensorBoard", f"tensorboard --logdir {logdir}"),
    ]
    if (logdir / "videos").is_dir():
        rows.append(("videos", f"{logdir / 'videos'}/" + (f"  ({videos})" if videos else "")))
    plots = sorted(logdir.glob("*.png"))
    if plots:
        rows.append(("plot", str(plots[0])))
    if evaluate:
        rows.append(("evaluate", evaluate))
    return rows


class RunProgress:
    """One progress line over a run's episodes, with phase, counters and a training-only ETA.

    Args:
      total: episodes of the whole run.
      start: episodes already done (a resumed run starts here).
      desc: bar label (the system's name).
      enabled: False writes nothing (``--progress=false``, tests).
    """

    def __init__(self, total: int, start: int = 0, desc: str = "", enabled: bool = True):
        self.total, self.start, self.desc = total, start, desc
        self.fields: dict[str, str] = {}
        self._episode_seconds: list[float] = []  # representative (post-compile training) episodes
        self._last_refresh = 0.0
        self._began = time.monotonic()
        # On a terminal: one live line. Redirected to a file: one plain line per episode.
        self.live = enabled and sys.stderr.isatty()
        self.lines = enabled and not self.live
        self.done = start
        self.bar = tqdm(
            total=total,
            initial=start,
            unit="ep",
            dynamic_ncols=True,
            disable=not self.live,
            bar_format=f"{desc} {{n_fmt}}/{{total_fmt}} ep |{{bar:12}}| {{elapsed}} {{desc}}",
        )
        self.phase("starting")

    def phase(self, name: str, refresh: bool = True) -> None:
        """Names what the run is doing now (shown first, in brackets)."""
        self.fields["phase"] = name
        self._show(refresh)

    def inner(self, name: str, done: int, total: int) -> None:
        """Progress inside an episode (``collect 230/1000``), refreshed at most ~2x per second."""
        now = time.monotonic()
        if now - self._last_refresh >= 0.5 or done in (0, total):
            self._last_refresh = now
            self.phase(f"{name} {done}/{total}")

    def set(self, **fields: Any) -> None:
        """Sets display fields (None removes one); shown in insertion order after the phase."""
        for k, v in fields.items():
            if v is None:
                self.fields.pop(k, None)
            else:
                self.fields[k] = v if isinstance(v, str) else f"{v:.4g}"
        self._show(True)

    def episode_done(self, seconds: float, representative: bool, count: int = 1) -> None:
        """Advances ``count`` episodes that took ``seconds`` each (a round of ``count`` episodes
        collected together: one line); ``representative`` ones (training, compiled) feed the
        ETA."""
        if representative:
            self._episode_seconds.extend([seconds] * count)
        self.done += count
        self.bar.update(count)
        left = self.total - self.done
        if self._episode_seconds and left > 0:
            recent = self._episode_seconds[-10:]
            self.fields["eta"] = format_duration(left * sum(recent) / len(recent))
        else:
            self.fields.pop("eta", None)
        self._show(True)
        if self.lines:
            elapsed = format_duration(time.monotonic() - self._began)
            fields = " ".join(f"{k}={v}" for k, v in self.fields.items() if k != "phase")
            print(f"{self.desc} {self.done}/{self.total} ep  {elapsed}  {fields}", flush=True)

    def text(self) -> str:
        """The status text: ``[phase] key=value ...``."""
        phase = self.fields.get("phase", "")
        rest = " ".join(f"{k}={v}" for k, v in self.fields.items() if k != "phase")
        return f"[{phase}] {rest}".rstrip()

    def _show(self, refresh: bool) -> None:
        if self.live:
            self.bar.set_description_str(self.text(), refresh=refresh)

    def write(self, line: str) -> None:
        """Prints a line above the bar."""
        self.bar.write(line, file=sys.stdout)

    def close(self, interrupted: bool = False) -> None:
        """Closes the bar; after an interrupt the bar is cleared rather than redrawn stale."""
        if interrupted:
            self.bar.leave = False
        self.bar.close()


class StopRequested(Exception):
    """Raised at a safe point of a run loop after Ctrl-C (see `StopOnInterrupt`)."""


class StopOnInterrupt:
    """Graceful Ctrl-C for run loops.

    Inside ``with StopOnInterrupt() as stop:`` the first SIGINT sets ``stop.requested``; the loop
    calls ``stop.check()`` at safe points (between updates, env steps, episodes), which raises
    `StopRequested`. If no safe point is reached within ``grace`` seconds (the main thread is
    inside a long XLA call or compile, which Python cannot interrupt), or on a second Ctrl-C, a
    watchdog thread exits the process with status 130, as a kill would: checkpoints, episode
    files and metric rows are written atomically or set aside on resume (``jaxplanet.core.resume``).

    Only active in the main thread; elsewhere it is a no-op context.
    """

    def __init__(self, grace: float = 15.0, message: str = ""):
        self.grace = grace
        self.message = message
        self.requested = threading.Event()
        self._finished = threading.Event()
        self._presses = 0
        self._active = False

    def check(self) -> None:
        """Raises `StopRequested` if Ctrl-C was pressed."""
        if self.requested.is_set():
            raise StopRequested()

    def _on_signal(self, signum: int, frame: Any) -> None:  # Python-level handler (main thread)
        del signum, frame  # the watchdog thread does the work; this only replaces the default

    def _watch(self, sock: socket.socket) -> None:
        while not self._finished.is_set():
            try:
                data = sock.recv(64)
            except OSError:
                return
            if not data:
                return
            for byte in data:
                if byte != signal.SIGINT:
                    continue
                self._presses += 1
                if self._presses == 1:
                    self.requested.set()
                    sys.stderr.write(
                        "\nCtrl-C: stopping at the next safe point "
                        f"(press again to quit at once). {self.message}".rstrip()
                        + "\n"
                    )
                    sys.stderr.flush()
                    threading.Thread(target=self._deadline, daemon=True).start()
                else:
                    self._hard_exit("second Ctrl-C")

    def _deadline(self) -> None:
        if not self._finished.wait(self.grace):
            self._hard_exit(f"no safe point within {self.grace:g} s: inside a long XLA call")

    def _hard_exit(self, why: str) -> None:
        if self._finished.is_set():
            return
        sys.stderr.write(
            f"\nstopped at once ({why}). The run resumes from its last checkpoint with the same "
            "--logdir.\n"
        )
        sys.stderr.flush()
        os._exit(INTERRUPT_EXIT)

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._read, write = socket.socketpair()
        write.setblocking(False)
        self._write = write
        self._old_handler = signal.signal(signal.SIGINT, self._on_signal)
        self._old_fd = signal.set_wakeup_fd(write.fileno(), warn_on_full_buffer=False)
        self._thread = threading.Thread(target=self._watch, args=(self._read,), daemon=True)
        self._thread.start()
        self._active = True
        return self

    def __exit__(self, *exc: Any) -> None:
        self._finished.set()
        if not self._active:
            return
        signal.set_wakeup_fd(self._old_fd)
        signal.signal(signal.SIGINT, self._old_handler)
        with contextlib.suppress(OSError):
            self._read.shutdown(socket.SHUT_RDWR)  # wakes the watchdog's recv
        with contextlib.suppress(OSError):
            self._write.close()
            self._read.close()
        self._active = False

"""Where a run's time goes: wall and CPU seconds per phase, nested phases counted once.

``clock = PhaseClock()``; ``with clock("update"): ...``. A phase entered inside another pauses
the outer one, so every second lands in exactly one phase (planning inside an episode counts
as ``plan``, the rest of the episode as ``env``). CPU seconds are this process's user + system
time over all its threads (and its finished child processes), so on N busy cores they can
reach N x the wall seconds.

    clock = PhaseClock()
    with clock("env"):
        with clock("plan"):
            ...
    clock.row()    # {"time/env_wall_s": ..., "time/env_cpu_s": ..., "time/plan_wall_s": ...}
    clock.shares() # [("plan", wall, cpu, share of wall), ...], largest first
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator

__all__ = ["PhaseClock", "cpu_seconds", "format_shares"]


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished child processes."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


class PhaseClock:
    """Exclusive wall/CPU seconds per named phase (see the module docstring)."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        self._stack: list[str] = []
        self._mark: tuple[float, float] = (0.0, 0.0)

    def _charge(self) -> None:
        """Adds the time since the last mark to the phase on top of the stack."""
        now = (time.perf_counter(), cpu_seconds())
        if self._stack:
            name = self._stack[-1]
            self.wall[name] = self.wall.get(name, 0.0) + now[0] - self._mark[0]
            self.cpu[name] = self.cpu.get(name, 0.0) + now[1] - self._mark[1]
        self._mark = now

    @contextlib.contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        self._charge()
        self._stack.append(name)
        try:
            yield
        finally:
            self._charge()
            self._stack.pop()

    def row(self) -> dict[str, float]:
        """``time/<phase>_wall_s`` and ``time/<phase>_cpu_s``, cumulative, for metrics.jsonl."""
        out: dict[str, float] = {}
        for name in sorted(self.wall):
            out[f"time/{name}_wall_s"] = round(self.wall[name], 3)
            out[f"time/{name}_cpu_s"] = round(self.cpu[name], 3)
        return out

    def shares(self, total_wall: float | None = None) -> list[tuple[str, float, float, float]]:
        """``(phase, wall s, CPU s, share of total_wall)``, largest wall first.

        ``total_wall`` defaults to the phases' sum; a larger total adds an ``other`` row for
        the time spent outside every phase.
        """
        total = sum(self.wall.values())
        rows = [(n, self.wall[n], self.cpu[n]) for n in self.wall]
        if total_wall is not None and total_wall > total:
            rows.append(("other", total_wall - total, float("nan")))
            total = total_wall
        rows.sort(key=lambda r: -r[1])
        return [(n, w, c, w / total if total > 0 else 0.0) for n, w, c in rows]


def format_shares(shares: list[tuple[str, float, float, float]]) -> str:
    """'plan 41 % (6 min 2 s), update 35 % (...), ...' for the end-of-run table."""
    from jaxplanet.core.console import format_duration

    return ", ".join(f"{n} {s:.0%} ({format_duration(w)})" for n, w, _, s in shares)

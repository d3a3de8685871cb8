"""Shared helpers of the benchmarks: in-run matmul peak, timing, XLA FLOP counts, JSON output.

Performance method (see DESIGN.md, "Performance method"): every throughput figure is reported
as a ratio to the machine's practical peak MEASURED IN THE SAME PROCESS RIGHT BEFORE the timed
work, i.e. the FLOP/s of a large fp32 matmul (`matmul_peak`) run immediately before the
benchmarked function. Absolute seconds depend on the machine and on whatever else runs on it;
the ratio is what is comparable across machines and runs. `time_against_peak` measures the
peak right before EVERY timed call (peak, call, peak, call, ...), so that on a shared machine a
call and its reference see the same conditions; the spread of `peak_gflops_all` shows how
quiet the machine was.
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp


def random_replay(a: int, episodes: int, steps: int) -> Any:
    """A `jaxplanet.core.replay` buffer of ``episodes`` random episodes of ``steps`` frames (uint8
    64x64x3 noise, uniform actions in [-1, 1]^a and rewards in [0, 1]), from a fixed seed."""
    import numpy as np

    from jaxplanet.core import replay

    rng = np.random.default_rng(0)
    buf = replay.init(episodes * steps, (64, 64, 3), a)
    add = jax.jit(replay.add_episode, donate_argnums=0)
    for _ in range(episodes):
        buf = add(
            buf,
            {
                "obs": rng.integers(0, 256, (steps, 64, 64, 3), np.uint8),
                "action": rng.uniform(-1, 1, (steps, a)).astype(np.float32),
                "reward": rng.uniform(0, 1, steps).astype(np.float32),
                "is_first": np.arange(steps) == 0,
            },
        )
    return buf


def block(tree: Any) -> Any:
    """Wait for every array in ``tree`` (asynchronous dispatch) and return it."""
    return jax.block_until_ready(tree)


def time_fn(
    fn: Callable[..., Any], *args: Any, warmup: int = 1, repeats: int = 5
) -> tuple[float, float, list[float]]:
    """Wall-clock seconds of ``fn(*args)`` (blocked until ready).

    Args:
      fn: the (usually jitted) function.
      *args: its arguments.
      warmup: untimed calls first (compilation, caches).
      repeats: timed calls.

    Returns:
      (median seconds, min seconds, all timed seconds).
    """
    for _ in range(warmup):
        block(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        block(fn(*args))
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times), times


@functools.lru_cache(maxsize=8)
def _matmul(n: int, dtype: Any, options: tuple[tuple[str, Any], ...]) -> tuple[Any, Any, Any]:
    ka, kb = jax.random.split(jax.random.key(0))
    a = jax.random.normal(ka, (n, n), dtype)
    b = jax.random.normal(kb, (n, n), dtype)
    compiled = jax.jit(jnp.matmul).lower(a, b).compile(compiler_options=dict(options) or None)
    block(compiled(a, b))
    return compiled, a, b


def matmul_peak(
    n: int = 2048,
    dtype: Any = jnp.float32,
    repeats: int = 7,
    compiler_options: dict[str, Any] | None = None,
) -> float:
    """Practical peak GFLOP/s: median over ``repeats`` of one jitted [n, n] x [n, n] matmul.

    Run it in the same process right before the benchmarked work (see the module docstring).
    n = 2048 (17 GFLOP, ~55 ms on 2 AVX-512 cores) reaches the plateau of XLA:CPU's matmul
    (4096 gives the same FLOP/s) while keeping one measurement to a fraction of a second.

    Args:
      n: matrix size.
      dtype: element type (float32 for the fp32 peak).
      repeats: timed calls after one warm-up call.
      compiler_options: XLA options to compile the matmul with (e.g. those of the benchmarked
        function, so that both use the same dot implementation).

    Returns:
      GFLOP/s (2 n^3 FLOPs per call).
    """
    options = tuple(sorted((compiler_options or {}).items()))
    compiled, a, b = _matmul(int(n), jnp.dtype(dtype), options)
    median, _, _ = time_fn(compiled, a, b, warmup=1, repeats=repeats)
    return 2.0 * n**3 / median / 1e9


class CpuMonitor:
    """CPU time used by OTHER processes on this machine over an interval (Linux /proc).

    ``start()`` then ``stop()`` returns the fraction of all cores' time that other processes
    used meanwhile (0.0 = quiet machine, 1.0 = every core busy elsewhere), or None where
    /proc is unavailable. Used to flag timings taken on a shared, busy host.
    """

    def __init__(self) -> None:
        self._start: tuple[int, int, int] | None = None

    @staticmethod
    def _read() -> tuple[int, int, int] | None:
        try:
            with open("/proc/stat") as f:
                ticks = [int(x) for x in f.readline().split()[1:]]
            with open("/proc/self/stat") as f:
                own = f.read().rsplit(")", 1)[1].split()
        except (OSError, ValueError, IndexError):
            return None
        busy = sum(ticks) - ticks[3] - (ticks[4] if len(ticks) > 4 else 0)
        return busy, sum(ticks), int(own[11]) + int(own[12])

    def start(self) -> None:
        self._start = self._read()

    def stop(self) -> float | None:
        end = self._read()
        if self._start is None or end is None:
            return None
        busy, total, own = (e - s for e, s in zip(end, self._start, strict=True))
        return max(0.0, busy - own) / max(total, 1)


def time_against_peak(
    fn: Callable[..., Any],
    *args: Any,
    warmup: int = 1,
    repeats: int = 5,
    peak_n: int = 2048,
    peak_repeats: int = 3,
    peak_options: Sequence[dict[str, Any] | None] = (None,),
    clean: int = 0,
    clean_threshold: float = 0.05,
    max_seconds: float = 600.0,
) -> dict[str, list]:
    """Time ``fn(*args)`` with a matmul peak measured right before EVERY timed call.

    Interleaving (peak, call, peak, call, ...) puts each call and its reference under the same
    machine conditions. The peak of a pair is the best over ``peak_options`` (compiler options
    for the matmul, e.g. the default dot and the benchmarked function's), so a tuned dot path
    cannot make the reference look slower. Each pair also records the CPU share other processes
    used meanwhile (`CpuMonitor`); with ``clean`` > 0, pairs keep coming after ``repeats`` until
    ``clean`` of them saw at most ``clean_threshold`` (or ``max_seconds`` have passed).

    Returns:
      dict of lists, one entry per timed call: 'seconds', 'peaks' (GFLOP/s right before),
      'others' (CPU share of other processes during the pair, or None).
    """
    for _ in range(warmup):
        block(fn(*args))
    out: dict[str, list] = {"seconds": [], "peaks": [], "others": []}
    monitor, began = CpuMonitor(), time.perf_counter()

    def quiet() -> int:
        return sum(o is not None and o <= clean_threshold for o in out["others"])

    while len(out["seconds"]) < repeats or (
        quiet() < clean and time.perf_counter() - began < max_seconds
    ):
        monitor.start()
        peak = max(
            matmul_peak(peak_n, repeats=peak_repeats, compiler_options=o) for o in peak_options
        )
        start = time.perf_counter()
        block(fn(*args))
        out["seconds"].append(time.perf_counter() - start)
        out["peaks"].append(peak)
        out["others"].append(monitor.stop())
    return out


def ratio_fields(
    gflop: float, timing: dict[str, list], clean_threshold: float = 0.05
) -> dict[str, Any]:
    """Standard timing fields of a record from `time_against_peak` output.

    Uses only the quiet pairs (other processes' CPU share <= ``clean_threshold``) when there
    are at least 3 of them, else every pair (``samples`` says which).
    ``fraction_of_peak`` = (gflop / median seconds) / median peak;
    ``fraction_of_peak_paired`` = median over calls of (gflop / seconds_i) / peak_i.
    """
    others = timing.get("others") or [None] * len(timing["seconds"])
    pairs = list(zip(timing["seconds"], timing["peaks"], others, strict=True))
    quiet = [p for p in pairs if p[2] is not None and p[2] <= clean_threshold]
    used = quiet if len(quiet) >= 3 else pairs
    seconds = [p[0] for p in used]
    peaks = [p[1] for p in used]
    median, peak = statistics.median(seconds), statistics.median(peaks)
    known = [p[2] for p in pairs if p[2] is not None]
    return {
        "seconds_median": median,
        "seconds_min": min(seconds),
        "seconds_all": list(timing["seconds"]),
        "gflops": gflop / median,
        "peak_gflops": peak,
        "peak_gflops_all": list(timing["peaks"]),
        "fraction_of_peak": gflop / median / peak,
        "fraction_of_peak_paired": statistics.median(
            gflop / t / p for t, p in zip(seconds, peaks, strict=True)
        ),
        "samples": "quiet" if used is quiet else "all",
        "samples_used": len(used),
        "other_processes_cpu_all": others,
        "other_processes_cpu_median": statistics.median(known) if known else None,
    }


def cost_analysis(compiled: Any) -> dict[str, float]:
    """``compiled.cost_analysis()`` as one dict (older jax returns a list of dicts)."""
    analysis = compiled.cost_analysis()
    if analysis is None:
        return {}
    if isinstance(analysis, (list, tuple)):
        merged: dict[str, float] = {}
        for part in analysis:
            for key, value in (part or {}).items():
                merged[key] = merged.get(key, 0.0) + float(value)
        return merged
    return {key: float(value) for key, value in analysis.items()}


def compiled_gflop(jitted_fn: Any, *args: Any) -> float:
    """GFLOP of one call according to XLA's cost analysis of the compiled executable.

    Note: XLA counts the body of a while loop (``lax.scan``/``fori_loop``) ONCE, not once per
    trip, so for scanned code multiply the cost of the body by its trip count (as the planning
    benchmark does) instead of reading the whole call.

    Args:
      jitted_fn: a ``jax.jit``-wrapped function.
      *args: example arguments.

    Returns:
      GFLOP (NaN when the backend reports no 'flops').
    """
    analysis = cost_analysis(jitted_fn.lower(*args).compile())
    return analysis.get("flops", math.nan) / 1e9


def environment() -> dict[str, Any]:
    """Backend, devices, versions and XLA flags: context for a JSON record."""
    device = jax.devices()[0]
    return {
        "backend": jax.default_backend(),
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "jax_version": jax.__version__,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def write_json(path: str | os.PathLike | None, record: dict[str, Any]) -> Path | None:
    """Write ``record`` as indented JSON to ``path`` (parents created); no-op for None."""
    if path is None:
        return None
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")
    return out


def make_parser(description: str) -> argparse.ArgumentParser:
    """Argument parser with the shared ``--json`` and ``--repeats`` / ``--peak_n`` options."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--json", default=None, help="write the result record to this path")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls after compile")
    parser.add_argument("--peak_n", type=int, default=2048, help="size of the peak matmul")
    parser.add_argument(
        "--clean",
        type=int,
        default=0,
        help="keep timing until this many calls ran while other processes used <= 5%% CPU",
    )
    parser.add_argument("--max_wait", type=float, default=600.0, help="seconds, for --clean")
    parser.add_argument(
        "--xla_defaults", action="store_true", help="compile with XLA's default options only"
    )
    return parser


def parse(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> argparse.Namespace:
    """``parser.parse_args(argv)`` (``None`` reads sys.argv)."""
    return parser.parse_args(None if argv is None else list(argv))


def summary_line(name: str, record: dict[str, Any], keys: Sequence[str]) -> str:
    """One line ``name: key=value ...`` (floats to 4 significant digits); also printed."""
    parts = []
    for key in keys:
        value = record.get(key)
        parts.append(f"{key}={value:.4g}" if isinstance(value, float) else f"{key}={value}")
    line = f"{name}: " + " ".join(parts)
    print(line, flush=True)
    return line

"""Replay memory at paper scale: bytes held vs raw uint8 frame bytes.

PlaNet (Hafner et al., 2019) keeps every episode; ~5·10^5 frames of 64x64x3 is ~6.1 GB of raw
uint8 pixels. The design target is < 10 % overhead over those raw bytes, measured two ways:
the buffer arrays' ``nbytes`` and the process RSS increase while building and filling it.

    python -m benchmarks.replay_memory [--frames 500000] [--episode_length 500] [--json OUT]
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxplanet.core import replay

OBS_SHAPE = (64, 64, 3)
ACTION_DIM = 6


def rss_bytes() -> int:
    """Resident set size of this process (from /proc/self/statm, else psutil)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError):
        import psutil

        return psutil.Process().memory_info().rss


def malloc_trim() -> None:
    """Return free glibc heap memory to the OS (no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> dict:
    """Build and fill a replay of ``--frames`` steps; return (and print) the memory figures."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=500_000)
    p.add_argument("--episode_length", type=int, default=500, help="agent steps per episode")
    p.add_argument("--batch", type=int, default=50)
    p.add_argument("--length", type=int, default=50)
    p.add_argument("--json", type=str, default=None, help="write the result dict here")
    args = p.parse_args(argv)

    n = args.frames
    ep_len = min(args.episode_length, n)
    rng = np.random.default_rng(0)
    # One host episode reused (fresh random pixels would cost minutes at 5e5 frames).
    episode = {
        "obs": rng.integers(0, 256, (ep_len, *OBS_SHAPE), dtype=np.uint8),
        "action": rng.uniform(-1, 1, (ep_len, ACTION_DIM)).astype(np.float32),
        "reward": rng.standard_normal(ep_len).astype(np.float32),
        "is_first": np.arange(ep_len) == 0,
    }
    add_episode = jax.jit(replay.add_episode, donate_argnums=0)
    sample = jax.jit(replay.sample, static_argnums=(2, 3))

    # Start the runtime and compile first, so neither counts as replay memory.
    abstract = jax.eval_shape(lambda: replay.init(n, OBS_SHAPE, ACTION_DIM))
    add_compiled = add_episode.lower(abstract, episode).compile()
    gc.collect()
    malloc_trim()

    rss0 = rss_bytes()
    t0 = time.perf_counter()
    state = replay.init(n, OBS_SHAPE, ACTION_DIM)
    written = 0
    while written < n:
        state = add_compiled(state, episode)
        written += ep_len
    jax.block_until_ready(state)
    fill_s = time.perf_counter() - t0
    rss_filled = rss_bytes()
    # glibc keeps freed per-call host->device transfer buffers (~6 MB each) in its heap; they
    # are reused, not replay memory. Report the figure after returning them to the OS as well.
    malloc_trim()
    rss_trimmed = rss_bytes()
    batch = sample(state, jax.random.key(0), args.batch, min(args.length, n))
    jax.block_until_ready(batch)
    t1 = time.perf_counter()
    batch = jax.block_until_ready(sample(state, jax.random.key(1), args.batch, min(args.length, n)))
    sample_ms = 1e3 * (time.perf_counter() - t1)
    rss_sampled = rss_bytes()
    batch_bytes = sum(x.nbytes for x in jax.tree.leaves(batch))

    raw = n * int(np.prod(OBS_SHAPE))
    held = replay.nbytes(state)
    result = {
        "frames": n,
        "obs_shape": list(OBS_SHAPE),
        "action_dim": ACTION_DIM,
        "raw_obs_bytes": raw,
        "state_bytes": held,
        "overhead": held / raw - 1,
        "rss_increase_bytes": rss_filled - rss0,
        "rss_overhead": (rss_filled - rss0) / raw - 1,
        "rss_increase_trimmed_bytes": rss_trimmed - rss0,
        "rss_overhead_trimmed": (rss_trimmed - rss0) / raw - 1,
        "rss_increase_after_sample_bytes": rss_sampled - rss0,
        "batch_bytes": batch_bytes,
        "fill_seconds": fill_s,
        "sample_ms": sample_ms,
        "backend": jax.default_backend(),
    }
    gb = 1e9
    print(
        f"replay {n} frames {OBS_SHAPE} A={ACTION_DIM}: raw uint8 obs {raw / gb:.3f} GB, "
        f"state arrays {held / gb:.3f} GB (overhead {100 * result['overhead']:.2f} %), "
        f"RSS +{(rss_filled - rss0) / gb:.3f} GB (overhead {100 * result['rss_overhead']:.2f} %, "
        f"{100 * result['rss_overhead_trimmed']:.2f} % after malloc_trim); "
        f"fill {fill_s:.1f} s, sample {args.batch}x{args.length} {sample_ms:.1f} ms"
    )
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])

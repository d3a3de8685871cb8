"""Functional episodic replay: a flat ring buffer over time steps, jittable add/sample.

The buffer holds records in the Dreamer-style step convention used across jaxplanet
(PlaNet, Hafner et al. 2019, trains on chunks of B=50 sequences of L=50 steps):
record t = (obs_t uint8, action_t that led to obs_t, reward_t for that transition, is_first_t).

Memory: observations are stored once, as uint8, in one preallocated array [C, *obs_shape];
per-step overhead is only action (4·A bytes), reward (4) and is_first (1) — for 64x64x3 frames
and A=6 that is 29 bytes over 12288, i.e. 0.24 %. Use `capacity_from_bytes` to size the buffer
from a RAM budget and `nbytes` to report what it holds.

Functions are pure; wrap them as ``jax.jit(add_episode, donate_argnums=0)`` so XLA updates the
buffer in place instead of copying it (no host round trips happen inside any of them).

Sampling draws uniform chunk starts among the ``size - length + 1`` chunks that lie wholly in
the written part of the ring, in time order, so a chunk never spans the write seam (where the
newest step sits next to the oldest). Chunks may cross an episode boundary; the stored
``is_first`` flag marks the new episode's first step, where the model resets its state.

Disk: each finished episode is one ``{index:06d}-{length}.npz`` file, written atomically
(temp file in the same directory, flush + fsync, ``os.replace``), so a crash never leaves a
half-written file under a trusted name; `load_episodes` skips temp files and files that fail to
load, with a warning.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from jax import lax

__all__ = [
    "KEYS",
    "ReplayState",
    "add",
    "add_episode",
    "bytes_per_step",
    "can_sample",
    "capacity_from_bytes",
    "episode_files",
    "episodes_to_state",
    "init",
    "iter_episodes",
    "load_episode_file",
    "load_episodes",
    "nbytes",
    "sample",
    "save_episode",
]

KEYS = ("obs", "action", "reward", "is_first")
_EPISODE_RE = re.compile(r"^(\d{6,})-(\d+)\.npz$")


@struct.dataclass
class ReplayState:
    """Ring buffer over time steps (capacity C).

    Attributes:
        obs: uint8 [C, *obs_shape].
        action: float32 [C, A] — action that led to obs (zeros at episode starts).
        reward: float32 [C] — reward for the transition into obs (0 at episode starts).
        is_first: bool [C] — True at an episode's first observation.
        pos: int32 [] — index the next step is written to.
        size: int32 [] — number of valid steps (<= C).
    """

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    is_first: jax.Array
    pos: jax.Array
    size: jax.Array

    @property
    def capacity(self) -> int:
        """Static capacity C (from the array shape)."""
        return self.obs.shape[0]


def bytes_per_step(obs_shape: Sequence[int], action_dim: int) -> int:
    """Bytes one stored time step takes: uint8 obs + float32 action + float32 reward + bool."""
    return int(np.prod(obs_shape)) + 4 * action_dim + 4 + 1


def capacity_from_bytes(nbytes: int, obs_shape: Sequence[int], action_dim: int) -> int:
    """Largest capacity (time steps) whose arrays fit in ``nbytes`` bytes."""
    cap = (int(nbytes) - 8) // bytes_per_step(obs_shape, action_dim)  # 8: the two counters
    if cap < 1:
        raise ValueError(f"{nbytes} bytes hold no step of obs {tuple(obs_shape)}")
    return int(cap)


def init(capacity: int, obs_shape: Sequence[int], action_dim: int) -> ReplayState:
    """Empty buffer of ``capacity`` steps (arrays zero-filled)."""
    if capacity < 1:
        raise ValueError(f"capacity must be >= 1, got {capacity}")
    return ReplayState(
        obs=jnp.zeros((capacity, *obs_shape), jnp.uint8),
        action=jnp.zeros((capacity, action_dim), jnp.float32),
        reward=jnp.zeros((capacity,), jnp.float32),
        is_first=jnp.zeros((capacity,), jnp.bool_),
        pos=jnp.zeros((), jnp.int32),
        size=jnp.zeros((), jnp.int32),
    )


def nbytes(state: ReplayState) -> int:
    """Bytes held by the buffer's arrays (the whole preallocated capacity)."""
    return int(sum(x.nbytes for x in jax.tree.leaves(state)))


def add(state: ReplayState, obs, action, reward, is_first) -> ReplayState:
    """Write one time step at ``pos`` (overwriting the oldest step once full). Jittable.

    Args:
        state: buffer.
        obs: uint8 [*obs_shape].
        action: float [A].
        reward: float [].
        is_first: bool [].
    """
    p = state.pos
    cap = state.capacity
    return state.replace(
        obs=state.obs.at[p].set(jnp.asarray(obs, jnp.uint8)),
        action=state.action.at[p].set(jnp.asarray(action, jnp.float32)),
        reward=state.reward.at[p].set(jnp.asarray(reward, jnp.float32)),
        is_first=state.is_first.at[p].set(jnp.asarray(is_first, jnp.bool_)),
        pos=((p + 1) % cap).astype(jnp.int32),
        size=jnp.minimum(state.size + 1, cap).astype(jnp.int32),
    )


def add_episode(state: ReplayState, episode: Mapping[str, jax.Array]) -> ReplayState:
    """Write a whole episode of T steps (T static under jit; T <= C). Jittable.

    One in-place ``dynamic_update_slice`` when the episode fits before the ring's end, a modular
    scatter when it wraps (``lax.cond`` picks; both keep the buffer in place under donation).

    Args:
        state: buffer.
        episode: dict with 'obs' uint8 [T, *obs_shape], 'action' [T, A], 'reward' [T],
            'is_first' [T]; other keys are ignored.
    """
    t = episode["obs"].shape[0]
    cap = state.capacity
    if t > cap:
        raise ValueError(f"episode of {t} steps does not fit in capacity {cap}")
    dtypes = {"obs": jnp.uint8, "action": jnp.float32, "reward": jnp.float32, "is_first": jnp.bool_}
    data = {k: jnp.asarray(episode[k], dtypes[k]) for k in KEYS}

    def contiguous(st: ReplayState) -> dict:  # common case: one in-place block copy
        return {
            k: lax.dynamic_update_slice_in_dim(getattr(st, k), data[k], st.pos, 0) for k in KEYS
        }

    def wrapping(st: ReplayState) -> dict:  # once per pass over the ring: modular scatter
        idx = (st.pos + jnp.arange(t, dtype=jnp.int32)) % cap
        return {
            k: getattr(st, k).at[idx].set(data[k], unique_indices=True, mode="promise_in_bounds")
            for k in KEYS
        }

    new = lax.cond(state.pos + t <= cap, contiguous, wrapping, state)
    return state.replace(
        **new,
        pos=((state.pos + t) % cap).astype(jnp.int32),
        size=jnp.minimum(state.size + t, cap).astype(jnp.int32),
    )


def can_sample(state: ReplayState, length: int) -> jax.Array:
    """bool []: whether the buffer holds at least one chunk of ``length`` steps."""
    return state.size >= length


def sample(state: ReplayState, key: jax.Array, batch_size: int, length: int) -> dict:
    """Uniform chunks of ``length`` consecutive steps (jittable; batch_size/length static).

    Chunk starts are uniform over the ``size - length + 1`` chunks lying wholly in the written
    part of the ring in time order, so no chunk spans the write seam. Where a chunk crosses
    into a new episode, 'is_first' is True at that step. A chunk's first step keeps its stored
    flag (a chunk may start mid-episode; the model starts every chunk from its initial state).

    Outside jit, ``size < length`` raises ValueError. Under jit the check cannot run; the
    chunks then contain unwritten (zero) steps — guard with `can_sample`.

    Args:
        state: buffer.
        key: PRNG key.
        batch_size: B.
        length: L (must be <= capacity).

    Returns:
        dict: 'obs' uint8 [B, L, *obs_shape], 'action' f32 [B, L, A], 'reward' f32 [B, L],
        'is_first' bool [B, L].
    """
    cap = state.capacity
    if length > cap:
        raise ValueError(f"chunk length {length} exceeds capacity {cap}")
    if not isinstance(state.size, jax.core.Tracer) and int(state.size) < length:
        raise ValueError(f"replay holds {int(state.size)} steps, fewer than chunk length {length}")
    oldest = (state.pos - state.size) % cap
    n_starts = jnp.maximum(state.size - length + 1, 1)
    offset = jax.random.randint(key, (batch_size,), 0, n_starts)
    idx = (oldest + offset[:, None] + jnp.arange(length)[None, :]) % cap  # [B, L]
    return {k: jnp.take(getattr(state, k), idx, axis=0, mode="clip") for k in KEYS}


# ----------------------------------------------------------------------------- disk


def save_episode(
    directory: str | os.PathLike, episode: Mapping[str, np.ndarray], index: int, compress=True
) -> Path:
    """Write ``episode`` atomically to ``directory/{index:06d}-{T}.npz`` and return its path.

    The data goes to a hidden temp file in the same directory, is flushed and fsynced, then
    renamed over the final name with ``os.replace``, so the final name only ever refers to a
    complete file.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    arrays = {k: np.asarray(v) for k, v in episode.items()}
    length = len(arrays["obs"])
    final = directory / f"{index:06d}-{length}.npz"
    tmp = directory / f".{final.name}.{os.getpid()}.tmp"
    try:
        with open(tmp, "wb") as f:
            (np.savez_compressed if compress else np.savez)(f, **arrays)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    try:  # make the rename itself durable
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return final


def episode_files(directory: str | os.PathLike) -> list[tuple[int, int, Path]]:
    """``(index, length, path)`` of every episode file name in ``directory``, by index."""
    directory = Path(directory)
    found = []
    for p in directory.iterdir() if directory.is_dir() else ():
        m = _EPISODE_RE.match(p.name)
        if m and p.is_file():
            found.append((int(m.group(1)), int(m.group(2)), p))
    return sorted(found)


def load_episode_file(path: str | os.PathLike, length: int) -> dict | None:
    """The arrays of one episode file, or None (with a warning naming it) if unreadable."""
    try:
        with open(path, "rb") as f, np.load(f, allow_pickle=False) as data:
            ep = {k: data[k] for k in data.files}
        missing = [k for k in KEYS if k not in ep]
        if missing:
            raise ValueError(f"missing arrays {missing}")
        bad = [k for k in KEYS if len(ep[k]) != length]
        if bad:
            raise ValueError(f"arrays {bad} do not have the {length} steps the name says")
        return ep
    except Exception as e:  # noqa: BLE001 — any unreadable file is skipped, never trusted
        warnings.warn(f"skipping unreadable episode file {path}: {e!r}", stacklevel=3)
        return None


def iter_episodes(directory: str | os.PathLike, limit: int | None = None) -> Iterable[dict]:
    """Yield the episodes in ``directory`` one at a time, by index (see `load_episodes`);
    with ``limit``, only those whose index is below it."""
    for index, length, path in episode_files(directory):
        if limit is not None and index >= limit:
            continue
        ep = load_episode_file(path, length)
        if ep is not None:
            yield ep


def load_episodes(directory: str | os.PathLike) -> list[dict]:
    """All readable episodes in ``directory``, sorted by index.

    Only names ``{index:06d}-{length}.npz`` are considered (temp files are skipped); files that
    fail to load, or whose arrays disagree with the length in their name, are skipped with a
    warning. Loaded with ``allow_pickle=False``. Missing directory gives [].
    """
    return list(iter_episodes(directory))


def episodes_to_state(
    episodes: Iterable[Mapping[str, np.ndarray]],
    capacity: int,
    obs_shape: Sequence[int],
    action_dim: int,
) -> ReplayState:
    """A fresh buffer filled with ``episodes`` in order (older steps overwritten if over capacity).

    Each episode is written into the buffer in place (jitted with donation), so memory peaks at
    one buffer plus one episode: pass `iter_episodes(directory)` to never hold all episodes at
    once. Given a sequence, episodes that would be entirely overwritten are not copied at all.
    """
    if isinstance(episodes, Sequence):
        keep, total = 0, 0
        for ep in reversed(episodes):
            if total >= capacity:
                break
            total += len(ep["obs"])
            keep += 1
        episodes = episodes[len(episodes) - keep :]
    state = init(capacity, obs_shape, action_dim)
    for ep in episodes:
        ep = {k: ep[k] for k in KEYS}
        t = len(ep["obs"])
        if t > capacity:  # only the newest `capacity` steps survive
            ep = {k: v[t - capacity :] for k, v in ep.items()}
        state = _add_episode_donated(state, ep)
        del ep
    return state


_add_episode_donated = jax.jit(add_episode, donate_argnums=0)

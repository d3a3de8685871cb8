"""World Models data: random rollouts (the collect stage) and V's z-sequences that M trains on.

Rollout files ``rollouts/rollout_{i:06d}.npz`` hold one episode each (obs uint8 [T + 1, 64, 64, 3],
action f32 [T + 1, A], reward f32 [T + 1], is_first bool [T + 1], terminated bool), written
atomically. Collection is keyed by index (episode i always has the same seed), so a killed
collect resumes by collecting the missing indices; an existing file that cannot be opened is
named, set aside (`resume.set_aside`, never deleted) and collected again. Readers skip a corrupt
file with a warning naming it. ``series.npz`` holds V's (mean, std) of every frame, padded.
"""

from __future__ import annotations

import functools
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet import envs, resume, vae
from jaxplanet.agents.world_models_run import COLLECT, MissingInputError, RandomPolicy, Run

ROLLOUT_KEYS = ("obs", "action", "reward", "is_first", "terminated")

__all__ = [
    "ROLLOUT_KEYS",
    "collect",
    "collected",
    "load_rollouts",
    "make_series",
    "rollout_path",
    "sample_sequences",
    "save_rollout",
]


def rollout_path(directory: Path, index: int) -> Path:
    """``directory/rollout_{index:06d}.npz``."""
    return directory / f"rollout_{index:06d}.npz"


def save_rollout(directory: Path, index: int, episode: dict[str, Any]) -> Path:
    """Writes one rollout atomically (temp file, then rename)."""
    directory.mkdir(parents=True, exist_ok=True)
    path = rollout_path(directory, index)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    keys = ("obs", "action", "reward", "is_first")
    np.savez(tmp, **{k: episode[k] for k in keys}, terminated=bool(episode["terminated"]))
    os.replace(tmp, path)
    return path


def load_rollouts(directory: Path, limit_frames: int | None = None, rng: Any = None):
    """Yields (path, rollout dict) of each valid file, in name order or shuffled by ``rng``.

    A corrupt file is reported by name (a warning) and skipped; stops once ``limit_frames``
    frames were yielded.
    """
    files = sorted(directory.glob("rollout_*.npz"))
    if rng is not None:
        files = [files[i] for i in rng.permutation(len(files))]
    frames = 0
    for path in files:
        try:
            with np.load(path) as data:
                ep = {k: data[k] for k in ROLLOUT_KEYS}
            n = len(ep["obs"])
            if ep["obs"].shape[1:] != (64, 64, 3) or len(ep["action"]) != n or n < 2:
                raise ValueError(f"inconsistent shapes {ep['obs'].shape}, {ep['action'].shape}")
        except Exception as err:  # noqa: BLE001 — any unreadable file is skipped, by name
            warnings.warn(f"skipping corrupt rollout file {path}: {err!r:.200}", stacklevel=2)
            continue
        yield path, ep
        frames += n
        if limit_frames is not None and frames >= limit_frames:
            return


def collect(run: Run) -> dict[str, Any]:
    """The collect stage: `cfg.rollouts` random rollouts (uniform actions in [-1, 1]^A held
    `random_hold` steps, then the action map); only missing indices are collected."""
    directory = run.logdir / "rollouts"
    _set_aside_unreadable(run, directory)
    missing = [i for i in range(run.cfg.rollouts) if not rollout_path(directory, i).exists()]
    if not missing:
        print(f"collect: {run.cfg.rollouts} rollouts exist in {directory}; skipped.")
        return {}
    print(f"collect: {len(missing)} random rollouts -> {directory}")
    if run.jax_env is not None:
        for chunk in np.array_split(np.asarray(missing), max(1, len(missing) // 64)):
            # threefry keys per index: rollout i is the same whatever batch collects it (rbg
            # streams change under vmap), so a resumed collect equals an uninterrupted one.
            keys = [jax.random.key(run.seed(COLLECT, int(i)), impl="threefry2x32") for i in chunk]
            keys = jnp.stack(keys)
            steps, hold = run.spec.agent_steps, run.r.random_hold
            batch = jax.device_get(_jax_random_rollouts(run.jax_env, steps, hold, keys))
            for j, i in enumerate(chunk):
                ep = {k: v[j] for k, v in batch.items()}
                save_rollout(directory, int(i), {**ep, "terminated": False})
    else:
        seeds = [run.seed(COLLECT, i) for i in missing]
        eps = run.host_episodes(seeds, RandomPolicy(run), record=True, desc="collect")
        for i, ep in zip(missing, eps, strict=True):
            save_rollout(directory, i, ep)
    return {"collected": len(missing)}


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _jax_random_rollouts(env: envs.JaxEnv, steps: int, hold: int, keys: jax.Array) -> dict:
    def one(key):
        k_reset, k_act = jax.random.split(key)
        state, obs = env.reset(k_reset)
        shape = (-(-steps // hold), env.spec.action_dim)
        actions = jax.random.uniform(k_act, shape, minval=-1.0, maxval=1.0)
        actions = jnp.repeat(actions, hold, axis=0)[:steps]

        def body(s, a):
            s, o, r, _ = env.step(s, a)
            return s, (o, r)

        _, (frames, rewards) = jax.lax.scan(body, state, actions)
        zero_a = jnp.zeros((1, env.spec.action_dim))
        return {
            "obs": jnp.concatenate([obs[None], frames]),
            "action": jnp.concatenate([zero_a, actions]),
            "reward": jnp.concatenate([jnp.zeros(1), rewards]),
            "is_first": jnp.arange(steps + 1) == 0,
        }

    return jax.vmap(one)(keys)


def _opens(path: Path) -> bool:
    """Cheap check (the zip directory only): the file opens and holds every rollout array."""
    try:
        with np.load(path) as data:
            return set(ROLLOUT_KEYS) <= set(data.files)
    except Exception:  # noqa: BLE001 — any unreadable file is redone
        return False


def _set_aside_unreadable(run: Run, directory: Path) -> None:
    bad = [p for p in sorted(directory.glob("rollout_*.npz")) if not _opens(p)]
    aside = resume.set_aside(run.logdir, bad, sub="rollouts")
    if aside is not None:
        names = ", ".join(p.name for p in bad)
        warnings.warn(
            f"unreadable rollout file(s) {names} set aside in {aside} and collected again",
            stacklevel=3,
        )


def collected(run: Run) -> bool:
    """Whether every rollout file of the run exists."""
    directory = run.logdir / "rollouts"
    return all(rollout_path(directory, i).exists() for i in range(run.cfg.rollouts))


def make_series(run: Run, vae_params: Any) -> dict[str, np.ndarray]:
    """Encodes every valid rollout with V into padded z-sequences (series.npz), or loads them.

    Returns:
      {"z_mean", "z_std": f32 [N, T + 1, Z], "action": f32 [N, T, A], "reward", "done",
      "mask": f32 [N, T], "length": int32 [N]}: step t maps (z_t, action_t) to z_{t+1}.
    """
    path = run.logdir / "series.npz"
    if path.exists():
        with np.load(path) as data:
            return dict(data)
    encode = jax.jit(lambda p, o: vae.encode(p, run.r.vae, o))
    rows = []
    for _, ep in load_rollouts(run.logdir / "rollouts"):
        parts = [encode(vae_params, ep["obs"][i : i + 256]) for i in range(0, len(ep["obs"]), 256)]
        mean, std = (np.concatenate([np.asarray(p[j]) for p in parts]) for j in (0, 1))
        rows.append((mean, std, ep))
    if not rows:
        raise MissingInputError("--stage=mdn: no readable rollout; run --stage=collect first")
    t_max, z, a = max(len(r[0]) for r in rows) - 1, run.r.vae.z_dim, run.spec.action_dim
    n = len(rows)
    out = {
        "z_mean": np.zeros((n, t_max + 1, z), np.float32),
        "z_std": np.zeros((n, t_max + 1, z), np.float32),
        "action": np.zeros((n, t_max, a), np.float32),
        "reward": np.zeros((n, t_max), np.float32),
        "done": np.zeros((n, t_max), np.float32),
        "mask": np.zeros((n, t_max), np.float32),
        "length": np.zeros((n,), np.int32),
    }
    for i, (mean, std, ep) in enumerate(rows):
        t = len(mean) - 1
        out["z_mean"][i, : t + 1], out["z_std"][i, : t + 1] = mean, std
        out["action"][i, :t], out["reward"][i, :t] = ep["action"][1:], ep["reward"][1:]
        out["done"][i, t - 1] = float(ep["terminated"])
        out["mask"][i, :t], out["length"][i] = 1.0, t
    tmp = path.with_name(f".series.{os.getpid()}.tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path)
    return out


def sample_sequences(series: dict[str, np.ndarray], rng: Any, batch: int, length: int) -> dict:
    """Random windows of `length` transitions (padded with mask 0 past an episode's end).

    Returns the keys of `make_series` but "length", each [batch, length (+ 1 for z), ...].
    """
    n = len(series["length"])
    eps = rng.integers(0, n, batch)
    # Any step may start a window (one running past the end is masked): the last transition,
    # where `done` is learned, is covered as often as any other.
    starts = rng.integers(0, np.maximum(series["length"][eps], 1))
    out = {}
    for k in ("z_mean", "z_std", "action", "reward", "done", "mask"):
        extra = 1 if k.startswith("z_") else 0
        x = series[k]
        pad = np.zeros((x.shape[0], length + extra) + x.shape[2:], x.dtype)
        x = np.concatenate([x, pad], axis=1)
        idx = starts[:, None] + np.arange(length + extra)[None]
        out[k] = x[eps[:, None], idx]
    return out

"""World Models data: random rollouts (the collect stage) and V's z-sequences that M trains on.

Rollout files ``rollouts/rollout_{i:06d}.npz`` hold one episode each (obs uint8 [T + 1, 64, 64, 3],
action f32 [T + 1, A], reward f32 [T + 1], is_first bool [T + 1], terminated bool), written
atomically. Collection is keyed by index (episode i always has the same seeds: its first
attempt's, then, while an episode is no longer than `min_random_length` steps and dropped, one
new seed per attempt), so a killed collect resumes by collecting the missing indices; an
existing file that cannot be opened is named, set aside (`resume.set_aside`, never deleted) and
collected again. Readers skip a corrupt file with a warning naming it. ``series.npz`` holds V's
(mean, std) of every frame, padded. A terminated episode's last frame stays in its file; with
`mask_terminal` (ViZDoom's blank frame) V never trains on it and M's z loss never targets it.

M's batches (`sample_sequences`, `StreamBatches`) are fixed-shape and drawn from generators
seeded by the run seed and the update index (or epoch), so a resumed M stage draws them again.
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

from jaxplanet import envs
from jaxplanet.core import logging as logging_lib
from jaxplanet.core import resume
from jaxplanet.envs.vector import WorkerDiedError
from jaxplanet.worldmodels import dream, mdn_rnn, vae
from jaxplanet.worldmodels.policies import ControllerPolicy, RandomPolicy, RandomWeightsPolicy
from jaxplanet.worldmodels.run import COLLECT, ITERATE, MissingInputError, Run

ROLLOUT_KEYS = ("obs", "action", "reward", "is_first", "terminated")
#: Attempts per rollout index before a collect gives up on episodes that are all too short.
MAX_ATTEMPTS = 50

__all__ = [
    "MAX_ATTEMPTS",
    "ROLLOUT_KEYS",
    "StreamBatches",
    "attempt_seed",
    "collect",
    "collect_with_controller",
    "collected",
    "held_actions",
    "load_rollouts",
    "make_series",
    "rollout_path",
    "sample_sequences",
    "save_rollout",
    "series_path",
    "vae_frames",
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


def load_rollouts(
    directory: Path, limit_frames: int | None = None, rng: Any = None, count: int | None = None
):
    """Yields (path, rollout dict) of each valid file, in name order or shuffled by ``rng``.

    A corrupt file is reported by name (a warning) and skipped; stops once ``limit_frames``
    frames were yielded. With ``count``, only the files of indices < ``count``.
    """
    files = sorted(directory.glob("rollout_*.npz"))
    if count is not None:
        files = [f for f in files if int(f.stem.split("_")[1]) < count]
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
    `random_hold` steps or k ~ U{1..random_hold_max}, then the action map; on a host task with
    ``random_policy="weights"``, `RandomWeightsPolicy`'s randomly weighted C); only missing
    indices are collected. Host episodes of at most `min_random_length` steps are dropped and
    collected again with the index's next seed."""
    directory = run.logdir / "rollouts"
    _set_aside_unreadable(run, directory)
    missing = [i for i in range(run.cfg.rollouts) if not rollout_path(directory, i).exists()]
    if not missing:
        print(f"collect: {run.cfg.rollouts} rollouts exist in {directory}; skipped.")
        return {}
    print(f"collect: {len(missing)} random rollouts -> {directory}")
    if run.jax_env is not None:
        _collect_jax(run, directory, missing)
        return {"collected": len(missing)}
    dropped = _collect_host(run, directory, missing)
    if run.r.min_random_length:
        print(f"collect: {dropped} episodes of <= {run.r.min_random_length} steps collected again")
        return {"collected": len(missing), "collect_dropped_short": dropped}
    return {"collected": len(missing)}


def collect_with_controller(run: Run, round: int, params: Any, flat: Any, unflatten: Any) -> int:
    """Round ``round``'s rollouts of iterative training: C (flat [N]) plus N(0, noise^2) on its
    raw action, `iteration_rollouts` real episodes numbered on after the earlier rounds' (only
    missing files are written; their chunk is played again whole, with its seeds and keys, so a
    resumed collect writes what an uninterrupted one would have). Returns how many it wrote.
    """
    directory = run.logdir / "rollouts"
    lo, hi = run.rollout_count(round - 1), run.rollout_count(round)
    missing = [i for i in range(lo, hi) if not rollout_path(directory, i).exists()]
    if not missing:
        return 0
    noise = run.cfg.iteration_noise
    print(f"iterate: round {round}: {len(missing)} rollouts of C (noise {noise}) -> {directory}")
    size = max(16, 4 * run.cfg.workers)
    bar = logging_lib.progress(
        len(missing), f"round {round} collect", unit="episode", disable=not run.cfg.progress
    )
    for c0 in range(lo, hi, size):
        # The whole chunk is played again for any missing file (only those are written): the
        # same batch gives the same numbers (XLA's results may differ with the batch size).
        ids = list(range(c0, min(c0 + size, hi)))
        if not any(i in missing for i in ids):
            continue
        if run.jax_env is not None:
            # threefry keys per index, as in `_collect_jax` (rbg streams change under vmap)
            keys = [jax.random.key(run.seed(ITERATE, i), impl="threefry2x32") for i in ids]
            keys = jnp.stack(keys)
            batch = jax.device_get(
                _jax_controller_rollouts(
                    run.jax_env, run.dcfg, unflatten, run.spec.agent_steps, params, flat,
                    noise, keys,
                )
            )  # fmt: skip
            eps = [
                {**{k: v[j] for k, v in batch.items()}, "terminated": False}
                for j in range(len(ids))
            ]
        else:
            seeds = [run.seed(ITERATE, i) for i in ids]
            flats = np.repeat(np.asarray(flat)[None], len(ids), axis=0)
            policy = ControllerPolicy(
                run, params, flats, unflatten, run.key(ITERATE, c0), noise=noise
            )
            eps = run.host_episodes(seeds, policy, True, f"round {round} collect", progress=False)
        for i, ep in zip(ids, eps, strict=True):
            if i in missing:
                save_rollout(directory, i, ep)
                bar.update(1)
    bar.close()
    return len(missing)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _jax_controller_rollouts(env, dcfg, unflatten, steps, params, flat, noise, keys) -> dict:
    """Rollouts (the keys of `_jax_random_rollouts`) of C plus noise on a pure-JAX task."""
    ctrl = unflatten(flat)

    def one(key):
        k_reset, k_run = jax.random.split(key)
        state, obs = env.reset(k_reset)

        def body(c, k):
            s, o, carry = c
            a, carry = dream.exploring_policy_step(params, dcfg, ctrl, carry, o, k, noise)
            s, o, r, _ = env.step(s, a)
            return (s, o, carry), (o, a, r)

        init = (state, obs, mdn_rnn.initial_state(dcfg.mdn, ()))
        _, (frames, actions, rewards) = jax.lax.scan(body, init, jax.random.split(k_run, steps))
        return {
            "obs": jnp.concatenate([obs[None], frames]),
            "action": jnp.concatenate([jnp.zeros((1, env.spec.action_dim)), actions]),
            "reward": jnp.concatenate([jnp.zeros(1), rewards]),
            "is_first": jnp.arange(steps + 1) == 0,
        }

    return jax.vmap(one)(keys)


def attempt_seed(run: Run, index: int, attempt: int) -> int:
    """Env seed of rollout ``index``'s ``attempt``-th try (0: the seed it always had)."""
    return run.seed(COLLECT, index + attempt * 2**24)


def _collect_host(run: Run, directory: Path, missing: list[int]) -> int:
    """Collects host rollouts ``missing`` in chunks (each saved as it ends); returns how many
    episodes were dropped as too short."""
    dropped, size = 0, max(16, 4 * run.cfg.workers)
    bar = logging_lib.progress(
        len(missing), "collect", unit="episode", disable=not run.cfg.progress
    )
    for start in range(0, len(missing), size):
        attempts = dict.fromkeys(missing[start : start + size], 0)
        while attempts:
            ids = list(attempts)
            seeds = [attempt_seed(run, i, attempts[i]) for i in ids]
            try:
                policy = (
                    RandomWeightsPolicy if run.r.random_policy == "weights" else RandomPolicy
                )(run, seeds)
                eps = run.host_episodes(seeds, policy, True, "collect", progress=False)
            except WorkerDiedError as err:
                if err.seed in seeds:
                    err.add_note(f"collect: that is rollout {ids[seeds.index(err.seed)]}")
                raise
            for i, ep in zip(ids, eps, strict=True):
                if ep["length"] > run.r.min_random_length:
                    save_rollout(directory, i, ep)
                    del attempts[i]
                    bar.update(1)
                    continue
                dropped, attempts[i] = dropped + 1, attempts[i] + 1
                if attempts[i] == MAX_ATTEMPTS:
                    raise RuntimeError(
                        f"collect: rollout {i}: {MAX_ATTEMPTS} episodes in a row ended within "
                        f"{run.r.min_random_length} steps; lower --min_random_length"
                    )
    bar.close()
    return dropped


def _collect_jax(run: Run, directory: Path, missing: list[int]) -> None:
    for chunk in np.array_split(np.asarray(missing), max(1, len(missing) // 64)):
        # threefry keys per index: rollout i is the same whatever batch collects it (rbg
        # streams change under vmap), so a resumed collect equals an uninterrupted one.
        keys = [jax.random.key(run.seed(COLLECT, int(i)), impl="threefry2x32") for i in chunk]
        keys = jnp.stack(keys)
        hold = (run.r.random_hold, run.r.random_hold_max)
        batch = jax.device_get(_jax_random_rollouts(run.jax_env, run.spec.agent_steps, hold, keys))
        for j, i in enumerate(chunk):
            ep = {k: v[j] for k, v in batch.items()}
            save_rollout(directory, int(i), {**ep, "terminated": False})


def held_actions(key: jax.Array, steps: int, hold: int, hold_max: int, dim: int) -> jax.Array:
    """f32 [steps, dim] uniform actions in [-1, 1], each held ``hold`` steps, or, with
    ``hold_max`` > 0, k ~ U{1..hold_max} steps (k drawn per action)."""
    if not hold_max:
        actions = jax.random.uniform(key, (-(-steps // hold), dim), minval=-1.0, maxval=1.0)
        return jnp.repeat(actions, hold, axis=0)[:steps]
    k_act, k_hold = jax.random.split(key)
    actions = jax.random.uniform(k_act, (steps, dim), minval=-1.0, maxval=1.0)
    ends = jnp.cumsum(jax.random.randint(k_hold, (steps,), 1, hold_max + 1))
    return actions[jnp.searchsorted(ends, jnp.arange(steps), side="right")]


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _jax_random_rollouts(
    env: envs.JaxEnv, steps: int, hold: tuple[int, int], keys: jax.Array
) -> dict:
    def one(key):
        k_reset, k_act = jax.random.split(key)
        state, obs = env.reset(k_reset)
        actions = held_actions(k_act, steps, *hold, env.spec.action_dim)

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


def vae_frames(run: Run, ep: dict[str, Any]) -> np.ndarray:
    """uint8 [n, 64, 64, 3]: the frames of rollout ``ep`` that V trains on (all, but the last
    one of a terminated episode with `mask_terminal`)."""
    blank = run.r.mask_terminal and bool(ep["terminated"])
    return ep["obs"][:-1] if blank else ep["obs"]


def series_path(run: Run, round: int = 0) -> Path:
    """``series.npz`` (round 0: the random rollouts), ``series_round{r}.npz`` after."""
    return run.logdir / ("series.npz" if round == 0 else f"series_round{round}.npz")


def make_series(run: Run, vae_params: Any, round: int = 0) -> dict[str, np.ndarray]:
    """Encodes every valid rollout M trains on in ``round`` (`Run.rollout_count`) with V into
    padded z-sequences (`series_path`), or loads them.

    Returns:
      {"z_mean", "z_std": f32 [N, T + 1, Z], "action": f32 [N, T, A], "reward", "done",
      "mask", "z_mask": f32 [N, T], "length": int32 [N]}: step t maps (z_t, action_t) to
      z_{t+1}; ``z_mask`` is ``mask`` but 0 at a terminated episode's last step with
      `mask_terminal` (its z target is the blank terminal frame; its done label stays).
      A series.npz written before ``z_mask`` existed loads without it.
    """
    path = series_path(run, round)
    if path.exists():
        with np.load(path) as data:
            return dict(data)
    encode = jax.jit(lambda p, o: vae.encode(p, run.r.vae, o))
    rows = []
    for _, ep in load_rollouts(run.logdir / "rollouts", count=run.rollout_count(round)):
        parts = [encode(vae_params, ep["obs"][i : i + 256]) for i in range(0, len(ep["obs"]), 256)]
        mean, std = (np.concatenate([np.asarray(p[j]) for p in parts]) for j in (0, 1))
        rows.append((mean, std, ep))
    if not rows:
        raise MissingInputError("--stage=mdn: no readable rollout; run --stage=collect first")
    out = _pad_series(rows, run.r.vae.z_dim, run.spec.action_dim, run.r.mask_terminal)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **out)
    os.replace(tmp, path)
    return out


def _pad_series(rows: list, z: int, a: int, mask_terminal: bool) -> dict[str, np.ndarray]:
    """(z mean, z std, rollout) per episode -> the padded arrays of `make_series`."""
    t_max, n = max(len(r[0]) for r in rows) - 1, len(rows)
    out = {
        "z_mean": np.zeros((n, t_max + 1, z), np.float32),
        "z_std": np.zeros((n, t_max + 1, z), np.float32),
        "action": np.zeros((n, t_max, a), np.float32),
        "reward": np.zeros((n, t_max), np.float32),
        "done": np.zeros((n, t_max), np.float32),
        "mask": np.zeros((n, t_max), np.float32),
        "z_mask": np.zeros((n, t_max), np.float32),
        "length": np.zeros((n,), np.int32),
    }
    for i, (mean, std, ep) in enumerate(rows):
        t = len(mean) - 1
        out["z_mean"][i, : t + 1], out["z_std"][i, : t + 1] = mean, std
        out["action"][i, :t], out["reward"][i, :t] = ep["action"][1:], ep["reward"][1:]
        out["done"][i, t - 1] = float(ep["terminated"])
        out["mask"][i, :t], out["z_mask"][i, :t], out["length"][i] = 1.0, 1.0, t
        if mask_terminal and ep["terminated"]:
            out["z_mask"][i, t - 1] = 0.0
    return out


_STEP_KEYS = ("action", "reward", "done", "mask", "z_mask")


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
    for k in ("z_mean", "z_std", *_STEP_KEYS):
        if k not in series:  # z_mask: absent from a series.npz written before it existed
            continue
        extra = 1 if k.startswith("z_") and k != "z_mask" else 0
        x = series[k]
        pad = np.zeros((x.shape[0], length + extra) + x.shape[2:], x.dtype)
        x = np.concatenate([x, pad], axis=1)
        idx = starts[:, None] + np.arange(length + extra)[None]
        out[k] = x[eps[:, None], idx]
    return out


class StreamBatches:
    """M's batches as the released Doom M's (``doomrnn/rnn_train.py``): episode streams.

    Each epoch shuffles the episodes (a generator seeded by ``seed`` and the epoch) and
    concatenates their frames z_0 .. z_T into one stream, cut into ``batch`` rows and each row
    into ``num_chunks`` consecutive chunks of ``length`` steps; update i gets chunk
    ``i % num_chunks`` of epoch ``i // num_chunks``, so batch i is a function of i alone (a
    resumed stage draws it again). M's LSTM state is carried from chunk to chunk
    (`mdn_rnn.stream_train_step`) and zeroed by ``reset`` at each episode's first frame and at
    an epoch's first chunk. Unlike the released streams, the step from an episode's last frame
    into the next episode's first is masked out (it is not a transition).

    Args:
      series: `make_series`' arrays; seed: ints seeding the epochs' shuffles.

    Raises:
      ValueError: the series holds fewer than ``batch * length + 1`` frames.
    """

    def __init__(self, series: dict[str, np.ndarray], seed: Any, batch: int, length: int):
        self.series, self.seed, self.batch, self.length = series, seed, batch, length
        frames = int(np.sum(series["length"] + 1))
        self.num_chunks = (frames - 1) // (batch * length)
        if self.num_chunks < 1:
            raise ValueError(
                f"M's streams need more than --mdn_batch x --mdn_seq_len = {batch * length} "
                f"frames; the rollouts hold {frames}"
            )
        self._epoch: tuple[int, np.ndarray, np.ndarray] | None = None

    def layout(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(episode, time) int [F] of every frame of epoch ``epoch``'s stream."""
        if self._epoch is None or self._epoch[0] != epoch:
            lengths = self.series["length"]
            order = np.random.default_rng([*self.seed, epoch]).permutation(len(lengths))
            sizes = lengths[order] + 1
            ep = np.repeat(order, sizes)
            t = np.arange(len(ep)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
            self._epoch = (epoch, ep, t)
        return self._epoch[1], self._epoch[2]

    def __call__(self, i: int) -> dict[str, np.ndarray]:
        """Batch of update ``i``: `sample_sequences`' keys and ``reset`` bool [batch, length]."""
        epoch, chunk = divmod(i, self.num_chunks)
        ep, t = self.layout(epoch)
        row = self.num_chunks * self.length
        pos = np.arange(self.batch)[:, None] * row + chunk * self.length
        pos = pos + np.arange(self.length + 1)[None]
        ep, t = ep[pos], t[pos]  # [B, S + 1] frames
        out = {k: self.series[k][ep, t] for k in ("z_mean", "z_std")}
        e, s = ep[:, :-1], t[:, :-1]
        inside = s < self.series["length"][e]  # else the episode's last frame: no transition
        s = np.minimum(s, self.series["mask"].shape[1] - 1)
        for k in _STEP_KEYS:
            if k in self.series:
                x = self.series[k][e, s]
                out[k] = np.where(inside.reshape(inside.shape + (1,) * (x.ndim - 2)), x, 0)
        out["reset"] = (t[:, :-1] == 0) | ((chunk == 0) & (np.arange(self.length) == 0))[None]
        return out

"""World Models pipeline (Ha & Schmidhuber 2018): collect -> V -> M -> C -> evaluate.

`train_and_evaluate(config, logdir, stage)` runs one stage or all of them. Every stage is
resumable and skipped when its artifact exists; a stage run before its inputs exist raises
`MissingInputError` naming the stage to run first. Layout of ``logdir``:

    config.json                    the run config (a different one is refused on resume)
    rollouts/rollout_000123.npz    random rollouts (obs uint8, action, reward, is_first, terminated)
    vae/  mdn/  controller/        checkpoints (orbax) + metrics.jsonl + TensorBoard per stage
    series.npz                     V's (mean, std) of every rollout frame: M's training data
    evaluate.json, videos/         final real-task scores; real (left) vs dream (right) video

``step`` on the metrics rows of a stage counts that stage's own progress: gradient updates for
V and M, generations for C (rows also carry ``env_steps``, the real environment steps used).
Rollouts of pure-JAX tasks (point_reach) are jitted vmaps; those of host tasks (CarRacing, Doom)
run in `workers` processes with `gymnasium.vector.AsyncVectorEnv`. The final controller is the
CMA-ES mean (the best sample's score is optimistic under noisy fitness).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import warnings
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet import checkpoint, controllers, dream, envs, mdn_rnn, vae
from jaxplanet import config as config_lib
from jaxplanet import logging as logging_lib
from jaxplanet.agents.world_models_config import RESUMABLE_FIELDS, WorldModelsConfig, resolved
from jaxplanet.envs import car_racing

STAGES = ("collect", "vae", "mdn", "controller", "evaluate")
_COLLECT, _VAE, _MDN, _CTRL, _EVAL, _SERIES = range(6)
_HOST_GYM = {"car_racing": car_racing.make_gym}

__all__ = ["STAGES", "MissingInputError", "Run", "train_and_evaluate"]


class MissingInputError(config_lib.ConfigError):
    """A stage was asked for before the stage that makes its inputs."""


# ----------------------------------------------------------------------------- the task


class Run:
    """Host-side handles of one run: config, resolved settings, task, directories."""

    def __init__(self, cfg: WorldModelsConfig, logdir: str | os.PathLike):
        cfg.validate()
        self.cfg, self.r, self.logdir = cfg, resolved(cfg), Path(logdir)
        self.root = jax.random.key(cfg.seed, impl=cfg.prng_impl)
        self.options: dict[str, Any] = {}
        if cfg.action_repeat:
            self.options["action_repeat"] = cfg.action_repeat
        if cfg.episode_length:
            self.options["episode_length"] = cfg.episode_length
        self.jax_env = None
        if cfg.env in envs.JAX_ENVS:
            self.jax_env = envs.make_jax(cfg.env, **self.options)
            self.spec = self.jax_env.spec
        else:  # builds (and closes) one env: a missing optional package fails here, early
            env = envs.make(cfg.env, seed=cfg.seed, **self.options)
            self.spec, self.options = (
                env.spec,
                {
                    "action_repeat": env.spec.action_repeat,
                    "episode_length": env.spec.episode_length,
                },
            )
            env.close()
        config_dict = config_lib.to_dict(cfg)
        checkpoint.check_config(self.logdir, config_dict, allowed=RESUMABLE_FIELDS)
        self.logdir.mkdir(parents=True, exist_ok=True)
        checkpoint.write_config(self.logdir, config_dict)
        self.dcfg = dream.DreamConfig(
            vae=self.r.vae,
            mdn=self.r.mdn,
            action_dim=self.spec.action_dim,
            max_steps=self.spec.agent_steps,
            reward=self.r.reward,
            action_map=self.r.action_map,
        )

    def key(self, stream: int, index: int = 0) -> jax.Array:
        return jax.random.fold_in(jax.random.fold_in(self.root, stream), index)

    def seed(self, stream: int, index: int) -> int:
        return (self.cfg.seed * 1_000_003 + stream * 100_003 + index) % 2**31

    def host_episodes(self, seeds: list[int], policy: Any, record: bool, desc: str) -> list:
        make_gym = _HOST_GYM.get(self.cfg.env)
        if make_gym is None:
            from jaxplanet.envs import doom

            make_gym = doom.make_gym
        return car_racing.vector_episodes(
            make_gym, self.options, seeds, policy, self.cfg.workers, record, self.cfg.progress, desc
        )


class _RandomPolicy:
    """Uniform actions in [-1, 1]^A, each held for `random_hold` steps, then the action map."""

    def __init__(self, run: Run):
        self.run, self.rngs, self.t = run, [], 0

    def start(self, ids: list[int]) -> None:
        self.rngs = [np.random.default_rng(self.run.seed(_COLLECT, i) + 7) for i in ids]
        self.t = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        if self.t % self.run.r.random_hold == 0:
            a = np.stack([g.uniform(-1.0, 1.0, self.run.spec.action_dim) for g in self.rngs])
            self.a = np.asarray(controllers.map_action(self.run.r.action_map, a), np.float32)
        self.t += 1
        return self.a


class _ControllerPolicy:
    """Batched world-model agent on host frames: one controller (flat) per episode id."""

    def __init__(self, run: Run, params: Any, flats: np.ndarray, unflatten: Any, key: jax.Array):
        self.run, self.params, self.flats, self.key = run, params, flats, key
        self.unflatten, self.t = unflatten, 0
        step = functools.partial(dream.world_model_policy_step, cfg=run.dcfg)

        def act(params, flats, carry, obs, key):
            keys = jax.random.split(key, obs.shape[0])
            return jax.vmap(
                lambda f, c, o, k: step(params, ctrl=unflatten(f), carry=c, obs=o, key=k)
            )(flats, carry, obs, keys)

        self._act = jax.jit(act)

    def start(self, ids: list[int]) -> None:
        self.ids = np.maximum(np.asarray(ids), 0)
        self.carry = mdn_rnn.initial_state(self.run.dcfg.mdn, (len(ids),))

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.t += 1
        key = jax.random.fold_in(self.key, self.t)
        a, self.carry, _ = self._act(self.params, self.flats[self.ids], self.carry, obs, key)
        return np.asarray(a)


# ----------------------------------------------------------------------------- rollout files


def rollout_path(directory: Path, index: int) -> Path:
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
    """Yields valid rollouts (dicts of arrays); a corrupt file is reported by name and skipped."""
    files = sorted(directory.glob("rollout_*.npz"))
    if rng is not None:
        files = [files[i] for i in rng.permutation(len(files))]
    frames = 0
    for path in files:
        try:
            with np.load(path) as data:
                ep = {k: data[k] for k in ("obs", "action", "reward", "is_first", "terminated")}
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


# ----------------------------------------------------------------------------- stages


def collect(run: Run) -> dict[str, Any]:
    """Random rollouts (uniform actions in [-1, 1]^A held `random_hold` steps, then the action
    map)."""
    directory = run.logdir / "rollouts"
    missing = [i for i in range(run.cfg.rollouts) if not rollout_path(directory, i).exists()]
    if not missing:
        print(f"collect: {run.cfg.rollouts} rollouts exist in {directory}; skipped.")
        return {}
    print(f"collect: {len(missing)} random rollouts -> {directory}")
    if run.jax_env is not None:
        for chunk in np.array_split(np.asarray(missing), max(1, len(missing) // 64)):
            keys = jnp.stack([run.key(_COLLECT, int(i)) for i in chunk])
            steps, hold = run.spec.agent_steps, run.r.random_hold
            batch = jax.device_get(_jax_random_rollouts(run.jax_env, steps, hold, keys))
            for j, i in enumerate(chunk):
                ep = {k: v[j] for k, v in batch.items()}
                save_rollout(directory, int(i), {**ep, "terminated": False})
    else:
        seeds = [run.seed(_COLLECT, i) for i in missing]
        eps = run.host_episodes(seeds, _RandomPolicy(run), record=True, desc="collect")
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


def _stage_state(run: Run, name: str, template: Any) -> tuple[checkpoint.Checkpointer, Any]:
    """(checkpointer, (next step, state)) of a stage: restored, or (0, template)."""
    ckpt = checkpoint.Checkpointer(run.logdir / name / "checkpoints", max_to_keep=2)
    restored = ckpt.restore(template)
    return ckpt, (0, template) if restored is None else restored


def _finished(run: Run, name: str, steps: int) -> bool:
    directory = run.logdir / name / "checkpoints"
    if not directory.is_dir():
        return False
    with checkpoint.Checkpointer(directory, create=False) as ckpt:
        return steps in ckpt.steps()


def _require(run: Run, stage: str, needs: str, ok: bool) -> None:
    if not ok:
        raise MissingInputError(
            f"--stage={stage}: its inputs are missing in {run.logdir}; "
            f"run --stage={needs} first (or --stage=all)"
        )


def _train_loop(run, name, steps, state, start, ckpt, update, batch_fn, env_steps) -> Any:
    """Shared V / M loop: jitted update per step, metrics every ~1 % , checkpoints."""
    every = max(1, steps // 100)
    bar = logging_lib.progress(steps, name, unit="update", disable=not run.cfg.progress)
    bar.update(start)
    sums: dict[str, float] = {}
    with logging_lib.Logger(run.logdir / name) as logger:
        for i in range(start, steps):
            state, metrics = update(state, batch_fn(i), run.key(_VAE if name == "vae" else _MDN, i))
            for k, v in jax.device_get(metrics).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            if (i + 1) % every == 0 or i + 1 == steps:
                row = {f"{name}/{k}": v / every for k, v in sums.items()}
                logger.scalars(i + 1, {**row, "env_steps": env_steps})
                logging_lib.set_postfix(bar, {"loss": row[f"{name}/loss"]})
                if not np.isfinite(row[f"{name}/loss"]):
                    raise FloatingPointError(f"{name}: non-finite loss at update {i + 1}: {row}")
                sums = {}
            if (i + 1) % run.cfg.checkpoint_every == 0 or i + 1 == steps:
                ckpt.save(i + 1, {"train": state}, config_lib.to_dict(run.cfg))
            bar.update(1)
    bar.close()
    return state


def train_vae(run: Run) -> dict[str, Any]:
    """Trains V on frames of the random rollouts."""
    cfg = run.cfg
    if _finished(run, "vae", cfg.vae_steps):
        print("vae: trained V exists; skipped.")
        return {}
    _require(run, "vae", "collect", _collected(run))
    rng = np.random.default_rng(cfg.seed)
    eps = load_rollouts(run.logdir / "rollouts", cfg.vae_max_frames, rng)
    frames = np.concatenate([ep["obs"] for _, ep in eps])[: cfg.vae_max_frames]
    template = {"train": vae.init_train_state(run.r.vae, run.key(_VAE, 2**31))}
    ckpt, (start, state) = _stage_state(run, "vae", template)
    print(f"vae: {len(frames)} frames, updates {start} -> {cfg.vae_steps}")

    def batch(i):
        idx = np.random.default_rng([cfg.seed, _VAE, i]).integers(0, len(frames), cfg.vae_batch)
        return frames[idx]

    def update(s, b, k):
        return vae.train_step(s, b, k, run.r.vae)

    with ckpt:
        state = _train_loop(
            run, "vae", cfg.vae_steps, state["train"], start, ckpt, update, batch, 0
        )
    return {"vae/updates": int(state.step)}


def _collected(run: Run) -> bool:
    directory = run.logdir / "rollouts"
    return all(rollout_path(directory, i).exists() for i in range(run.cfg.rollouts))


def _load_params(run: Run, name: str, template: Any, needs: str) -> Any:
    steps = run.cfg.vae_steps if name == "vae" else run.cfg.mdn_steps
    _require(run, needs, name, _finished(run, name, steps))
    with checkpoint.Checkpointer(run.logdir / name / "checkpoints", create=False) as ckpt:
        return ckpt.restore_step(steps, {"train": template})["train"].params


def _vae_params(run: Run, needs: str) -> Any:
    return _load_params(run, "vae", vae.init_train_state(run.r.vae, run.key(_VAE, 2**31)), needs)


def make_series(run: Run, vae_params: Any) -> dict[str, np.ndarray]:
    """Encodes every valid rollout with V into padded z-sequences (series.npz), or loads them."""
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
    """Random windows of `length` transitions (padded with mask 0 past an episode's end)."""
    n = len(series["length"])
    eps = rng.integers(0, n, batch)
    starts = rng.integers(0, np.maximum(series["length"][eps] - length, 0) + 1)
    out = {}
    for k in ("z_mean", "z_std", "action", "reward", "done", "mask"):
        extra = 1 if k.startswith("z_") else 0
        x = series[k]
        pad = np.zeros((x.shape[0], length + extra) + x.shape[2:], x.dtype)
        x = np.concatenate([x, pad], axis=1)
        idx = starts[:, None] + np.arange(length + extra)[None]
        out[k] = x[eps[:, None], idx]
    return out


def train_mdn(run: Run) -> dict[str, Any]:
    """Trains M on V's z-sequences of the random rollouts."""
    cfg = run.cfg
    if _finished(run, "mdn", cfg.mdn_steps):
        print("mdn: trained M exists; skipped.")
        return {}
    series = make_series(run, _vae_params(run, "mdn"))
    env_steps = int(series["length"].sum()) * run.spec.action_repeat
    template = {
        "train": mdn_rnn.init_train_state(run.r.mdn, run.key(_MDN, 2**31), run.spec.action_dim)
    }
    ckpt, (start, state) = _stage_state(run, "mdn", template)
    print(f"mdn: {len(series['length'])} sequences, updates {start} -> {cfg.mdn_steps}")

    def batch(i):
        rng = np.random.default_rng([cfg.seed, _MDN, i])
        return sample_sequences(series, rng, cfg.mdn_batch, cfg.mdn_seq_len)

    def update(s, b, k):
        return mdn_rnn.train_step(s, b, k, run.r.mdn)

    with ckpt:
        state = _train_loop(
            run, "mdn", cfg.mdn_steps, state["train"], start, ckpt, update, batch, env_steps
        )
    return {"mdn/updates": int(state.step)}


def world_model_params(run: Run, needs: str) -> dict[str, Any]:
    """{"vae", "mdn", "initial_z"}: the dream's parameters (V and M must be trained)."""
    vae_params = _vae_params(run, needs)
    template = mdn_rnn.init_train_state(run.r.mdn, run.key(_MDN, 2**31), run.spec.action_dim)
    mdn_params = _load_params(run, "mdn", template, needs)
    series = make_series(run, vae_params)
    initial = {
        "mean": jnp.asarray(series["z_mean"][:, 0]),
        "std": jnp.asarray(series["z_std"][:, 0]),
    }
    return {"vae": vae_params, "mdn": mdn_params, "initial_z": initial}


def _evolution(run: Run) -> controllers.Evolution:
    template = controllers.init(run.root, run.r.vae.z_dim, run.r.mdn.hidden, run.spec.action_dim)
    return controllers.Evolution.make(template, run.cfg.population, run.cfg.sigma_init)


def real_returns(run: Run, params: Any, flats: jax.Array, es: Any, key: jax.Array, n: int):
    """Real-task returns f32 [P, n] of flat controllers [P, N] (episode seeds from `key`)."""
    if run.jax_env is not None:
        return np.asarray(
            _jax_real_returns(run.jax_env, run.dcfg, es.unflatten, params, flats, key, n)
        )
    p = flats.shape[0]
    seed0 = int(jax.random.randint(key, (), 0, 2**30))
    seeds = [seed0 + i for i in range(p * n)]
    policy = _ControllerPolicy(
        run, params, np.repeat(np.asarray(flats), n, axis=0), es.unflatten, key
    )
    eps = run.host_episodes(seeds, policy, record=False, desc="real rollouts")
    return np.asarray([e["return"] for e in eps], np.float32).reshape(p, n)


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 6))
def _jax_real_returns(env, dcfg, unflatten, params, flats, key, n):
    keys = jax.random.split(key, flats.shape[0] * n).reshape(flats.shape[0], n)

    def one(flat, k):
        return dream.jax_env_returns(env, params, dcfg, unflatten(flat), k, dcfg.max_steps)[0]

    return jax.vmap(lambda f, ks: jax.vmap(lambda k: one(f, k))(ks))(flats, keys)


def train_controller(run: Run) -> dict[str, Any]:
    """Evolves C with CMA-ES in the dream (or in the real task with in_dream false)."""
    cfg = run.cfg
    if _finished(run, "controller", cfg.generations):
        print("controller: evolved C exists; skipped.")
        return {}
    params = world_model_params(run, "controller")
    es = _evolution(run)
    template = {"es": es.init(run.key(_CTRL, 2**31)), "env_steps": 0}
    ckpt, (start, state) = _stage_state(run, "controller", template)
    es_state, env_steps = state["es"], int(state["env_steps"])
    where = "dream" if run.r.in_dream else "real task"
    print(f"controller: CMA-ES in the {where}, generations {start} -> {cfg.generations}")
    bar = logging_lib.progress(cfg.generations, "controller", unit="gen", disable=not cfg.progress)
    bar.update(start)
    summary: dict[str, Any] = {}
    with ckpt, logging_lib.Logger(run.logdir / "controller") as logger:
        for g in range(start, cfg.generations):
            k_ask, k_fit, k_tell, k_eval = jax.random.split(run.key(_CTRL, g), 4)
            cands, es_state = es.ask(k_ask, es_state)
            if run.r.in_dream:
                fit = dream.generation_returns(
                    params, run.dcfg, run.r.temperature, cands, k_fit,
                    unflatten=es.unflatten, rollouts=cfg.rollouts_per_candidate,
                )  # fmt: skip
            else:
                fit = real_returns(run, params, cands, es, k_fit, cfg.rollouts_per_candidate)
                env_steps += int(fit.size * run.spec.episode_length)  # upper bound
            fitness = jnp.mean(jnp.asarray(fit), axis=1)
            es_state, _ = es.tell(k_tell, cands, fitness, es_state)
            row = {
                "controller/fitness_mean": float(jnp.mean(fitness)),
                "controller/fitness_max": float(jnp.max(fitness)),
                "controller/fitness_min": float(jnp.min(fitness)),
                "controller/best_fitness": float(es.best(es_state)[1]),
                "env_steps": env_steps,
            }
            if cfg.eval_every and ((g + 1) % cfg.eval_every == 0 or g + 1 == cfg.generations):
                n = min(cfg.eval_episodes, cfg.rollouts_per_candidate)
                real = real_returns(run, params, es.mean(es_state)[None], es, k_eval, n)
                row["controller/real_return_of_mean"] = float(real.mean())
            logger.scalars(g + 1, row)
            summary.update(row)
            ckpt.save(g + 1, {"es": es_state, "env_steps": env_steps}, config_lib.to_dict(cfg))
            bar.update(1)
            logging_lib.set_postfix(bar, {"return": row["controller/fitness_mean"]})
    bar.close()
    return summary


def evaluate(run: Run) -> dict[str, Any]:
    """Scores the final C (CMA-ES mean) on `eval_episodes` real episodes; writes a video."""
    cfg, path = run.cfg, run.logdir / "evaluate.json"
    if path.exists():
        print(f"evaluate: {path} exists; skipped.")
        return json.loads(path.read_text())
    _require(run, "evaluate", "controller", _finished(run, "controller", cfg.generations))
    params = world_model_params(run, "evaluate")
    es = _evolution(run)
    template = {"es": es.init(run.key(_CTRL, 2**31)), "env_steps": 0}
    with checkpoint.Checkpointer(run.logdir / "controller" / "checkpoints", create=False) as ck:
        es_state = ck.restore_step(cfg.generations, template)["es"]
    flat = es.mean(es_state)
    returns = real_returns(run, params, flat[None], es, run.key(_EVAL), cfg.eval_episodes)[0]
    random = [float(ep["reward"].sum()) for _, ep in load_rollouts(run.logdir / "rollouts")]
    summary = {
        "eval_return_mean": float(returns.mean()),
        "eval_return_std": float(returns.std()),
        "eval_episodes": int(returns.size),
        "random_return_mean": float(np.mean(random)) if random else float("nan"),
    }
    with logging_lib.Logger(run.logdir) as logger:
        logger.scalars(0, summary)
        video = real_and_dream_video(run, params, es.unflatten(flat))
        summary["video"] = str(logger.video(0, "real_vs_dream", video))
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def real_and_dream_video(run: Run, params: Any, ctrl: Any) -> np.ndarray:
    """uint8 [T, 64, 128, 3]: a real episode (left) beside a dream from its first frame (right)."""
    length = run.cfg.video_length
    key = run.key(_EVAL, 1)
    if run.jax_env is not None:
        _, real = jax.jit(dream.jax_env_returns, static_argnums=(0, 2, 5))(
            run.jax_env, params, run.dcfg, ctrl, key, min(length, run.spec.agent_steps)
        )
        real = np.asarray(real)
    else:
        flats = controllers.flatten(ctrl)[0][None]
        policy = _ControllerPolicy(
            run, params, np.asarray(flats), controllers.flatten(ctrl)[1], key
        )
        real = run.host_episodes([run.seed(_EVAL, 0)], policy, record=True, desc="video")[0]["obs"]
        real = real[:length]
    mean, _ = vae.encode(params["vae"], run.r.vae, real[0])
    start = {**params, "initial_z": {"mean": mean[None], "std": jnp.zeros_like(mean)[None]}}
    env = dream.dream_env(start, dataclasses.replace(run.dcfg, max_steps=10**9), run.r.temperature)

    @jax.jit
    def dreamed(k):
        state, obs = env.reset(k)

        def body(s, _):
            s, o, _, _ = env.step(s, controllers.act(ctrl, s.z, s.carry[1]))
            return s, o

        return jnp.concatenate([obs[None], jax.lax.scan(body, state, None, len(real) - 1)[1]])

    return np.concatenate([real, np.asarray(dreamed(key))], axis=2)


_STAGE_FNS = {
    "collect": collect,
    "vae": train_vae,
    "mdn": train_mdn,
    "controller": train_controller,
    "evaluate": evaluate,
}


def train_and_evaluate(
    cfg: WorldModelsConfig, logdir: str | os.PathLike, stage: str = "all"
) -> dict[str, Any]:
    """Runs (or resumes) `stage` ("all" = every stage in order) of a World Models run.

    Raises:
      config.ConfigError: a bad config value or stage name.
      MissingInputError: `stage` needs the artifact of an earlier stage (named in the message).
      checkpoint.ConfigMismatchError: `logdir` holds a run with a different config.
      ImportError: a host task's optional package is missing (names the `worldmodels` extra).
    """
    if stage != "all" and stage not in STAGES:
        raise config_lib.ConfigError(f"--stage: expected all or one of {', '.join(STAGES)}")
    run = Run(cfg, logdir)
    summary: dict[str, Any] = {}
    for name in STAGES if stage == "all" else (stage,):
        summary.update(_STAGE_FNS[name](run))
    return summary

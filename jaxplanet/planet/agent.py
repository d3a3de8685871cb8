"""PlaNet training loop: collect -> update -> evaluate (Hafner et al. 2019, Algorithm 1).

``train_and_evaluate(config, logdir)`` runs (or resumes) a whole experiment:

1. ``seed_episodes`` episodes with uniform random actions (their mean return is logged once as
   ``random_return``);
2. then per episode: ``train_steps`` gradient steps on chunks sampled from replay (each one
   jitted sample + update), and one episode collected with CEM planning on the learned model
   plus Gaussian exploration noise;
3. every ``eval_every`` episodes an evaluation without noise, with a video of the real frames
   beside the model's open-loop predictions;
4. after every episode: the episode is written to ``logdir/episodes`` (atomic ``.npz``) and the
   run state (parameters, optimiser, counters, keys) is checkpointed.

Steps on every log row are environment steps after action repeat. All randomness derives from
``config.seed`` by ``fold_in`` of the episode index, so a resumed run continues exactly where an
uninterrupted one would. On resume the checkpoint decides what the run has done: episode files
and metric rows written after it are set aside and redone (``jaxplanet.core.resume``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet import envs, planet
from jaxplanet.core import (
    checkpoint,
    console,
    parallel,
    plot,
    replay,
    resume,
    seeding,
    timing,
    video,
)
from jaxplanet.core import compile as compile_lib
from jaxplanet.core import config as config_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.planet import acting, rssm, scale, seeds
from jaxplanet.planet.config import PRESETS, RESUMABLE_FIELDS, PlanetConfig

# Independent random streams, folded into the run key with the episode index.
_TRAIN, _COLLECT, _EVAL, _INIT = 0, 1, 2, 3
EVAL_ENV_SEED = 10_000  # the evaluation env's seed offset (in training and in --mode=eval)


class Functions(NamedTuple):
    """The jitted pieces of a PlaNet agent for one config and action size."""

    act: Any  # (params, belief, prev_action, obs, is_first, key, noise) -> (action, belief)
    update: Any  # (train_state, replay_state, key) -> (train_state, metrics); None if sharded
    sample: Any  # (replay_state, key) -> batch, on the replay's device
    update_batch: Any  # (train_state, batch, key) -> (train_state, metrics)
    add_episode: Any  # (replay_state, episode) -> replay_state (donates the buffer)
    open_loop: Any  # (params, batch, key) -> uint8 [B, T, 64, 64, 3]
    batch_sharding: Any = None  # where batches go for a sharded update (None: with params)


def make_functions(
    cfg: PlanetConfig, action_dim: int, mesh: jax.sharding.Mesh | None = None
) -> Functions:
    """Builds the jitted act / update / replay functions (compiled on first call).

    With ``cfg.num_seeds`` = K > 1 the update, sample and update_batch functions take a leading
    seed axis (train state, replay and keys [K, ...]; vmapped); ``act`` and ``open_loop`` stay
    per seed. With a device ``mesh`` the update is the data-parallel ``update_batch`` (batch
    split over the devices; ``update`` is None). Cached on the fields they depend on, so runs
    in one process share compilations. XLA options:
    ``jaxplanet.core.compile.compiler_options("act")`` for ``act``, ``("update")`` for the update
    functions and ``open_loop``.
    """
    return _make_functions(
        cfg.model,
        cfg.planner,
        cfg.batch_size,
        cfg.seq_length,
        cfg.video_context,
        action_dim,
        cfg.num_seeds,
        mesh,
    )


@functools.lru_cache(maxsize=8)
def _make_functions(
    mcfg,
    pcfg,
    batch_size: int,
    seq_length: int,
    context: int,
    action_dim: int,
    num_seeds: int = 1,
    mesh: jax.sharding.Mesh | None = None,
) -> Functions:

    # XLA options per kind of function (jaxplanet.core.compile; the benchmarks time these
    # functions).
    act_options = compile_lib.compiler_options("act") or None
    update_options = compile_lib.compiler_options("update") or None

    @functools.partial(jax.jit, compiler_options=act_options)
    def act(params, belief, prev_action, obs, is_first, key, noise):  # one definition: acting
        return acting.act(
            params, mcfg, pcfg, action_dim, belief, prev_action, obs, is_first, key, noise
        )

    def sample_batch(replay_state, key):
        return replay.sample(replay_state, key, batch_size, seq_length)

    def update_batch(train_state, batch, key):
        return planet.train_step(train_state, mcfg, batch, key)

    def update(train_state, replay_state, key):
        k_batch, k_loss = jax.random.split(key)
        return update_batch(train_state, sample_batch(replay_state, k_batch), k_loss)

    @functools.partial(jax.jit, compiler_options=update_options)  # conv-heavy, as the update
    def open_loop(params, batch, key):
        return planet.open_loop_predictions(params, mcfg, batch, context, key)

    if num_seeds > 1:  # new names: update must call the per-seed functions inside the vmap
        sample_fn, update_batch_fn, update_fn = map(
            seeds.vmap_seeds, (sample_batch, update_batch, update)
        )
    else:
        sample_fn, update_batch_fn, update_fn = sample_batch, update_batch, update
    if mesh is not None:
        fused = None
        step = parallel.shard_train_step(
            update_batch_fn, mesh, donate=True, compiler_options=update_options
        )
        target = parallel.batch_sharding(mesh)
    else:
        fused = jax.jit(update_fn, donate_argnums=0, compiler_options=update_options)
        step = jax.jit(update_batch_fn, donate_argnums=0, compiler_options=update_options)
        target = None
    add_episode = jax.jit(replay.add_episode, donate_argnums=0)
    return Functions(act, fused, jax.jit(sample_fn), step, add_episode, open_loop, target)


def replay_device(cfg: PlanetConfig) -> jax.Device | None:
    """Where the replay lives: the host CPU for host replay, None for the compute device."""
    mode = cfg.replay_device
    if mode == "auto":
        mode = "device" if jax.default_backend() == "cpu" else "host"
    return jax.local_devices(backend="cpu")[0] if mode == "host" else None


def train(
    fns: Functions,
    train_state: planet.TrainState,
    replay_state: replay.ReplayState,
    key: jax.Array,
    steps: int,
    host_replay: bool = False,
    on_update: Callable[[int], None] | None = None,
) -> tuple[planet.TrainState, dict[str, jax.Array]]:
    """``steps`` gradient updates on batches sampled from replay; metrics stacked [steps]
    ([K, steps] for K seeds).

    A host loop over one jitted update: on XLA:CPU a lax.scan over the conv train step ran ~50x
    slower per step than the step alone (jax 0.10.2). Dispatch is asynchronous, so the host does
    not wait between steps. ``key`` is [] or, for K seeds, [K] (every array then carries the
    seed axis and ``fns`` are K seeds' `make_functions`). With ``host_replay`` (or a sharded
    update) the batch is sampled where the replay lives and the next batch is sent to the
    device(s) while the current update runs (same keys, same batches as device replay).

    At most two updates are in flight: after dispatching update ``i`` the host waits for update
    ``i - 1`` and calls ``on_update(i)`` (progress display, Ctrl-C check), so an interrupt is
    honoured within about one update rather than after all queued ones.
    """
    metrics: list[dict[str, jax.Array]] = []
    keys = scale.split(key, steps)  # [steps], or [K, steps] for a key per seed
    step_key = lambda i: keys[..., i]  # noqa: E731

    def dispatched(i: int, m: dict[str, jax.Array]) -> None:
        metrics.append(m)
        if i > 0:
            jax.block_until_ready(metrics[i - 1])
        if on_update is not None:
            on_update(i)

    if not host_replay and fns.update is not None:
        for i in range(steps):
            train_state, m = fns.update(train_state, replay_state, step_key(i))
            dispatched(i, m)
    else:  # the keys the fused update splits inside: (batch key, loss key) per step
        pairs = [scale.split(step_key(i), 2) for i in range(steps)]
        pairs = [(p[..., 0], p[..., 1]) for p in pairs]
        target = fns.batch_sharding or jax.tree.leaves(train_state.params)[0].sharding

        def fetch(k: jax.Array) -> dict:  # in a worker thread: sample on the host, transfer
            return jax.block_until_ready(jax.device_put(fns.sample(replay_state, k), target))

        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(fetch, pairs[0][0])
            for i in range(steps):
                batch = pending.result()
                if i + 1 < steps:  # the next batch is prepared while this update runs
                    pending = pool.submit(fetch, pairs[i + 1][0])
                train_state, m = fns.update_batch(train_state, batch, pairs[i][1])
                dispatched(i, m)
    return train_state, jax.tree.map(lambda *xs: jnp.stack(xs, axis=-1), *metrics)


def root_key(cfg: PlanetConfig) -> jax.Array:
    """The run's root PRNG key; every other key is a ``fold_in`` of it."""
    return jax.random.key(cfg.seed, impl=cfg.prng_impl)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_train_state(mcfg: planet.ModelConfig, key: jax.Array, action_dim: int) -> Any:
    return planet.init_train_state(mcfg, key, action_dim)


def init_train_state(cfg: PlanetConfig, key: jax.Array, action_dim: int) -> planet.TrainState:
    """Fresh parameters and optimiser state (one jitted call: eager init compiles per op)."""
    return _init_train_state(cfg.model, key, action_dim)


def planner_policy(
    fns: Functions, params: Any, cfg: PlanetConfig, action_dim: int, key: jax.Array, noise: float
) -> episodes_lib.Policy:
    """Host policy: keeps the belief, plans with CEM each step, adds exploration noise."""
    state = {"belief": rssm.initial_state(cfg.model), "prev": np.zeros(action_dim, np.float32)}
    counter = [0]

    def policy(obs: np.ndarray, is_first: bool) -> np.ndarray:
        step_key = jax.random.fold_in(key, counter[0])
        counter[0] += 1
        action, state["belief"] = fns.act(
            params, state["belief"], state["prev"], obs, jnp.asarray(is_first), step_key, noise
        )
        action = np.asarray(action, np.float32)
        state["prev"] = action
        return action

    return policy


def env_options(cfg: PlanetConfig) -> dict[str, Any]:
    """The task options a run sets (action repeat, episode length; 0 = the task's default)."""
    options: dict[str, Any] = {}
    if cfg.action_repeat:
        options["action_repeat"] = cfg.action_repeat
    if cfg.episode_length:
        options["episode_length"] = cfg.episode_length
    return options


def make_env(cfg: PlanetConfig, seed: int) -> envs.HostEnv:
    """The task of ``cfg.env``; action repeat / episode length default to the task's."""
    return envs.make(cfg.env, seed=seed, **env_options(cfg))


def _mean_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(np.mean(v)) for k, v in metrics.items() if k != "finite"}


def _check_train_metrics(
    metrics: dict[str, np.ndarray], first_step: int, seed_index: int | None = None
) -> None:
    """Stop on the first non-finite gradient step, naming it, the terms (and the seed)."""
    finite = np.asarray(metrics["finite"]).reshape(-1)
    for i in np.flatnonzero(~finite)[:1]:
        try:
            planet.check_finite({k: np.asarray(v)[i] for k, v in metrics.items()}, first_step + i)
        except planet.NonFiniteLossError as err:
            if seed_index is None:
                raise
            raise planet.NonFiniteLossError(f"seed_{seed_index}: {err}") from None


class Run:
    """Mutable host-side handles of one run (lanes, checkpointer); state stays pure.

    One `scale.Lane` per seed; with one seed ``run.env``, ``run.eval_env``,
    ``run.logger``, ``run.episode_dir`` are that seed's and ``logdir`` is its folder.
    """

    def __init__(self, cfg: PlanetConfig, logdir: str | Path):
        self.cfg = cfg
        self.logdir = Path(logdir)
        self.batched_env: Any = None  # K x N host envs, opened on the first batched round
        self.ckpt: Any = None
        # Everything that can refuse the run does so before anything is written.
        self.mesh = scale.make_mesh(cfg)
        self.lanes = [
            scale.Lane(
                scale.lane_config(cfg, k),
                scale.lane_dir(self.logdir, cfg, k),
                make_env,
                EVAL_ENV_SEED,
            )
            for k in range(cfg.num_seeds)
        ]
        self.spec = self.lanes[0].env.spec
        if cfg.collect == "device" and not isinstance(self.lanes[0].env, envs.JaxHostAdapter):
            self.close()
            raise config_lib.ConfigError(
                f"--collect=device: {cfg.env} is not a pure-JAX task; valid: "
                f"{', '.join(sorted(envs.JAX_ENVS))} (or use --collect=host)"
            )
        checkpoint.claim_run_dir(self.logdir, cfg, RESUMABLE_FIELDS)
        self.ckpt = checkpoint.Checkpointer(self.logdir / "checkpoints", cfg.keep_checkpoints)
        self.clock = timing.PhaseClock()  # this session's seconds per phase

    @property
    def batched(self) -> bool:
        """Whether rounds go through the batched path (more than one episode, or on device)."""
        cfg = self.cfg
        return cfg.num_envs * cfg.num_seeds > 1 or cfg.collect == "device"

    def host_envs(self) -> Any:
        """The K x N envs of a batched host round (worker processes for simulated tasks)."""
        if self.batched_env is None:
            from jaxplanet.envs import vector

            self.batched_env = vector.make_batched(
                self.cfg.env,
                self.cfg.num_envs * self.cfg.num_seeds,
                seed=self.cfg.seed,
                **env_options(self.cfg),
            )
        return self.batched_env

    def __getattr__(self, name: str) -> Any:  # the one seed's handles
        if name in ("env", "eval_env", "logger", "episode_dir") and self.cfg.num_seeds == 1:
            return getattr(self.lanes[0], name)
        raise AttributeError(name)

    def close(self) -> None:
        for obj in (*self.lanes, self.batched_env, self.ckpt):
            if obj is not None:
                obj.close()


def train_and_evaluate(
    cfg: PlanetConfig, logdir: str | Path, preset: str = "", console_output: bool = True
) -> dict[str, Any]:
    """Runs or resumes a PlaNet experiment in ``logdir``; returns a summary of the run.

    Args:
      cfg: the experiment's config.
      logdir: run directory (resumed when it holds a run of the same config).
      preset: the preset's name, for the start banner only.
      console_output: print the start banner (the progress bar follows ``cfg.progress``).

    Returns:
      ``episodes``, ``env_steps``, ``grad_steps``, ``wall_seconds`` (this session), ``time_shares``
      (`timing.PhaseClock.shares`: update, plan, env, eval, video, replay, checkpoint), the last
      ``eval_return`` (with ``eval_episode``, ``eval_episodes``), ``random_return``, the last
      ``train_return`` (one episode with exploration noise) and ``logdir``. With K seeds these
      are seed 0's, ``seeds`` lists every seed's and ``eval_return_mean`` / ``_std`` (and
      ``train_return_mean`` / ``_std``) summarise them.

    Raises:
      checkpoint.ConfigMismatchError: ``logdir`` holds a run with a different config.
      planet.NonFiniteLossError: a loss or gradient became NaN/inf (names step and terms).
      console.StopRequested: Ctrl-C; the run directory resumes from its last checkpoint.
    """
    cfg.validate()
    if cfg.debug_nans:
        jax.config.update("jax_debug_nans", True)
    began = time.perf_counter()
    run = Run(cfg, logdir)
    try:
        with console.StopOnInterrupt() as stop:
            summary = _loop(cfg, run, stop, preset, console_output)
    finally:
        run.close()
    plot.try_write_learning_curves(run.logdir)
    summary["wall_seconds"] = time.perf_counter() - began
    summary["time_shares"] = run.clock.shares(summary["wall_seconds"])
    per_seed = [_logged_returns(lane.logdir) for lane in run.lanes]
    summary.update(per_seed[0])
    if cfg.num_seeds > 1:  # seed 0's figures above; the spread over seeds here
        summary["seeds"] = per_seed
        for name in ("eval_return", "train_return", "random_return"):
            values = [r[name] for r in per_seed if name in r]
            if len(values) == len(per_seed):
                summary[f"{name}_mean"] = float(np.mean(values))
                summary[f"{name}_std"] = float(np.std(values))
    summary["logdir"] = str(run.logdir)
    return summary


def _logged_returns(logdir: Path) -> dict[str, Any]:
    """The last eval return, the random return and the last train return from metrics.jsonl."""
    out: dict[str, Any] = {}
    for row in logging_lib.read_metrics(logdir / logging_lib.METRICS_FILE):
        if "eval_return" in row:
            out.update(eval_return=row["eval_return"], eval_episodes=row.get("eval_episodes", 1))
            out["eval_episode"] = out.get("episode", 0)
        for k in ("random_return", "train_return", "episode"):
            if k in row:
                out[k] = row[k]
    out.pop("episode", None)
    return out


def banner(cfg: PlanetConfig, run: Run, preset: str, capacity: int, nbytes: int) -> str:
    """The start-of-run block: what runs, on what, and where its outputs go."""
    spec, host = run.spec, replay_device(cfg) is not None
    gpu_sized = cfg.model.deter >= 200 and cfg.episodes >= 500
    cost = (
        "on a CPU one training episode takes minutes (about 15 min on 2 cores at the paper "
        "size) and the run takes days"
    )
    warnings = console.gpu_sized_warning(cost) if gpu_sized else []
    rows = [
        ("preset", console.preset_line(cfg, preset, PRESETS)),
        (
            "env",
            f"{spec.name}: action_dim {spec.action_dim}, action repeat {spec.action_repeat}, "
            f"{spec.episode_length} env steps per episode",
        ),
        ("devices", console.devices_line()),
        *(
            [("rendering", f"MuJoCo, MUJOCO_GL={run.lanes[0].env.backend}")]
            if hasattr(run.lanes[0].env, "backend")
            else []
        ),
        (
            "replay",
            f"{capacity} steps, {nbytes / 2**20:.1f} MiB in "
            f"{'host memory (batches prefetched to the device)' if host else 'device memory'}",
        ),
        (
            "episodes",
            f"{cfg.episodes} ({cfg.seed_episodes} random, then {cfg.train_steps} "
            f"updates + 1 planned episode each; eval every {cfg.eval_every})",
        ),
        (
            "output",
            f"{run.logdir}/  metrics.jsonl, TensorBoard events, videos/, checkpoints/, episodes/"
            if cfg.num_seeds == 1
            else f"{run.logdir}/  checkpoints/, learning_curves.png; seed_0/ .. "
            f"seed_{cfg.num_seeds - 1}/: metrics.jsonl, TensorBoard events, videos/, episodes/",
        ),
    ]
    if cfg.num_envs > 1 or cfg.num_seeds > 1 or run.mesh is not None or cfg.collect == "device":
        where = "on the device (lax.scan)" if cfg.collect == "device" else "from the host"
        rows.insert(
            3,
            (
                "scale",
                f"{cfg.num_seeds} seed(s) x {cfg.num_envs} env(s) per round, collected {where}; "
                f"{run.mesh.devices.size if run.mesh is not None else 1} device(s) for training",
            ),
        )
    return console.banner(f"PlaNet on {spec.name}", rows, warnings) + "\n" + describe(cfg)


def summary_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """The end-of-run table's rows (see `train_and_evaluate` for the keys)."""
    logdir = Path(summary["logdir"])
    rows = [
        (
            "episodes",
            f"{summary['episodes']} ({summary['env_steps']} env steps, "
            f"{summary['grad_steps']} gradient updates)",
        ),
        ("wall time", f"{console.format_duration(summary['wall_seconds'])} (this session)"),
    ]
    if summary.get("time_shares"):
        rows.append(("time went to", timing.format_shares(summary["time_shares"])))
    if "eval_return_mean" in summary:
        rows.append(
            (
                "eval return",
                f"{summary['eval_return_mean']:.2f} ± {summary['eval_return_std']:.2f}  mean ± std "
                f"over {len(summary['seeds'])} seeds (per seed: "
                + ", ".join(f"{r['eval_return']:.2f}" for r in summary["seeds"])
                + ")",
            )
        )
    elif "eval_return" in summary:
        rows.append(
            (
                "eval return",
                f"{summary['eval_return']:.2f}  mean of "
                f"{summary['eval_episodes']} noise-free episode(s) after episode "
                f"{summary['eval_episode']}",
            )
        )
    if "random_return_mean" in summary:
        rows.append(
            (
                "random return",
                f"{summary['random_return_mean']:.2f} ± {summary['random_return_std']:.2f}  "
                "mean ± std over seeds of each seed's random seed episodes",
            )
        )
    elif "random_return" in summary:
        rows.append(
            ("random return", f"{summary['random_return']:.2f}  mean of the random seed episodes")
        )
    if "train_return_mean" in summary:
        rows.append(
            (
                "last train return",
                f"{summary['train_return_mean']:.2f} ± {summary['train_return_std']:.2f}  "
                "mean ± std over seeds, one episode with exploration noise each",
            )
        )
    elif "train_return" in summary:
        rows.append(
            (
                "last train return",
                f"{summary['train_return']:.2f}  one episode with exploration noise",
            )
        )
    seed_dirs = "seed_*/" if "seeds" in summary else ""
    rows += [
        ("metrics", str(logdir / seed_dirs / logging_lib.METRICS_FILE)),
        ("TensorBoard", f"tensorboard --logdir {logdir}"),
    ]
    if seed_dirs:
        rows.append(("videos", f"{logdir / seed_dirs / 'videos'}/"))
    elif (logdir / "videos").is_dir():
        rows.append(
            (
                "videos",
                f"{logdir / 'videos'}/  (real frames beside the model's open-loop predictions)",
            )
        )
    plots = sorted(logdir.glob("*.png"))
    if plots:
        rows.append(("plot", str(plots[0])))
    rows.append(("evaluate", f"python -m experiments.planet --logdir={logdir} --mode=eval"))
    return rows


def _run_state(
    train_state: Any, root: jax.Array, progress: resume.Progress, lane_steps: Any = None
) -> dict[str, Any]:
    state = {"train": train_state, "key": root, "progress": progress.as_dict()}
    if lane_steps is not None:  # K seeds: each seed's env steps [K]
        state["lane_env_steps"] = np.asarray(lane_steps, np.int64)
    return state


def _watched(
    policy: Callable[[np.ndarray, Any], np.ndarray],
    stop: console.StopOnInterrupt,
    bar: console.RunProgress,
    name: str,
    steps: int,
    clock: timing.PhaseClock | None = None,
    phase: str = "plan",
) -> Callable[[np.ndarray, Any], np.ndarray]:
    """``policy`` (one env's or a batch policy) that shows ``name i/steps`` on the bar,
    honours Ctrl-C at every step and charges its time to ``clock``'s ``phase``."""
    count = [0]

    def watched(obs: np.ndarray, is_first: Any) -> np.ndarray:
        stop.check()
        count[0] += 1
        bar.inner(name, count[0], steps)
        with clock(phase) if clock is not None else contextlib.nullcontext():
            return policy(obs, is_first)

    return watched


def _init_state(cfg: PlanetConfig, roots: jax.Array, action_dim: int) -> Any:
    """Fresh train state(s): one, or K stacked [K, ...] for K seeds."""
    keys = scale.fold(roots, _INIT)
    if cfg.num_seeds == 1:
        return init_train_state(cfg, keys, action_dim)
    return _init_train_states(cfg.model, keys, action_dim)


@functools.partial(jax.jit, static_argnums=(0, 2))
def _init_train_states(mcfg: planet.ModelConfig, keys: jax.Array, action_dim: int) -> Any:
    return seeds.init_train_states(mcfg, keys, action_dim)


def _root_keys(cfg: PlanetConfig) -> jax.Array:
    """The root key [] of one seed, or the K seeds' root keys [K] (each a single run's)."""
    if cfg.num_seeds == 1:
        return root_key(cfg)
    return seeds.root_keys(cfg.seed, cfg.num_seeds, cfg.prng_impl)


def _loop(
    cfg: PlanetConfig, run: Run, stop: console.StopOnInterrupt, preset: str, verbose: bool
) -> dict[str, Any]:
    spec, roots, lanes = run.spec, _root_keys(cfg), run.lanes
    action_dim, many = spec.action_dim, cfg.num_seeds > 1
    n_envs = cfg.num_envs
    fns = make_functions(cfg, action_dim, run.mesh)
    lane_fns = make_functions(scale.lane_config(cfg, 0), action_dim) if many else fns

    # The checkpoint decides what the run has done; files beyond it are set aside (resume.py).
    train_state = _init_state(cfg, roots, action_dim)
    zeros = [0] * cfg.num_seeds if many else None
    restored = run.ckpt.restore(_run_state(train_state, roots, resume.Progress(), zeros))
    progress = None
    if restored is not None:
        train_state = restored[1]["train"]
        progress = resume.Progress.from_dict(restored[1]["progress"])
    lane_steps = restored[1].get("lane_env_steps") if restored is not None else None
    for k, lane in enumerate(lanes):
        resumed = resume.reconcile(lane.logdir, progress, restored and restored[0])
        lane.logger = logging_lib.Logger(lane.logdir)
        lane.env_steps = (
            int(lane_steps[k]) if lane_steps is not None else resumed.progress.env_steps
        )
    progress = resumed.progress
    if run.mesh is not None:
        train_state = parallel.replicate(train_state, run.mesh)

    # Replay: the episodes the checkpoint covers are loaded once into a fresh buffer per seed.
    capacity = replay.capacity_from_bytes(int(cfg.replay_bytes), spec.obs_shape, action_dim)
    capacity = min(capacity, cfg.episodes * (spec.agent_steps + 1))

    def reloaded(lane: scale.Lane):  # streams the episodes so they are never held twice
        for episode in replay.iter_episodes(lane.episode_dir, limit=progress.episodes):
            lane.returns.append(float(episode["reward"].sum()))
            yield episode

    host = replay_device(cfg)
    with jax.default_device(host) if host is not None else contextlib.nullcontext():
        buffers = [
            replay.episodes_to_state(reloaded(lane), capacity, spec.obs_shape, action_dim)
            for lane in lanes
        ]
    replay_state = jax.tree.map(lambda *x: jnp.stack(x), *buffers) if many else buffers[0]
    del buffers
    if host is not None:
        replay_state = jax.device_put(replay_state, host)
    evaluations = progress.evaluations
    if verbose:
        print(banner(cfg, run, preset, capacity, replay.nbytes(replay_state)), flush=True)
        if restored is not None or resumed.set_aside is not None:
            print(f"Resuming {run.logdir}: {resumed.message or 'nothing to redo'}.", flush=True)

    start = progress.episodes
    bar = console.RunProgress(cfg.episodes, start, "planet", enabled=cfg.progress)
    summary: dict[str, Any] = {}
    first_train = max(start, cfg.seed_episodes)  # its first update compiles
    clock = run.clock
    act_fn = scale.make_act(cfg, action_dim, run.mesh) if run.batched else None
    try:
        for index in range(start, cfg.episodes, n_envs):
            stop.check()
            began = time.perf_counter()
            train_rows: list[dict[str, Any]] = [{} for _ in lanes]
            random = index < cfg.seed_episodes
            name = "random" if random else "collect"
            if not random:
                grad_step = int(np.asarray(train_state.step).reshape(-1)[0])
                key = scale.fold(roots, _TRAIN, index)
                steps = cfg.train_steps * n_envs
                compiling = " (compiling the update)" if index == first_train else ""
                bar.phase(f"train 0/{steps}{compiling}")

                def on_update(i: int, steps: int = steps) -> None:
                    stop.check()
                    bar.inner("train", i + 1, steps)

                with clock("update"):
                    train_state, metrics = train(
                        fns, train_state, replay_state, key, steps, host is not None, on_update
                    )
                    metrics = jax.device_get(metrics)
                for k in range(len(lanes)):
                    lane_metrics = seeds.index(metrics, k) if many else metrics
                    _check_train_metrics(lane_metrics, grad_step, k if many else None)
                    train_rows[k] = {
                        f"train/{m}": v for m, v in _mean_metrics(lane_metrics).items()
                    }
                if index == first_train:
                    bar.phase(f"collect 0/{spec.agent_steps} (compiling the planner)")
            watch = functools.partial(
                _watched,
                stop=stop,
                bar=bar,
                name=name,
                steps=spec.agent_steps,
                clock=clock,
                phase="env" if random else "plan",  # random actions are not planning
            )
            with clock("env"):
                if run.batched:
                    collected = scale.collect_round(
                        cfg,
                        lanes,
                        run.host_envs() if cfg.collect == "host" else None,
                        act_fn,
                        train_state.params,
                        roots,
                        index,
                        random,
                        _COLLECT,
                        watch,
                    )
                else:
                    if random:
                        policy = episodes_lib.random_policy(
                            action_dim, seed=seeding.episode_seed(cfg.seed, index)
                        )
                    else:
                        key = jax.random.fold_in(jax.random.fold_in(roots, _COLLECT), index)
                        policy = planner_policy(
                            fns, train_state.params, cfg, action_dim, key, cfg.exploration_noise
                        )
                    episode = episodes_lib.run_episode(
                        run.env, watch(policy), seed=seeding.episode_seed(cfg.seed, index)
                    )
                    collected = [[episode]]
            seconds = time.perf_counter() - began
            round_steps = sum(e["length"] for eps in collected for e in eps) * spec.action_repeat
            grad_steps = int(np.asarray(train_state.step).reshape(-1)[0])
            for j in range(n_envs):  # in index order: file, replay, log row
                episode_index = index + j
                for k, lane in enumerate(lanes):
                    episode = collected[k][j]
                    with clock("replay"):
                        arrays = episodes_lib.episode_arrays(episode)
                        replay.save_episode(lane.episode_dir, arrays, episode_index)
                        if many:
                            replay_state = scale.add_lane(replay_state, arrays, k)
                        else:
                            replay_state = fns.add_episode(replay_state, arrays)
                    lane.returns.append(episode["return"])
                    lane.env_steps += episode["length"] * spec.action_repeat
                    row: dict[str, Any] = {"episode": episode_index + 1}
                    row.update(train_rows[k] if j == 0 else {})
                    row.update(
                        {
                            "train_return": episode["return"],
                            "grad_steps": grad_steps,
                            "env_steps_per_second": round_steps / seconds,
                            **clock.row(),
                        }
                    )
                    if episode_index + 1 == cfg.seed_episodes:
                        row["random_return"] = float(np.mean(lane.returns[: cfg.seed_episodes]))
                    lane.logger.scalars(lane.env_steps, row)
                    if k == 0:
                        summary.update(row)
                        if "random_return" in row:
                            bar.set(random=row["random_return"])
                bar.set(
                    env_steps=str(lanes[0].env_steps),
                    updates=str(grad_steps),
                    train_ret=collected[0][j]["return"],
                )
            last = index + n_envs  # episodes done after this round
            due = cfg.eval_every and any(
                i >= cfg.seed_episodes and (i + 1) % cfg.eval_every == 0 for i in range(index, last)
            )
            if due:
                bar.phase("eval")
                for k, lane in enumerate(lanes):
                    params = seeds.index(train_state.params, k) if many else train_state.params
                    evaluated = evaluate(
                        lane.cfg,
                        lane,
                        lane_fns,
                        params,
                        lane.env_steps,
                        last - 1,
                        lambda p: _watched(p, stop, bar, "eval", spec.agent_steps),
                        clock,
                    )
                    if k == 0:
                        summary.update(evaluated)
                        bar.set(eval=evaluated["eval_return"])
                if many:
                    with clock("video"):
                        plot.try_write_learning_curves(run.logdir)
                evaluations += 1
            if any((i + 1) % cfg.checkpoint_every == 0 for i in range(index, last)) or (
                last == cfg.episodes
            ):
                bar.phase("checkpoint")
                done = resume.Progress(
                    last, lanes[0].env_steps, grad_steps, evaluations, lanes[0].logger.rows
                )
                steps_now = [lane.env_steps for lane in lanes] if many else None
                with clock("checkpoint"):
                    run.ckpt.save(
                        last,
                        _run_state(train_state, roots, done, steps_now),
                        config_lib.to_dict(cfg),
                    )
            per_episode = (time.perf_counter() - began) / n_envs
            bar.episode_done(per_episode, representative=index > first_train, count=n_envs)
    except BaseException:
        bar.close(interrupted=True)
        raise
    bar.phase("done")
    bar.close()
    grad_steps = int(np.asarray(train_state.step).reshape(-1)[0])
    return {"episodes": cfg.episodes, "env_steps": lanes[0].env_steps, "grad_steps": grad_steps}


def evaluate_episodes(
    cfg: PlanetConfig,
    fns: Functions,
    params: Any,
    env: envs.HostEnv,
    index: int,
    wrap: Callable[[episodes_lib.Policy], episodes_lib.Policy] | None = None,
) -> list[dict[str, Any]]:
    """The evaluation after episode ``index`` (0-based): ``cfg.eval_episodes`` noise-free episodes.

    The one evaluation of the agent: training (every ``eval_every`` episodes) and
    ``--mode=eval`` both call it, with the same env seeds and planning keys for the same
    ``index``, so the same parameters give the same returns.
    """
    root = jax.random.fold_in(root_key(cfg), _EVAL)
    out = []
    for i in range(cfg.eval_episodes):
        key = jax.random.fold_in(root, index * 1000 + i)
        policy = planner_policy(fns, params, cfg, env.spec.action_dim, key, 0.0)
        policy = wrap(policy) if wrap is not None else policy
        out.append(episodes_lib.run_episode(env, policy, seed=seeding.eval_seed(index + 1, i)))
    return out


def evaluate(
    cfg: PlanetConfig,
    run: Run,
    fns: Functions,
    params: Any,
    env_steps: int,
    index: int,
    wrap: Callable[[episodes_lib.Policy], episodes_lib.Policy] | None = None,
    clock: timing.PhaseClock | None = None,
) -> dict[str, Any]:
    """Noise-free evaluation in training; logs ``eval_return`` and writes an open-loop video.

    ``wrap`` decorates each episode's policy (progress display, Ctrl-C checks); ``clock``
    charges the episodes to ``eval`` and the video and plot to ``video``.
    """
    clock = clock or timing.PhaseClock()
    with clock("eval"):
        episodes = evaluate_episodes(cfg, fns, params, run.eval_env, index, wrap)
    returns = [e["return"] for e in episodes]
    row = {"eval_return": float(np.mean(returns)), "eval_episodes": len(returns)}
    run.logger.scalars(env_steps, row)
    with clock("video"):
        plot.try_write_learning_curves(run.logdir)
        if cfg.video and episodes:
            frames = open_loop_video(cfg, fns, params, episodes[0])
            run.logger.video(env_steps, "eval_open_loop", frames)
    return row


def open_loop_video(
    cfg: PlanetConfig, fns: Functions, params: Any, episode: dict[str, Any]
) -> np.ndarray:
    """uint8 [T, 18 + 128, 256, 3]: real frames (left) beside the model's frames (right).

    The model sees the first ``video_context`` frames, then predicts open loop from the
    recorded actions. Frames are upscaled 2x under captions ("real", "model: observed" /
    "model: open loop"); the model panel has a green border while it observes and a red one
    once it predicts open loop.
    """
    length = min(cfg.video_length, len(episode["obs"]))
    length = max(length, cfg.video_context + 1)
    batch = {k: jnp.asarray(episode[k][None, :length]) for k in ("obs", "action", "is_first")}
    predicted = np.asarray(fns.open_loop(params, batch, None))[0]
    steps, context = len(predicted), min(cfg.video_context, len(predicted))
    model_titles = ["model: observed"] * context + ["model: open loop"] * (steps - context)
    return video.side_by_side(
        [episode["obs"][:steps], predicted],
        [["real"] * steps, model_titles],
        [None, [video.GREEN] * context + [video.RED] * (steps - context)],
    )


def evaluate_run(logdir: str | Path, overrides: dict[str, str] | None = None) -> dict[str, Any]:
    """Loads the newest checkpoint of ``logdir`` and evaluates it with `evaluate_episodes`.

    The episodes are those of the in-training evaluation after the checkpoint's last episode
    (same env seeds and planning keys), so for a checkpoint at an evaluation episode the returns
    equal the logged ``eval_return``. Writes ``logdir/eval/metrics.jsonl`` and one open-loop
    video per episode under ``logdir/eval/videos`` (``logdir/seed_k/eval`` for each of K seeds;
    the summary then has seed 0's figures and ``seeds_eval_return_mean`` / ``_std`` over the
    seeds). ``overrides`` may change reporting fields only (e.g. eval_episodes).
    """
    logdir = Path(logdir)
    _, cfg = checkpoint.load_eval_config(
        logdir, PlanetConfig, "PlaNet", RESUMABLE_FIELDS, overrides
    )
    env = make_env(cfg, seed=cfg.seed + EVAL_ENV_SEED)
    action_dim = env.spec.action_dim
    env.close()
    many = cfg.num_seeds > 1
    roots = _root_keys(cfg)
    zeros = [0] * cfg.num_seeds if many else None
    template = _run_state(_init_state(cfg, roots, action_dim), roots, resume.Progress(), zeros)
    with checkpoint.Checkpointer(logdir / "checkpoints", create=False) as ckpt:
        restored = ckpt.restore(template)
    if restored is None:
        raise config_lib.ConfigError(f"--logdir: no checkpoint in {logdir / 'checkpoints'}")
    state = restored[1]
    progress = resume.Progress.from_dict(state["progress"])
    results = []
    for k in range(cfg.num_seeds):
        lane_cfg = scale.lane_config(cfg, k)
        params = seeds.index(state["train"].params, k) if many else state["train"].params
        env_steps = int(state["lane_env_steps"][k]) if many else progress.env_steps
        results.append(
            _evaluate_checkpoint(
                lane_cfg,
                scale.lane_dir(logdir, cfg, k),
                params,
                env_steps,
                progress.episodes,
                f"seed_{k}: " if many else "",
            )
        )
    out: dict[str, Any] = {"checkpoint_episodes": progress.episodes, **results[0]}
    if many:
        means = [r["eval_return_mean"] for r in results]
        out.update(
            seeds_eval_return_mean=float(np.mean(means)),
            seeds_eval_return_std=float(np.std(means)),
        )
    return out


def _evaluate_checkpoint(
    cfg: PlanetConfig, logdir: Path, params: Any, env_steps: int, episodes: int, label: str = ""
) -> dict[str, Any]:
    """`evaluate_episodes` after episode ``episodes`` of one seed; writes ``logdir/eval``."""
    env = make_env(cfg, seed=cfg.seed + EVAL_ENV_SEED)
    fns = make_functions(cfg, env.spec.action_dim)
    episodes_run = evaluate_episodes(cfg, fns, params, env, episodes - 1)
    env.close()
    with logging_lib.Logger(logdir / "eval") as logger:
        for i, episode in enumerate(episodes_run):
            logger.scalars(env_steps, {"eval_return": episode["return"], "eval_episode": i})
            if cfg.video:
                frames = open_loop_video(cfg, fns, params, episode)
                path = logger.video(env_steps + i, "eval_open_loop", frames)
                print(f"{label}episode {i}: return {episode['return']:.2f}, video {path}")
    returns = [e["return"] for e in episodes_run]
    return {
        "env_steps": env_steps,
        "eval_return_mean": float(np.mean(returns)),
        "eval_return_std": float(np.std(returns)),
    }


def describe(cfg: PlanetConfig) -> str:
    """The configuration a run uses, as a few readable lines (printed at start-up)."""
    m, p = cfg.model, cfg.planner
    losses = (
        f"image + {m.reward_scale:g} x reward NLL + {m.kl_scale:g} x KL, free nats {m.free_nats:g}"
    )
    if m.overshooting_distance > 1:
        losses += f", overshooting D={m.overshooting_distance} beta={m.overshooting_kl_scale:g}"
    else:
        losses += ", no overshooting"
    return "\n".join(
        [
            f"  model: {m.variant}, deter {m.deter}, stoch {m.stoch}, hidden {m.hidden}, "
            f"conv depth {m.depth}, reward MLP {m.reward_layers} x {m.reward_hidden}",
            f"  loss: {losses}",
            f"  optimiser: Adam lr {m.lr:g} (ramp {m.lr_warmup} updates), eps {m.adam_eps:g}, "
            f"clip {m.grad_clip:g}; batch {cfg.batch_size} x {cfg.seq_length}, "
            f"{cfg.train_steps} updates per episode",
            f"  planner: CEM horizon {p.horizon}, {p.iterations} iterations, {p.candidates} "
            f"candidates, top {p.top_k}, discount {p.discount:g}, var_eps {p.var_eps:g}, "
            f"{'sampled' if p.sample else 'mean'} latent rollouts",
            f"  data: {cfg.seed_episodes} seed episodes, {cfg.episodes} episodes, exploration "
            f"noise {cfg.exploration_noise:g}, eval {cfg.eval_episodes} episode(s) every "
            f"{cfg.eval_every}",
        ]
    )


__all__ = [
    "Functions",
    "evaluate",
    "evaluate_episodes",
    "evaluate_run",
    "make_functions",
    "open_loop_video",
    "replay_device",
    "train",
    "train_and_evaluate",
]

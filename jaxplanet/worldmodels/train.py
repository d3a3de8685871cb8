"""World Models' V and M stages: the conv VAE on rollout frames, the MDN-RNN on V's z-sequences.

Each is a loop of jitted updates with a metrics row (``<stage>/metrics.jsonl``, TensorBoard)
about every 1 % of its updates and a checkpoint every `checkpoint_every` updates and at the end;
a killed stage resumes from its newest checkpoint (`run.stage_state`), with the
same batches and keys an uninterrupted run would have used. `world_model_params` loads both for
the later stages.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxplanet.core import checkpoint, resume
from jaxplanet.core import config as config_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.worldmodels import mdn_rnn, vae
from jaxplanet.worldmodels.data import (
    StreamBatches,
    collected,
    load_rollouts,
    make_series,
    sample_sequences,
    vae_frames,
)
from jaxplanet.worldmodels.run import MDN, VAE, Run, finished, require, stage_state

__all__ = [
    "load_params",
    "mdn_template",
    "train_mdn",
    "train_vae",
    "vae_params",
    "world_model_params",
]


def _train_loop(
    run: Run,
    name: str,
    steps: int,
    state: Any,
    start: int,
    ckpt: checkpoint.Checkpointer,
    update: Callable[[Any, Any, jax.Array], tuple[Any, dict]],
    batch_fn: Callable[[int], Any],
    env_steps: int,
) -> Any:
    """Shared V / M loop: jitted update per step, metrics every ~1 % (the mean over the updates
    since the last row: a resumed or later-round loop's first row may cover fewer), checkpoints."""
    every = max(1, steps // 100)
    stream = VAE if name == "vae" else MDN
    bar = logging_lib.progress(steps, name, unit="update", disable=not run.cfg.progress)
    bar.update(start)
    sums: dict[str, float] = {}
    count = 0
    with logging_lib.Logger(run.logdir / name) as logger:
        for i in range(start, steps):
            state, metrics = update(state, batch_fn(i), run.key(stream, i))
            for k, v in jax.device_get(metrics).items():
                sums[k] = sums.get(k, 0.0) + float(v)
            count += 1
            if (i + 1) % every == 0 or i + 1 == steps:
                row = {f"{name}/{k}": v / count for k, v in sums.items()}
                logger.scalars(i + 1, {**row, "env_steps": env_steps})
                logging_lib.set_postfix(bar, {"loss": row[f"{name}/loss"]})
                if not np.isfinite(row[f"{name}/loss"]):
                    raise FloatingPointError(f"{name}: non-finite loss at update {i + 1}: {row}")
                sums, count = {}, 0
            if (i + 1) % run.cfg.checkpoint_every == 0 or i + 1 == steps:
                progress = resume.Progress(
                    env_steps=env_steps, grad_steps=i + 1, metric_rows=logger.rows
                )
                state_tree = {"train": state, "progress": progress.as_dict()}
                ckpt.save(i + 1, state_tree, config_lib.to_dict(run.cfg))
            bar.update(1)
    bar.close()
    return state


def train_vae(run: Run) -> dict[str, Any]:
    """The vae stage: trains V on frames (uint8 [64, 64, 3]) of the random rollouts."""
    cfg = run.cfg
    if finished(run, "vae", cfg.vae_steps):
        print("vae: trained V exists; skipped.")
        return {}
    require(run, "vae", "collect", collected(run))
    rng = np.random.default_rng(cfg.seed)
    eps = load_rollouts(run.logdir / "rollouts", cfg.vae_max_frames, rng, count=cfg.rollouts)
    frames = np.concatenate([vae_frames(run, ep) for _, ep in eps])[: cfg.vae_max_frames]
    template = {"train": vae.init_train_state(run.r.vae, run.key(VAE, 2**31))}
    ckpt, start, state, _ = stage_state(run, "vae", template)
    print(f"vae: {len(frames)} frames, updates {start} -> {cfg.vae_steps}")

    def batch(i):
        idx = np.random.default_rng([cfg.seed, VAE, i]).integers(0, len(frames), cfg.vae_batch)
        return frames[idx]

    def update(s, b, k):
        return vae.train_step(s, b, k, run.r.vae)

    with ckpt:
        state = _train_loop(
            run, "vae", cfg.vae_steps, state["train"], start, ckpt, update, batch, 0
        )
    return {"vae/updates": int(state.step)}


def load_params(run: Run, name: str, template: Any, needs: str, round: int = 0) -> Any:
    """Parameters of trained V or M (``name`` "vae" / "mdn"; M as at the end of ``round``),
    for stage ``needs``.

    Raises:
      MissingInputError: the stage ``name`` has not finished (names it).
    """
    steps = run.cfg.vae_steps if name == "vae" else run.mdn_target(round)
    require(run, needs, name, finished(run, name, steps))
    tree = {"train": template, "progress": resume.Progress().as_dict()}
    with checkpoint.Checkpointer(run.logdir / name / "checkpoints", create=False) as ckpt:
        return ckpt.restore_step(steps, tree)["train"].params


def vae_params(run: Run, needs: str) -> Any:
    """Trained V's parameters (for stage ``needs``)."""
    return load_params(run, "vae", vae.init_train_state(run.r.vae, run.key(VAE, 2**31)), needs)


def mdn_template(run: Run) -> Any:
    """M's fresh training state: `mdn_rnn.MDNTrainState`, or with ``mdn_batches="streams"`` an
    `mdn_rnn.MDNStreamState` (plus the zero LSTM state of the `mdn_batch` streams)."""
    state = mdn_rnn.init_train_state(run.r.mdn, run.key(MDN, 2**31), run.spec.action_dim)
    if run.cfg.mdn_batches == "streams":
        return mdn_rnn.MDNStreamState(state, mdn_rnn.initial_state(run.r.mdn, (run.cfg.mdn_batch,)))
    return state


def train_mdn(run: Run, round: int = 0) -> dict[str, Any]:
    """The mdn stage: trains M on V's z-sequences of the random rollouts (`mdn_batches`); in a
    later ``round`` of iterative training, on from the last round's M with every rollout so far
    (the streams' epochs restart, their LSTM state zeroed, at the round's first update)."""
    cfg, steps = run.cfg, run.mdn_target(round)
    if finished(run, "mdn", steps):
        print("mdn: trained M exists; skipped.")
        return {}
    series = make_series(run, vae_params(run, "mdn"), round)
    env_steps = int(series["length"].sum()) * run.spec.action_repeat
    ckpt, start, state, _ = stage_state(run, "mdn", {"train": mdn_template(run)})
    first = run.mdn_target(round - 1) if round else 0
    require(run, "iterate", "mdn", start >= first)
    print(f"mdn: {len(series['length'])} sequences, updates {start} -> {steps}")

    if cfg.mdn_batches == "streams":
        seed = (cfg.seed, MDN, 1) + ((round,) if round else ())
        try:
            streams = StreamBatches(series, seed, cfg.mdn_batch, run.r.mdn_seq_len)
        except ValueError as err:
            raise config_lib.ConfigError(f"--mdn_batches=streams: {err}") from err

        def batch(i):
            return streams(i - first)

        update = functools.partial(mdn_rnn.stream_train_step, cfg=run.r.mdn)
    else:

        def batch(i):
            rng = np.random.default_rng([cfg.seed, MDN, i])
            return sample_sequences(series, rng, cfg.mdn_batch, run.r.mdn_seq_len)

        update = functools.partial(mdn_rnn.train_step, cfg=run.r.mdn)

    with ckpt:
        state = _train_loop(
            run, "mdn", steps, state["train"], start, ckpt, update, batch, env_steps
        )
    return {"mdn/updates": int(state.step)}


def world_model_params(run: Run, needs: str, round: int = 0) -> dict[str, Any]:
    """{"vae", "mdn", "initial_z": {"mean", "std": f32 [N, Z]}}: the dream's parameters (M as
    at the end of ``round``; the first frames of the rollouts it trained on).

    Raises:
      MissingInputError: V or M is not trained (names the stage to run first).
    """
    v_params = vae_params(run, needs)
    mdn_params = load_params(run, "mdn", mdn_template(run), needs, round)
    series = make_series(run, v_params, round)
    initial = {
        "mean": jnp.asarray(series["z_mean"][:, 0]),
        "std": jnp.asarray(series["z_std"][:, 0]),
    }
    return {"vae": v_params, "mdn": mdn_params, "initial_z": initial}

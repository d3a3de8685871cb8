"""Tests for jaxplanet/worldmodels/train.py: the V / M training loop's logged rows."""

import dataclasses
import types

import jax
import jax.numpy as jnp

from jaxplanet.core import checkpoint
from jaxplanet.core import logging as logging_lib
from jaxplanet.worldmodels import config as wm_config
from jaxplanet.worldmodels import train


def test_every_row_is_the_mean_of_its_own_updates_even_a_short_first_window(tmp_path):
    """A later round (or a resumed loop) starts between two rows: its first row covers fewer
    updates than the others and must still be their mean (it once was their sum / the full
    window, a third of the loss in the mdn plot's first round-1 row)."""
    cfg = dataclasses.replace(wm_config.tiny(), progress=False, checkpoint_every=1000)
    run = types.SimpleNamespace(cfg=cfg, logdir=tmp_path, key=lambda stream, i: jax.random.key(i))

    def update(state, batch, key):  # loss = the update's index: each row's mean is known
        return state + 1, {"loss": batch, "grad_norm": jnp.float32(2.0)}

    with checkpoint.Checkpointer(tmp_path / "mdn" / "checkpoints") as ckpt:
        state = train._train_loop(
            run, "mdn", 300, jnp.int32(0), 200, ckpt, update, lambda i: jnp.float32(i), 7
        )
    assert int(state) == 100
    rows = logging_lib.read_metrics(tmp_path / "mdn" / logging_lib.METRICS_FILE)
    every = 3  # 300 // 100
    first = rows[0]
    assert first["step"] == 201 and first["mdn/loss"] == 200.0  # one update: 200
    assert rows[1]["step"] == 204 and rows[1]["mdn/loss"] == (201 + 202 + 203) / every
    assert all(r["mdn/grad_norm"] == 2.0 for r in rows)
    assert rows[-1]["step"] == 300 and rows[-1]["env_steps"] == 7

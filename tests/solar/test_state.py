"""SOLAR's run state: a typed pytree whose checkpoints read as the loop's old dict did."""

import dataclasses

import jax
import numpy as np

from jaxplanet.core import checkpoint
from jaxplanet.solar import agent as solar
from jaxplanet.solar import config as solar_config
from jaxplanet.solar.state import RunState


def test_a_checkpoint_of_the_old_dict_state_restores_as_run_state(tmp_path):
    # Run directories written before RunState hold the same tree as a dict with these keys.
    cfg = dataclasses.replace(solar_config.tiny(), horizon=5)
    fresh = solar.initial_run(cfg, 2)
    assert isinstance(fresh, RunState) and int(fresh.phase) == 0
    moved = jax.tree.map(
        lambda x: x + 1 if np.issubdtype(np.asarray(x).dtype, np.floating) else x, fresh
    )
    old = {f.name: getattr(moved, f.name) for f in dataclasses.fields(RunState)}
    old["phase"] = 3
    with checkpoint.Checkpointer(tmp_path) as ckpt:
        ckpt.save(3, old, {})
    with checkpoint.Checkpointer(tmp_path, create=False) as ckpt:
        step, restored = ckpt.restore(fresh)
    assert step == 3 and isinstance(restored, RunState) and int(restored.phase) == 3
    want, got = jax.tree.leaves(moved.train), jax.tree.leaves(restored.train)
    assert len(want) == len(got)
    for a, b in zip(want, got, strict=True):
        np.testing.assert_array_equal(np.asarray(b), np.asarray(a))
    np.testing.assert_array_equal(np.asarray(restored.policy.cov), np.asarray(moved.policy.cov))
    assert float(restored.step_mult) == 2.0

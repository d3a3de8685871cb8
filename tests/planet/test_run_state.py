"""What a PlaNet run checkpoints (jaxplanet.planet.run_state)."""

import jax
import numpy as np

from jaxplanet.core import checkpoint, resume
from jaxplanet.core import config as config_lib
from jaxplanet.planet import config as planet_config
from jaxplanet.planet import functions, run_state, seeds

A = 2


def test_one_seed_is_saved_without_its_axis_as_single_runs_always_were(tmp_path):
    cfg = planet_config.tiny()
    roots = run_state.root_keys(cfg)
    state = run_state.fresh(cfg, roots, A)
    single = functions.init_train_state(cfg, jax.random.fold_in(functions.root_key(cfg), 3), A)
    for a, b in zip(jax.tree.leaves(state), jax.tree.leaves(single), strict=True):
        assert a.shape == (1, *b.shape)
        np.testing.assert_array_equal(np.asarray(a[0]), np.asarray(b))
    progress = resume.Progress(3, 120, 9, 1, 4)
    saved = run_state.saved(state, roots, progress, [120])
    assert set(saved) == {"train", "key", "progress"} and saved["key"].shape == ()
    with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(3, saved)
    with checkpoint.Checkpointer(tmp_path / "ckpt", create=False) as ckpt:
        step, restored = ckpt.restore(run_state.template(run_state.fresh(cfg, roots, A), roots))
    back, progress_back, lane_steps = run_state.restored(restored)
    assert step == 3 and progress_back == progress and lane_steps is None
    for a, b in zip(jax.tree.leaves(back), jax.tree.leaves(state), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_several_seeds_keep_their_axis_and_env_steps(tmp_path):
    cfg = config_lib.replace(planet_config.tiny(), num_seeds=2, prng_impl="threefry2x32")
    roots = run_state.root_keys(cfg)
    state = run_state.fresh(cfg, roots, A)
    saved = run_state.saved(state, roots, resume.Progress(), [40, 80])
    assert saved["key"].shape == (2,) and list(saved["lane_env_steps"]) == [40, 80]
    with checkpoint.Checkpointer(tmp_path / "ckpt") as ckpt:
        ckpt.save(1, saved)
    with checkpoint.Checkpointer(tmp_path / "ckpt", create=False) as ckpt:
        _, restored = ckpt.restore(run_state.template(run_state.fresh(cfg, roots, A), roots))
    back, _, lane_steps = run_state.restored(restored)
    assert lane_steps == [40, 80]
    second = seeds.index(back.params, 1)
    alone = functions.init_train_state(
        config_lib.replace(cfg, seed=cfg.seed + 1, num_seeds=1),
        jax.random.fold_in(jax.random.key(cfg.seed + 1, impl=cfg.prng_impl), seeds.INIT),
        A,
    )
    for a, b in zip(jax.tree.leaves(second), jax.tree.leaves(alone.params), strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)

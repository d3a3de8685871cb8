"""Tests for jaxplanet.core.checkpoint: round trip, corrupt-latest fallback, retention, config
guard."""

import shutil

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jaxplanet.core import checkpoint as ckpt


def run_state(scale: float = 1.0) -> dict:
    params = {"enc": {"w": jnp.ones((3, 4)) * scale, "b": jnp.arange(4.0)}, "head": jnp.eye(2)}
    opt = optax.adam(1e-3)
    opt_state = opt.init(params)
    grads = jax.tree.map(lambda p: 0.1 * p + 1.0, params)
    _, opt_state = opt.update(grads, opt_state, params)  # non-trivial mu, nu, count
    return {
        "params": params,
        "opt": opt_state,
        "key": jax.random.key(7),
        "raw_key": jax.random.PRNGKey(3),
        "env_steps": 1000,
        "episodes": np.int64(4),
        "returns": np.array([1.5, 2.5], np.float32),
    }


def assert_trees_equal(a, b):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        if ckpt._is_key(x):
            x, y = jax.random.key_data(x), jax.random.key_data(y)
        assert type(x) is type(y) or isinstance(x, jax.Array) == isinstance(y, jax.Array)
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
        assert np.asarray(x).dtype == np.asarray(y).dtype


def test_round_trip_with_adam_state_and_keys(tmp_path):
    state = run_state()
    c = ckpt.Checkpointer(tmp_path / "ckpt", max_to_keep=3)
    assert c.restore(state) is None  # empty directory
    c.save(10, state, {"lr": 1e-3})
    template = run_state(scale=0.0)
    template["key"] = jax.random.key(0)
    step, restored = ckpt.Checkpointer(tmp_path / "ckpt").restore(template)
    assert step == 10
    assert_trees_equal(state, restored)
    assert restored["opt"][0].count == 1
    assert isinstance(restored["env_steps"], int) and restored["env_steps"] == 1000
    # The restored typed key continues the same random stream.
    np.testing.assert_array_equal(
        jax.random.normal(restored["key"], (3,)), jax.random.normal(jax.random.key(7), (3,))
    )
    # Abstract templates work too (for the non-key leaves).
    abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state["params"])
    c.save(11, state["params"])
    _, params = c.restore(abstract)
    assert_trees_equal(state["params"], params)


def _truncate_data(step_dir):
    for p in step_dir.rglob("*"):
        if p.is_file() and "/d/" in str(p):
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _garble_data(step_dir):
    for p in step_dir.rglob("*"):
        if p.is_file() and "/d/" in str(p):
            b = bytearray(p.read_bytes())
            mid = len(b) // 2
            b[mid : mid + 4] = bytes(x ^ 0xFF for x in b[mid : mid + 4])
            p.write_bytes(bytes(b))


def _delete_state(step_dir):
    shutil.rmtree(step_dir / "state")


def _truncate_everything(step_dir):
    for p in step_dir.rglob("*"):
        if p.is_file():
            p.write_bytes(p.read_bytes()[: p.stat().st_size // 3])


@pytest.mark.parametrize("corrupt", [_truncate_data, _garble_data, _delete_state])
def test_corrupt_latest_falls_back_to_previous(tmp_path, corrupt):
    c = ckpt.Checkpointer(tmp_path, max_to_keep=3)
    c.save(1, run_state(1.0), {})
    c.save(2, run_state(2.0), {})
    corrupt(tmp_path / "2")
    with pytest.warns(UserWarning, match="checkpoint 2 .* unusable"):
        step, restored = ckpt.Checkpointer(tmp_path).restore(run_state())
    assert step == 1
    assert_trees_equal(restored, run_state(1.0))
    # The resumed run saves step 2 again; the corrupt one is replaced, not kept in the way.
    with pytest.warns(UserWarning, match="replacing checkpoints"):
        c.save(2, run_state(3.0), {})
    step, restored = ckpt.Checkpointer(tmp_path).restore(run_state())
    assert step == 2
    assert_trees_equal(restored, run_state(3.0))


def test_all_corrupt_raises(tmp_path):
    c = ckpt.Checkpointer(tmp_path)
    c.save(1, run_state(), {})
    _truncate_everything(tmp_path / "1")
    with pytest.warns(UserWarning), pytest.raises(RuntimeError, match="no restorable checkpoint"):
        ckpt.Checkpointer(tmp_path).restore(run_state())


def test_half_written_save_is_ignored_and_cleaned(tmp_path):
    ckpt.Checkpointer(tmp_path).save(1, {"x": jnp.ones(2)}, {})
    partial = tmp_path / "2.orbax-checkpoint-tmp-1234" / "state"  # killed during save
    partial.mkdir(parents=True)
    (partial / "junk").write_bytes(b"\0" * 10)
    step, st = ckpt.Checkpointer(tmp_path, create=False).restore({"x": jnp.zeros(2)})
    assert step == 1 and float(st["x"][0]) == 1.0
    ckpt.Checkpointer(tmp_path)  # a writing Checkpointer removes the leftover
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1"]


def test_max_to_keep(tmp_path):
    c = ckpt.Checkpointer(tmp_path, max_to_keep=2)
    for s in (5, 10, 15, 20):
        c.save(s, {"x": jnp.full((2,), float(s))}, {})
    assert c.steps() == [15, 20]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.isdigit()) == ["15", "20"]
    step, st = c.restore({"x": jnp.zeros(2)})
    assert step == 20 and float(st["x"][0]) == 20.0


def test_keep_steps_survive_pruning(tmp_path):
    c = ckpt.Checkpointer(tmp_path, max_to_keep=2, keep=(10,))
    for s in (5, 10, 15, 20, 25):
        c.save(s, {"x": jnp.full((2,), float(s))}, {})
    assert c.steps() == [10, 20, 25]  # 10 kept; the two newest of the others
    c.close()
    again = ckpt.Checkpointer(tmp_path, create=False)
    assert float(again.restore_step(10, {"x": jnp.zeros(2)})["x"][0]) == 10.0


CONFIG = {"lr": 1e-3, "batch": 50, "model": {"deter": 200, "stoch": 30}, "env": "cheetah_run"}


def test_config_mismatch_lists_fields(tmp_path):
    ckpt.write_config(tmp_path, CONFIG)
    assert ckpt.check_config(tmp_path, dict(CONFIG)) == CONFIG
    new = {**CONFIG, "lr": 2e-3, "model": {"deter": 100, "stoch": 30}, "extra": True}
    with pytest.raises(ckpt.ConfigMismatchError) as err:
        ckpt.check_config(tmp_path, new)
    assert isinstance(err.value, ValueError)
    msg = str(err.value)
    assert "lr: 0.001 -> 0.002" in msg
    assert "model.deter: 200 -> 100" in msg
    assert 'extra: "<missing>" -> true' in msg
    assert "model.stoch" not in msg and "batch" not in msg
    # Allowed fields may differ (a prefix allows everything under it).
    ckpt.check_config(tmp_path, new, allowed={"lr", "model", "extra"})
    with pytest.raises(ckpt.ConfigMismatchError, match="model.deter"):
        ckpt.check_config(tmp_path, new, allowed={"lr", "extra"})


def test_config_read_from_checkpoint_and_tuples(tmp_path):
    assert ckpt.check_config(tmp_path, CONFIG) is None  # fresh run: nothing to compare
    cfg = {**CONFIG, "depths": (32, 64)}
    ckpt.Checkpointer(tmp_path).save(3, {"x": jnp.zeros(1)}, cfg)
    ckpt.check_config(tmp_path, cfg)  # tuple vs stored JSON list is not a difference
    with pytest.raises(ckpt.ConfigMismatchError, match=r"depths: \[32, 64\] -> \[32, 128\]"):
        ckpt.check_config(tmp_path, {**cfg, "depths": (32, 128)})


def test_run_written_before_a_field_existed_resumes_at_its_default(tmp_path):
    """A saved config lacking a field (added since) counts as that field's default: the run
    resumes when the new config keeps the default, and is refused, naming it, otherwise."""
    defaults = {"lr": 1e-3, "num_envs": 1, "model": {"deter": 200, "canvas": False}}
    ckpt.write_config(tmp_path, {"lr": 1e-3, "model": {"deter": 200}})
    same = {"lr": 1e-3, "num_envs": 1, "model": {"deter": 200, "canvas": False}}
    # The saved config comes back with the missing field filled in at its default.
    assert ckpt.check_config(tmp_path, same, defaults=defaults) == same
    with pytest.raises(ckpt.ConfigMismatchError, match="num_envs"):
        ckpt.check_config(tmp_path, same)  # without defaults: a missing field differs
    changed = {"lr": 1e-3, "num_envs": 4, "model": {"deter": 200, "canvas": False}}
    with pytest.raises(ckpt.ConfigMismatchError, match="num_envs: 1 -> 4"):
        ckpt.check_config(tmp_path, changed, defaults=defaults)


def test_load_eval_config_refuses_a_missing_run_and_non_reporting_fields(tmp_path):
    import dataclasses as dc

    @dc.dataclass(frozen=True)
    class Cfg:
        seed: int = 0
        eval_episodes: int = 5

    from jaxplanet.core import config as config_lib

    with pytest.raises(config_lib.ConfigError, match="no Thing run"):
        ckpt.load_eval_config(tmp_path, Cfg, "Thing", {"eval_episodes"})
    (tmp_path / "config.json").write_text('{"seed": 3, "eval_episodes": 5}')
    saved, cfg = ckpt.load_eval_config(
        tmp_path, Cfg, "Thing", {"eval_episodes"}, {"eval_episodes": "9"}
    )
    assert saved == Cfg(seed=3, eval_episodes=5) and cfg == Cfg(seed=3, eval_episodes=9)
    with pytest.raises(config_lib.ConfigError, match=r"--seed: cannot change .*eval_episodes"):
        ckpt.load_eval_config(tmp_path, Cfg, "Thing", {"eval_episodes"}, {"seed": "1"})
    other = tmp_path / "other"
    other.mkdir()
    (other / "config.json").write_text('{"seed": 3, "horizon": 9, "kl_step": 1, "latent": 8}')
    with pytest.raises(config_lib.ConfigError, match="another kind.*It is not a Thing run"):
        ckpt.load_eval_config(other, Cfg, "Thing", {"eval_episodes"})

"""End-to-end tests of the PlaNet training loop on the tiny preset (point_reach)."""

import json

import numpy as np
import pytest

from jaxplanet import checkpoint, planet
from jaxplanet import config as config_lib
from jaxplanet import logging as logging_lib
from jaxplanet.agents import planet as agent
from jaxplanet.agents import planet_config


def _rows(logdir):
    return logging_lib.read_metrics(logdir / "metrics.jsonl")


def _cfg(**changes):
    return config_lib.replace(planet_config.tiny(), **changes)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 6-episode run (shared by several tests)."""
    logdir = tmp_path_factory.mktemp("full")
    summary = agent.train_and_evaluate(_cfg(episodes=6), logdir)
    return logdir, summary


def test_run_writes_metrics_checkpoint_video(full_run):
    logdir, summary = full_run
    rows = _rows(logdir)
    assert all("step" in r for r in rows)
    assert sum("random_return" in r for r in rows) == 1
    evals = [r for r in rows if "eval_return" in r]
    assert len(evals) == 2  # episodes 4 and 6 with eval_every=2 after 2 seed episodes
    assert [r["episode"] for r in rows if "train_return" in r] == [1, 2, 3, 4, 5, 6]
    steps = [r["step"] for r in rows if "train_return" in r]
    assert steps == [40 * (i + 1) for i in range(6)]  # env steps after action repeat
    assert summary["episodes"] == 6 and summary["env_steps"] == 240
    assert summary["grad_steps"] == 4 * 3
    assert sorted(p.name for p in (logdir / "episodes").glob("*.npz"))[0] == "000000-21.npz"
    videos = list((logdir / "videos").glob("eval_open_loop_*"))
    assert len(videos) == 2
    ckpt = checkpoint.Checkpointer(logdir / "checkpoints", create=False)
    assert ckpt.steps()[-1] == 6
    saved = json.loads((logdir / "config.json").read_text())
    assert saved["model"]["deter"] == 8


def test_resume_continues_exactly(full_run, tmp_path):
    logdir, _ = full_run
    agent.train_and_evaluate(_cfg(episodes=4), tmp_path)
    summary = agent.train_and_evaluate(_cfg(episodes=6), tmp_path)  # episodes may grow
    assert summary["episodes"] == 6 and summary["env_steps"] == 240
    resumed = [r for r in _rows(tmp_path) if "train_return" in r]
    straight = [r for r in _rows(logdir) if "train_return" in r]
    assert [r["episode"] for r in resumed] == [1, 2, 3, 4, 5, 6]
    for a, b in zip(resumed, straight, strict=True):
        assert a["step"] == b["step"]
        assert a["train_return"] == pytest.approx(b["train_return"], rel=1e-5)
        if "train/loss" in a:
            assert a["train/loss"] == pytest.approx(b["train/loss"], rel=1e-4)


def test_kill_between_episode_and_checkpoint_loses_no_episode(tmp_path, monkeypatch):
    real_save = checkpoint.Checkpointer.save

    def dying_save(self, step, state, config=None):
        if step == 4:
            raise KeyboardInterrupt  # the process dies after episode 4 hit the disk
        return real_save(self, step, state, config)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        agent.train_and_evaluate(_cfg(episodes=6), tmp_path)
    assert len(list((tmp_path / "episodes").glob("*.npz"))) == 4
    monkeypatch.setattr(checkpoint.Checkpointer, "save", real_save)
    summary = agent.train_and_evaluate(_cfg(episodes=6), tmp_path)
    assert summary["episodes"] == 6 and summary["env_steps"] == 240
    assert len(list((tmp_path / "episodes").glob("*.npz"))) == 6


def test_changed_config_is_refused_with_the_difference(full_run):
    logdir, _ = full_run
    before = sorted(p.name for p in logdir.rglob("*"))
    with pytest.raises(checkpoint.ConfigMismatchError) as err:
        agent.train_and_evaluate(_cfg(episodes=6, batch_size=5), logdir)
    assert "batch_size: 4 -> 5" in str(err.value)
    assert sorted(p.name for p in logdir.rglob("*")) == before


def test_non_finite_loss_stops_with_step_and_term(tmp_path):
    cfg = _cfg(model=config_lib.replace(planet_config.tiny().model, image_scale=float("nan")))
    with pytest.raises(planet.NonFiniteLossError, match=r"step 0: .*loss=nan"):
        agent.train_and_evaluate(cfg, tmp_path)
    # The two seed episodes were kept and checkpointed; nothing after the NaN was saved.
    assert checkpoint.Checkpointer(tmp_path / "checkpoints", create=False).steps() == [1, 2]


def test_evaluate_run_loads_checkpoint(full_run):
    logdir, _ = full_run
    summary = agent.evaluate_run(logdir, {"eval_episodes": "2"})
    assert summary["checkpoint_episodes"] == 6
    assert np.isfinite(summary["eval_return_mean"])
    assert len(list((logdir / "eval" / "videos").glob("*"))) == 2
    with pytest.raises(config_lib.ConfigError, match="--batch_size: cannot change"):
        agent.evaluate_run(logdir, {"batch_size": "3"})


def test_open_loop_video_shape(full_run):
    logdir, _ = full_run
    cfg = _cfg(episodes=6)
    fns = agent.make_functions(cfg, 2)
    import jax

    params = planet.init(cfg.model, jax.random.PRNGKey(0), 2)
    episode = {
        "obs": np.zeros((21, 64, 64, 3), np.uint8),
        "action": np.zeros((21, 2), np.float32),
        "is_first": np.arange(21) == 0,
    }
    frames = agent.open_loop_video(cfg, fns, params, episode)
    assert frames.shape == (cfg.video_length, 64, 128, 3) and frames.dtype == np.uint8


def test_model_loss_falls_clearly_on_point_reach():
    """The world model learns point_reach frames: image NLL falls by more than half."""
    import jax

    from jaxplanet import envs, replay
    from jaxplanet.agents import episodes as episodes_lib

    cfg = _cfg(train_steps=80, batch_size=8, seq_length=10)
    env = envs.make("point_reach", seed=0, episode_length=40)
    buf = replay.init(4 * 21, (64, 64, 3), 2)
    for i in range(4):
        ep = episodes_lib.run_episode(env, episodes_lib.random_policy(2, seed=i), seed=i)
        buf = replay.add_episode(buf, episodes_lib.episode_arrays(ep))
    fns = agent.make_functions(cfg, 2)
    state = agent.init_train_state(cfg, agent.root_key(cfg), 2)
    state, metrics = fns.train(state, buf, jax.random.key(1, impl="rbg"))
    nll = np.asarray(metrics["image_nll"])
    assert np.all(np.isfinite(nll))
    assert nll[-10:].mean() < 0.5 * nll[:10].mean(), (nll[:10].mean(), nll[-10:].mean())

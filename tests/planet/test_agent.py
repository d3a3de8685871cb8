"""End-to-end tests of the PlaNet training loop on the tiny preset (point_reach)."""

import json

import jax
import numpy as np
import pytest

from jaxplanet import planet
from jaxplanet.core import checkpoint
from jaxplanet.core import config as config_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.planet import agent
from jaxplanet.planet import config as planet_config
from tests.killed import Killed


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


def test_run_logs_where_its_time_went(full_run):
    logdir, summary = full_run
    rows = [r for r in _rows(logdir) if "train_return" in r]
    first, last = rows[0], rows[-1]
    assert "time/update_wall_s" not in first  # the random seed episode has no updates
    for phase in ("update", "plan", "env", "eval", "video", "replay", "checkpoint"):
        assert last[f"time/{phase}_wall_s"] > 0 and f"time/{phase}_cpu_s" in last, phase
    for phase in ("update", "plan"):  # compiles and jitted work: many 10 ms CPU ticks each
        assert last[f"time/{phase}_cpu_s"] > 0, phase
    for phase in ("env", "replay"):  # cumulative over the run
        walls = [r[f"time/{phase}_wall_s"] for r in rows]
        assert walls == sorted(walls) and walls[-1] > walls[0], phase
    shares = summary["time_shares"]
    assert sum(s[1] for s in shares) == pytest.approx(summary["wall_seconds"], rel=1e-6)
    assert sum(s[3] for s in shares) == pytest.approx(1.0)
    assert {s[0] for s in shares} >= {"update", "plan", "env", "eval", "other"}
    table = dict(agent.summary_rows(summary))
    assert table["time went to"].startswith(shares[0][0])


def _comparable(rows):
    """Rows without wall-clock fields, for run-to-run comparison."""
    return [
        {k: v for k, v in r.items() if k != "env_steps_per_second" and not k.startswith("time/")}
        for r in rows
    ]


def assert_same_rows(resumed, straight):
    """Identical counters, episodes and eval rows; losses and returns equal (CPU)."""
    a, b = _comparable(resumed), _comparable(straight)
    assert [sorted(r) for r in a] == [sorted(r) for r in b]
    for ra, rb in zip(a, b, strict=True):
        for k, v in rb.items():
            if isinstance(v, float):
                assert ra[k] == pytest.approx(v, rel=1e-4, abs=1e-6), k
            else:
                assert ra[k] == v, k


def test_resume_continues_exactly(full_run, tmp_path):
    logdir, _ = full_run
    agent.train_and_evaluate(_cfg(episodes=4), tmp_path)
    summary = agent.train_and_evaluate(_cfg(episodes=6), tmp_path)  # episodes may grow
    assert summary["episodes"] == 6 and summary["env_steps"] == 240
    assert_same_rows(_rows(tmp_path), _rows(logdir))


def _kill_after_episode_file(monkeypatch):
    real = agent.replay.save_episode

    def save(directory, episode, index, **kw):
        path = real(directory, episode, index, **kw)
        if index == 3:
            raise Killed
        return path

    monkeypatch.setattr(agent.replay, "save_episode", save)


def _kill_during_updates(monkeypatch):
    real, calls = agent.train, [0]

    def train(*args, **kw):
        calls[0] += 1
        out = real(*args, **kw)
        if calls[0] == 2:  # episode 4's updates ran, the process dies before collecting it
            raise Killed
        return out

    monkeypatch.setattr(agent, "train", train)


def _kill_during_evaluation(monkeypatch):
    real = agent.evaluate_episodes

    def evaluate(cfg, fns, params, env, index, wrap=None):
        real(cfg, fns, params, env, index, wrap)
        raise Killed  # the first evaluation (after episode 4) never finishes

    monkeypatch.setattr(agent, "evaluate_episodes", evaluate)


def _kill_during_checkpoint_write(monkeypatch):
    real = checkpoint.Checkpointer.save

    def save(self, step, state, config=None):
        if step == 4:  # a half-written step directory, as orbax leaves it when killed
            tmp = self.directory / "4.orbax-checkpoint-tmp-123"
            tmp.mkdir(parents=True)
            (tmp / "partial").write_bytes(b"\0" * 100)
            raise Killed
        return real(self, step, state, config)

    monkeypatch.setattr(checkpoint.Checkpointer, "save", save)


KILLS = {
    "after_episode_file": _kill_after_episode_file,
    "during_updates": _kill_during_updates,
    "during_evaluation": _kill_during_evaluation,
    "during_checkpoint_write": _kill_during_checkpoint_write,
}


@pytest.mark.parametrize("phase", sorted(KILLS))
def test_kill_at_each_phase_resumes_as_uninterrupted(
    full_run, tmp_path, monkeypatch, capsys, phase
):
    logdir, _ = full_run
    with monkeypatch.context() as m:
        KILLS[phase](m)
        with pytest.raises(Killed):
            agent.train_and_evaluate(_cfg(episodes=6), tmp_path)
    capsys.readouterr()
    summary = agent.train_and_evaluate(_cfg(episodes=6), tmp_path)
    out = capsys.readouterr().out
    assert "Resuming" in out and "checkpoint 3 covers 3 episodes" in out
    assert summary["episodes"] == 6 and summary["grad_steps"] == 12
    assert_same_rows(_rows(tmp_path), _rows(logdir))
    assert len(list((tmp_path / "episodes").glob("*.npz"))) == 6
    if phase in ("after_episode_file", "during_evaluation", "during_checkpoint_write"):
        # Episode 4 hit the disk before the kill: set aside, never deleted, and collected again.
        assert "set aside" in out
        assert len(list((tmp_path / "set_aside").rglob("000003-21.npz"))) == 1


def test_corrupt_newest_checkpoint_falls_back_and_redoes(full_run, tmp_path, capsys):
    logdir, _ = full_run
    agent.train_and_evaluate(_cfg(episodes=4), tmp_path)
    newest = tmp_path / "checkpoints" / "4"
    victim = max((p for p in newest.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)
    victim.write_bytes(b"garbage" * 10)
    capsys.readouterr()
    with pytest.warns(UserWarning, match="checkpoint 4 .* unusable"):
        summary = agent.train_and_evaluate(_cfg(episodes=6), tmp_path)
    out = capsys.readouterr().out
    assert "checkpoint 3 covers 3 episodes" in out and "set aside" in out
    assert summary["episodes"] == 6 and summary["grad_steps"] == 12
    assert_same_rows(_rows(tmp_path), _rows(logdir))


def test_unreadable_episode_file_is_named_and_set_aside(tmp_path, capsys):
    agent.train_and_evaluate(_cfg(episodes=4), tmp_path)
    bad = tmp_path / "episodes" / "000003-21.npz"
    bad.write_bytes(b"not an npz")
    capsys.readouterr()
    with pytest.warns(UserWarning, match="000003-21.npz"):
        summary = agent.train_and_evaluate(_cfg(episodes=5), tmp_path)
    out = capsys.readouterr().out
    assert "unreadable episode file(s) [4] set aside" in out
    assert summary["episodes"] == 5
    aside = tmp_path / "set_aside" / "0" / "episodes" / "000003-21.npz"
    assert aside.read_bytes() == b"not an npz"


def test_in_training_evaluation_equals_eval_mode(full_run):
    """One evaluation function: --mode=eval on the final checkpoint reproduces the eval row
    logged at that episode (same params, env seeds and planning keys)."""
    logdir, _ = full_run
    logged = [r for r in _rows(logdir) if "eval_return" in r][-1]
    summary = agent.evaluate_run(logdir)
    assert summary["checkpoint_episodes"] == 6
    assert summary["eval_return_mean"] == pytest.approx(logged["eval_return"], rel=1e-5)


def test_host_replay_gives_the_same_run(full_run, tmp_path):
    logdir, _ = full_run
    cfg = _cfg(episodes=6, replay_device="host")
    host = agent.replay_device(cfg)
    assert host == jax.local_devices(backend="cpu")[0]
    assert agent.replay_device(_cfg(replay_device="device")) is None
    assert agent.replay_device(_cfg()) is None  # auto on CPU: the (CPU) device
    agent.train_and_evaluate(cfg, tmp_path)
    assert_same_rows(_rows(tmp_path), _rows(logdir))


def test_host_replay_train_keeps_buffer_on_host():
    from jaxplanet.core import replay

    cfg = _cfg(replay_device="host")
    host = agent.replay_device(cfg)
    with jax.default_device(host):
        buf = replay.init(64, (64, 64, 3), 2)
        ep = {
            "obs": np.zeros((21, 64, 64, 3), np.uint8),
            "action": np.zeros((21, 2), np.float32),
            "reward": np.zeros(21, np.float32),
            "is_first": np.arange(21) == 0,
        }
        buf = replay.add_episode(buf, ep)
    buf = jax.device_put(buf, host)
    fns = agent.make_functions(cfg, 2)
    state = agent.init_train_state(cfg, agent.root_key(cfg), 2)
    state, metrics = agent.train(fns, state, buf, agent.root_key(cfg), 3, host_replay=True)
    assert buf.obs.sharding.device_set == {host}  # the whole buffer never left the host
    assert np.asarray(metrics["loss"]).shape == (3,)


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
    rows = logging_lib.read_metrics(logdir / "eval" / "metrics.jsonl")[-2:]
    assert [r["eval_episode"] for r in rows] == [0, 1]
    returns = [r["eval_return"] for r in rows]
    assert 0 < summary["eval_return_mean"] == pytest.approx(np.mean(returns))
    assert summary["eval_return_std"] == pytest.approx(np.std(returns))
    assert len(list((logdir / "eval" / "videos").glob("*"))) == 2
    with pytest.raises(config_lib.ConfigError, match="--batch_size: cannot change"):
        agent.evaluate_run(logdir, {"batch_size": "3"})


def test_open_loop_video_shape(full_run):
    logdir, _ = full_run
    cfg = _cfg(episodes=6)
    fns = agent.make_functions(cfg, 2)
    params = planet.init(cfg.model, jax.random.PRNGKey(0), 2)
    episode = {
        "obs": np.zeros((21, 64, 64, 3), np.uint8),
        "action": np.zeros((21, 2), np.float32),
        "is_first": np.arange(21) == 0,
    }
    frames = agent.open_loop_video(cfg, fns, params, episode)
    assert frames.shape == (cfg.video_length, 18 + 128, 256, 3) and frames.dtype == np.uint8


def test_model_loss_falls_clearly_on_point_reach():
    """The world model learns point_reach frames: image NLL falls by more than half."""
    from jaxplanet import envs
    from jaxplanet.core import episodes as episodes_lib
    from jaxplanet.core import replay

    cfg = _cfg(train_steps=80, batch_size=8, seq_length=10)
    env = envs.make("point_reach", seed=0, episode_length=40)
    buf = replay.init(4 * 21, (64, 64, 3), 2)
    for i in range(4):
        ep = episodes_lib.run_episode(env, episodes_lib.random_policy(2, seed=i), seed=i)
        buf = replay.add_episode(buf, episodes_lib.episode_arrays(ep))
    fns = agent.make_functions(cfg, 2)
    state = agent.init_train_state(cfg, agent.root_key(cfg), 2)
    key = jax.random.key(1, impl="rbg")
    state, metrics = agent.train(fns, state, buf, key, cfg.train_steps)
    nll = np.asarray(metrics["image_nll"])
    assert np.all(np.isfinite(nll))
    assert nll[-10:].mean() < 0.5 * nll[:10].mean(), (nll[:10].mean(), nll[-10:].mean())


def test_paper_preset_is_the_released_agent_and_says_so():
    cfg = planet_config.paper()
    m, p = cfg.model, cfg.planner
    assert (m.variant, m.deter, m.stoch, m.hidden, m.depth) == ("rssm", 200, 30, 200, 32)
    assert (m.reward_scale, m.reward_hidden, m.reward_layers, m.lr_warmup) == (10.0, 100, 2, 10_000)
    assert m.overshooting_distance == 0 and m.free_nats == 3.0
    assert (p.horizon, p.iterations, p.candidates, p.top_k) == (12, 10, 1000, 100)
    assert (p.discount, p.var_eps, p.sample) == (0.99, 1e-6, True)
    text = agent.describe(cfg)
    for part in (
        "reward MLP 2 x 100",
        "10 x reward NLL",
        "no overshooting",
        "ramp 10000",
        "discount 0.99",
        "var_eps 1e-06",
        "sampled latent rollouts",
    ):
        assert part in text, part

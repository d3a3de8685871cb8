"""--num_envs, --num_seeds, --devices and --collect=device through the whole PlaNet loop
(jaxplanet/planet/scale.py and its use in jaxplanet/planet/agent.py), tiny preset."""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from jaxplanet.core import config as config_lib
from jaxplanet.core import episodes as episodes_lib
from jaxplanet.core import logging as logging_lib
from jaxplanet.core import replay, seeding
from jaxplanet.planet import agent
from jaxplanet.planet import config as planet_config
from tests.killed import Killed

ROOT = Path(__file__).resolve().parents[2]


def _cfg(**changes):
    return config_lib.replace(planet_config.tiny(), **changes)


def _rows(logdir):
    return logging_lib.read_metrics(Path(logdir) / "metrics.jsonl")


def _episode_files(logdir):
    return sorted(p.name for p in (Path(logdir) / "episodes").glob("*.npz"))


def _assert_close_rows(a, b, keys=None):
    """Same counters; float fields equal to float tolerance (wall-clock fields left out)."""
    assert len(a) == len(b)
    for ra, rb in zip(a, b, strict=True):
        for k, v in rb.items():
            wall_clock = k == "env_steps_per_second" or k.startswith("time/")
            if wall_clock or (keys is not None and k not in keys):
                continue
            if isinstance(v, float):
                assert ra[k] == pytest.approx(v, rel=1e-4, abs=1e-5), k
            else:
                assert ra[k] == v, k


# --num_envs: four episodes per round, resumable after a kill ---------------------------------


N4 = {"num_envs": 4, "episodes": 8, "seed_episodes": 4, "eval_every": 4, "video": False}


@pytest.fixture(scope="module")
def four_envs(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("n4")
    summary = agent.train_and_evaluate(_cfg(**N4), logdir, console_output=False)
    return logdir, summary


def test_num_envs_writes_n_episodes_per_round(four_envs):
    logdir, summary = four_envs
    rows = _rows(logdir)
    train = [r for r in rows if "train_return" in r]
    assert [r["episode"] for r in train] == list(range(1, 9))
    assert [r["step"] for r in train] == [40 * (i + 1) for i in range(8)]
    # One round of 4 x train_steps updates before episodes 5-8; its losses on episode 5's row.
    assert [r["grad_steps"] for r in train] == [0] * 4 + [4 * 3] * 4
    assert "train/loss" in train[4] and all("train/loss" not in r for r in train[5:])
    assert sum("eval_return" in r for r in rows) == 1
    assert len(_episode_files(logdir)) == 8
    assert summary["episodes"] == 8 and summary["grad_steps"] == 12


def test_num_envs_random_episodes_equal_the_one_env_loops(four_envs):
    """Round 1 (random actions) resets and acts as four one-env episodes would."""
    logdir, _ = four_envs
    cfg = _cfg(**N4)
    env = agent.make_env(cfg, seed=cfg.seed)
    for i, name in enumerate(_episode_files(logdir)[:4]):
        seed = seeding.episode_seed(cfg.seed, i)
        one = episodes_lib.run_episode(
            env, episodes_lib.random_policy(env.spec.action_dim, seed), seed=seed
        )
        stored = replay.load_episode_file(logdir / "episodes" / name, len(one["reward"]))
        for k in ("obs", "action", "reward"):
            np.testing.assert_array_equal(stored[k], one[k], err_msg=k)


def test_num_envs_kill_mid_round_resumes_as_uninterrupted(four_envs, tmp_path, monkeypatch):
    logdir, _ = four_envs
    real = agent.replay.save_episode

    def save(directory, episode, index, **kw):
        path = real(directory, episode, index, **kw)
        if index == 5:  # two of the second round's four episodes are on disk
            raise Killed
        return path

    with monkeypatch.context() as m:
        m.setattr(agent.replay, "save_episode", save)
        with pytest.raises(Killed):
            agent.train_and_evaluate(_cfg(**N4), tmp_path, console_output=False)
    summary = agent.train_and_evaluate(_cfg(**N4), tmp_path, console_output=False)
    assert summary["episodes"] == 8 and summary["grad_steps"] == 12
    assert _episode_files(tmp_path) == _episode_files(logdir)
    assert len(list((tmp_path / "set_aside").rglob("*.npz"))) == 2  # kept, collected again
    _assert_close_rows(_rows(tmp_path), _rows(logdir))


# --num_seeds: K agents in one program, each equal to its single-seed run ------------------------


def test_num_seeds_equal_single_seed_runs_for_the_first_updates(tmp_path, capsys):
    # One update per episode: the first update's figures are compared. (After it, Adam's
    # sign-like first step turns float-rounding differences of near-zero gradients into
    # lr-sized parameter differences, so later updates agree less tightly.)
    base = {
        "episodes": 3,
        "train_steps": 1,
        "eval_every": 0,
        "prng_impl": "threefry2x32",
        "video": False,
    }
    summary = agent.train_and_evaluate(_cfg(num_seeds=3, **base), tmp_path / "k3")
    assert "3 seed(s) x 1 env(s) per round" in capsys.readouterr().out  # the banner
    summary["wall_seconds"] = 1.0
    table = dict(agent.summary_rows(summary))
    assert "over seeds" in table["last train return"] and "seed_*" in table["metrics"]
    assert "random return" in table and "eval return" not in table  # eval_every=0
    assert sorted(p.name for p in (tmp_path / "k3").glob("seed_*")) == [
        "seed_0",
        "seed_1",
        "seed_2",
    ]
    assert len(summary["seeds"]) == 3 and "train_return_std" in summary
    losses = []
    for k in range(3):
        single = tmp_path / f"s{k}"
        agent.train_and_evaluate(_cfg(seed=k, **base), single, console_output=False)
        many = _rows(tmp_path / "k3" / f"seed_{k}")
        one = _rows(single)
        # Random episodes identical; the first updates (on them) equal to float tolerance.
        _assert_close_rows(many[:2], one[:2])
        _assert_close_rows(many[2:], one[2:], keys=[k for k in one[2] if k.startswith("train/")])
        losses.append(many[2]["train/loss"])
    assert len(set(losses)) == 3  # three different agents, not one copied
    # --mode=eval evaluates every seed from the stacked checkpoint, into seed_k/eval.
    evaluated = agent.evaluate_run(tmp_path / "k3")
    assert evaluated["checkpoint_episodes"] == 3 and "seeds_eval_return_std" in evaluated
    for k in range(3):
        assert len(_rows(tmp_path / "k3" / f"seed_{k}" / "eval")) == 1


# --collect=device: the whole round is one lax.scan ---------------------------------------------


def test_collect_on_device_runs_and_resumes(tmp_path):
    cfg = _cfg(collect="device", num_envs=2, episodes=6, eval_every=0, video=False)
    agent.train_and_evaluate(config_lib.replace(cfg, episodes=4), tmp_path, console_output=False)
    summary = agent.train_and_evaluate(cfg, tmp_path, console_output=False)
    rows = [r for r in _rows(tmp_path) if "train_return" in r]
    assert [r["episode"] for r in rows] == list(range(1, 7))
    assert summary["grad_steps"] == 2 * 2 * 3
    assert all(np.isfinite(r["train_return"]) for r in rows)
    assert len(_episode_files(tmp_path)) == 6


# Bad input -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes, flag",
    [
        ({"num_envs": 3}, "--episodes: must be a multiple of --num_envs=3"),
        ({"num_envs": 0}, "--num_envs: must be >= 1"),
        ({"num_seeds": 2}, "--num_seeds=2: needs --prng_impl=threefry2x32"),
        ({"num_seeds": 2, "prng_impl": "threefry2x32", "devices": 2}, "--devices:"),
        ({"devices": -1}, "--devices: must be >= 0"),
    ],
)
def test_bad_scale_flags_are_named(changes, flag):
    with pytest.raises(config_lib.ConfigError, match=flag.replace("+", r"\+")):
        _cfg(**changes).validate()


@pytest.mark.parametrize("name", ["quick", "tiny"])
def test_num_seeds_with_an_rbg_preset_picks_threefry(name, capsys):
    base = planet_config.preset(name)
    assert base.prng_impl == "rbg"
    flags = planet_config.prng_for_seeds(base, {"num_seeds": "3"})
    assert flags == {"num_seeds": "3", "prng_impl": "threefry2x32"}
    assert config_lib.override(base, flags).num_seeds == 3  # validated on the way
    assert "--num_seeds=3: PRNG threefry2x32 instead of the preset's rbg" in capsys.readouterr().out
    assert planet_config.prng_for_seeds(base, {"seed": "4"}) == {"seed": "4"}
    assert capsys.readouterr().out == ""
    # an explicit --prng_impl=rbg is the user's choice: kept, then refused by name
    asked = {"num_seeds": "3", "prng_impl": "rbg"}
    assert planet_config.prng_for_seeds(base, asked) == asked
    with pytest.raises(config_lib.ConfigError, match="--num_seeds=3: needs --prng_impl"):
        config_lib.override(base, asked)


def test_collect_device_refuses_a_host_task_before_writing(tmp_path):
    cfg = _cfg(env="cartpole_swingup", collect="device")
    with pytest.raises(config_lib.ConfigError, match="--collect=device: .*point_reach"):
        agent.train_and_evaluate(cfg, tmp_path / "run", console_output=False)
    assert not (tmp_path / "run").exists()


def test_more_devices_than_present_is_refused(tmp_path):
    with pytest.raises(config_lib.ConfigError, match="--devices: must be in"):
        agent.train_and_evaluate(_cfg(devices=64), tmp_path / "run", console_output=False)
    assert not (tmp_path / "run").exists()


# --devices: sharded training and planning equal one device (forced host devices) ---------------

SHARDED = textwrap.dedent(
    """
    import json, sys
    from jaxplanet.core import config as config_lib
    from jaxplanet.core import logging as logging_lib
    from jaxplanet.planet import agent
    from jaxplanet.planet import config as planet_config
    out = {}
    for devices in (1, 2):
        cfg = config_lib.replace(
            planet_config.tiny(), devices=devices, num_envs=2, batch_size=4,
            episodes=4, eval_every=0, video=False)
        logdir = f"{sys.argv[1]}/d{devices}"
        agent.train_and_evaluate(cfg, logdir, console_output=False)
        out[devices] = logging_lib.read_metrics(logdir + "/metrics.jsonl")
    print(json.dumps(out))
    """
)


@pytest.mark.slow  # ~1 min; the sharded step and planning are tested in tests/core/test_parallel.py
def test_two_devices_give_the_one_device_run(tmp_path):
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    env["JAX_PLATFORMS"] = "cpu"
    env["PYTHONPATH"] = str(ROOT)
    done = subprocess.run(
        [sys.executable, "-c", SHARDED, str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    one, two = out["1"], out["2"]
    # Same random episodes; the first updates (batch split over 2 devices) equal to float
    # tolerance. Later planned episodes may differ: per-device planning matmuls have other
    # shapes, and a rounding difference can flip CEM's top-k choice.
    assert [r["episode"] for r in two] == [1, 2, 3, 4]
    _assert_close_rows(two[:2], one[:2])
    _assert_close_rows(two[2:3], one[2:3], keys=[k for k in one[2] if k.startswith("train/")])
    assert "train/loss" in two[2] and two[3]["grad_steps"] == 6

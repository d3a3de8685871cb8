"""Tests for jaxplanet.core.replay: ring buffer add/sample under jit, disk round trip, memory."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from jaxplanet.core import replay

OBS = (4, 4, 3)
A = 2

add_j = jax.jit(replay.add, donate_argnums=0)
add_episode_j = jax.jit(replay.add_episode, donate_argnums=0)
sample_j = jax.jit(replay.sample, static_argnums=(2, 3))


def make_episode(ep_id: int, length: int, start: int) -> dict:
    """obs pixels = episode id, reward = time index in episode, action[:, 0] = global step."""
    t = np.arange(length)
    action = np.zeros((length, A), np.float32)
    action[:, 0] = start + t
    action[:, 1] = ep_id
    return {
        "obs": np.full((length, *OBS), ep_id, np.uint8),
        "action": action,
        "reward": t.astype(np.float32),
        "is_first": t == 0,
    }


def fill(capacity: int, lengths) -> tuple[replay.ReplayState, list[dict]]:
    state = replay.init(capacity, OBS, A)
    eps, start = [], 0
    for i, n in enumerate(lengths):
        ep = make_episode(i + 1, n, start)
        state = add_episode_j(state, ep)
        eps.append(ep)
        start += n
    return state, eps


def check_chunks(batch: dict, oldest_global: int, newest_global: int) -> None:
    obs, rew, first, act = (np.asarray(batch[k]) for k in ("obs", "reward", "is_first", "action"))
    assert obs.dtype == np.uint8
    glob = act[..., 0]
    # Contiguous in time: no chunk spans the write seam.
    np.testing.assert_array_equal(np.diff(glob, axis=1), 1.0)
    assert glob.min() >= oldest_global and glob.max() <= newest_global
    ep_id = obs[:, :, 0, 0, 0]
    np.testing.assert_array_equal(ep_id, act[..., 1])  # obs and action come from the same step
    assert (obs == ep_id[:, :, None, None, None]).all()
    same = ep_id[:, 1:] == ep_id[:, :-1]
    # Inside an episode the time index advances; at a crossing is_first marks the new episode.
    np.testing.assert_array_equal(same, ~first[:, 1:])
    np.testing.assert_array_equal(rew[:, 1:][same], rew[:, :-1][same] + 1)
    np.testing.assert_array_equal(rew[:, 1:][~same], 0.0)
    np.testing.assert_array_equal(ep_id[:, 1:][~same], ep_id[:, :-1][~same] + 1)


def test_init_shapes_and_dtypes():
    s = replay.init(7, OBS, A)
    assert s.obs.shape == (7, *OBS) and s.obs.dtype == jnp.uint8
    assert s.action.shape == (7, A) and s.action.dtype == jnp.float32
    assert s.reward.shape == (7,) and s.is_first.dtype == jnp.bool_
    assert int(s.size) == 0 and int(s.pos) == 0 and s.capacity == 7


def test_sample_chunks_are_contiguous_and_mark_episode_starts():
    state, _ = fill(100, [9, 7, 12, 5])
    batch = sample_j(state, jax.random.key(0), 256, 6)
    assert batch["obs"].shape == (256, 6, *OBS) and batch["action"].shape == (256, 6, A)
    assert batch["reward"].shape == (256, 6) and batch["is_first"].shape == (256, 6)
    check_chunks(batch, 0, 32)
    crossings = (~np.asarray(batch["is_first"][:, 1:])).all(axis=1)
    assert (~crossings).any() and crossings.any()  # both kinds of chunks occur


@pytest.mark.parametrize("lengths", [[6, 8, 9], [4, 6, 5, 8]])  # wraps; exact fit then wraps
def test_ring_wraparound_keeps_newest_steps(lengths):
    state, eps = fill(10, lengths)
    total = sum(lengths)
    assert int(state.size) == 10 and int(state.pos) == total % 10
    glob = np.asarray(state.action[:, 0])
    expected = np.concatenate([e["action"][:, 0] for e in eps])[-10:]
    np.testing.assert_array_equal(np.roll(glob, -int(state.pos)), expected)
    oldest = total - 10
    batch = sample_j(state, jax.random.key(1), 4000, 3)
    check_chunks(batch, oldest, total - 1)
    # Starts are uniform over the size - L + 1 = 8 chunks lying in the written ring.
    starts = np.asarray(batch["action"][:, 0, 0]).astype(int) - oldest
    counts = np.bincount(starts, minlength=8)
    assert counts.shape == (8,) and counts.min() > 0
    assert stats.chisquare(counts).pvalue > 1e-4
    # Some chunks wrap physically past index C-1 and are still contiguous in time.
    phys = (starts + oldest) % 10
    assert (phys + 3 > 10).any()


def test_add_step_matches_add_episode():
    eps = [make_episode(1, 5, 0), make_episode(2, 4, 5)]
    s1 = replay.init(6, OBS, A)
    for ep in eps:
        s1 = add_episode_j(s1, ep)
    s2 = replay.init(6, OBS, A)
    for ep in eps:
        for t in range(len(ep["obs"])):
            s2 = add_j(s2, *(ep[k][t] for k in replay.KEYS))
    for a, b in zip(jax.tree.leaves(s1), jax.tree.leaves(s2), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert int(s2.pos) == 9 % 6 and int(s2.size) == 6


def test_sample_errors_and_limits():
    state, _ = fill(20, [4])
    with pytest.raises(ValueError, match="fewer than chunk length"):
        replay.sample(state, jax.random.key(0), 2, 5)
    with pytest.raises(ValueError, match="exceeds capacity"):
        replay.sample(state, jax.random.key(0), 2, 21)
    assert bool(replay.can_sample(state, 4)) and not bool(replay.can_sample(state, 5))
    with pytest.raises(ValueError, match="does not fit"):
        replay.add_episode(state, make_episode(1, 21, 0))


def test_save_load_round_trip_and_atomic_names(tmp_path):
    eps = [make_episode(i, 3 + i, 10 * i) for i in range(3)]
    for i in (2, 0, 1):  # written out of order, loaded by index
        path = replay.save_episode(tmp_path, eps[i], i)
        assert path.name == f"{i:06d}-{3 + i}.npz"
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "000000-3.npz",
        "000001-4.npz",
        "000002-5.npz",
    ]  # no temp files left behind
    loaded = replay.load_episodes(tmp_path)
    assert len(loaded) == 3
    for a, b in zip(eps, loaded, strict=True):
        for k in replay.KEYS:
            assert b[k].dtype == a[k].dtype
            np.testing.assert_array_equal(a[k], b[k])


def test_load_skips_temp_and_truncated_files(tmp_path):
    good = replay.save_episode(tmp_path, make_episode(1, 5, 0), 0)
    bad = replay.save_episode(tmp_path, make_episode(2, 5, 5), 1)
    bad.write_bytes(bad.read_bytes()[: bad.stat().st_size // 2])  # torn write
    (tmp_path / ".000002-5.npz.123.tmp").write_bytes(good.read_bytes())  # crash before rename
    (tmp_path / "000003-9.npz").write_bytes(good.read_bytes())  # length disagrees with name
    (tmp_path / "notes.txt").write_text("x")
    with pytest.warns(UserWarning, match="skipping unreadable episode") as rec:
        loaded = replay.load_episodes(tmp_path)
    assert len(rec) == 2
    assert len(loaded) == 1 and (loaded[0]["obs"] == 1).all()
    assert replay.load_episodes(tmp_path / "missing") == []


def test_episodes_to_state_matches_sequential_adds(tmp_path):
    eps = [make_episode(i + 1, n, 0) for i, n in enumerate([5, 6, 7, 4])]
    for i, ep in enumerate(eps):
        replay.save_episode(tmp_path, ep, i)
    ref = replay.init(12, OBS, A)
    for ep in eps:
        ref = add_episode_j(ref, ep)
    from_list = replay.episodes_to_state(replay.load_episodes(tmp_path), 12, OBS, A)
    from_iter = replay.episodes_to_state(replay.iter_episodes(tmp_path), 12, OBS, A)
    for s in (from_list, from_iter):
        assert int(s.size) == int(ref.size) == 12
        # The newest 12 steps are identical (the list path skips the overwritten episode).
        order_s = (np.asarray(s.pos) - 12 + np.arange(12)) % 12
        order_r = (np.asarray(ref.pos) - 12 + np.arange(12)) % 12
        for k in replay.KEYS:
            np.testing.assert_array_equal(
                np.asarray(getattr(s, k))[order_s], np.asarray(getattr(ref, k))[order_r]
            )


def test_capacity_from_bytes_and_nbytes_overhead():
    obs_shape, a = (64, 64, 3), 6
    budget = 10_000_000
    cap = replay.capacity_from_bytes(budget, obs_shape, a)
    assert cap == (budget - 8) // (64 * 64 * 3 + 4 * 6 + 4 + 1)
    state = replay.init(cap, obs_shape, a)
    assert replay.nbytes(state) <= budget
    assert replay.nbytes(replay.init(cap + 1, obs_shape, a)) > budget
    raw = cap * 64 * 64 * 3
    overhead = replay.nbytes(state) / raw - 1
    assert 0 < overhead < 0.01  # 29 bytes per 12288-byte frame: 0.24 %
    with pytest.raises(ValueError):
        replay.capacity_from_bytes(100, obs_shape, a)


def test_no_donation_warnings_under_jit():
    state = replay.init(8, OBS, A)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        state = add_episode_j(state, make_episode(1, 3, 0))
        state = add_j(state, *(make_episode(2, 1, 3)[k][0] for k in replay.KEYS))
    assert int(state.size) == 4


@pytest.mark.slow  # benchmark smoke run (memory of a 2,000-frame buffer)
def test_benchmark_tiny_run():
    from benchmarks import replay_memory

    result = replay_memory.main(["--frames", "2000"])
    assert result["frames"] == 2000
    assert result["state_bytes"] >= result["raw_obs_bytes"] == 2000 * 64 * 64 * 3
    assert 0 <= result["overhead"] < 0.1

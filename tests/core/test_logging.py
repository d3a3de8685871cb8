"""Tests for jaxplanet.core.logging: jsonl metrics, TensorBoard events, videos, progress bar."""

import io
import json
import struct

import imageio.v2 as imageio
import jax.numpy as jnp
import numpy as np
import pytest

from jaxplanet.core import logging as jlog


def read_tb_scalars(logdir) -> dict[str, list[tuple[int, float]]]:
    """Parse TensorBoard event files (TFRecord framing) into {tag: [(step, value)]}."""
    from tensorboardX.proto import event_pb2

    out: dict[str, list[tuple[int, float]]] = {}
    files = sorted(logdir.glob("events.out.tfevents.*"))
    assert files, "no TensorBoard event file"
    for path in files:
        data = path.read_bytes()
        i = 0
        while i < len(data):
            (n,) = struct.unpack("<Q", data[i : i + 8])
            event = event_pb2.Event.FromString(data[i + 12 : i + 12 + n])
            i += 12 + n + 4
            for v in event.summary.value:
                out.setdefault(v.tag, []).append((event.step, v.simple_value))
    return out


def test_scalars_jsonl_and_tensorboard(tmp_path):
    with jlog.Logger(tmp_path) as log:
        row = log.scalars(
            1000,
            {"train/loss": jnp.float32(0.25), "train/episodes": np.int64(3), "task": "cheetah"},
        )
        log.scalars(2000, {"train/loss": 0.125, "eval/return": np.float64(512.5), "ok": True})
    assert row == {"step": 1000, "train/loss": 0.25, "train/episodes": 3, "task": "cheetah"}
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    rows = [json.loads(line) for line in lines]
    assert [r["step"] for r in rows] == [1000, 2000]
    assert isinstance(rows[0]["train/episodes"], int) and rows[1]["ok"] is True
    assert jlog.read_metrics(tmp_path) == rows == jlog.read_metrics(tmp_path / "metrics.jsonl")
    tb = read_tb_scalars(tmp_path)
    assert tb["train/loss"] == [(1000, 0.25), (2000, 0.125)]
    assert tb["eval/return"] == [(2000, 512.5)]
    assert "task" not in tb and "ok" not in tb


def test_metrics_survive_reopen_and_torn_line(tmp_path):
    with jlog.Logger(tmp_path, use_tensorboard=False) as log:
        log.scalars(1, {"a": float("nan")})
    with jlog.Logger(tmp_path, use_tensorboard=False) as log:  # resumed run appends
        log.scalars(2, {"a": 1.0})
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "a": ')  # killed mid-write
    rows = jlog.read_metrics(tmp_path)
    assert rows == [{"step": 1, "a": "nan"}, {"step": 2, "a": 1.0}]
    assert not list(tmp_path.glob("events.out.tfevents.*"))


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # imageio's ffmpeg subprocess
def test_video_mp4_round_trip(tmp_path):
    frames = np.zeros((7, 64, 64, 3), np.uint8)
    frames[:, :, :, 0] = np.arange(7)[:, None, None] * 30  # red ramps over time
    with jlog.Logger(tmp_path) as log:
        path = log.video(5000, "eval/policy", frames)
    assert path == tmp_path / "videos" / "eval_policy_00005000.mp4"
    with imageio.get_reader(path) as reader:
        back = np.stack([frame for frame in reader.iter_data()])
    assert back.shape == (7, 64, 64, 3)
    # Lossy codec: colours close to what was written.
    np.testing.assert_allclose(back[..., 0].mean(axis=(1, 2)), np.arange(7) * 30, atol=8)


def test_video_gif_fallback(tmp_path, monkeypatch):
    real = imageio.mimwrite

    def no_mp4(uri, *args, **kwargs):
        if str(uri).endswith(".mp4"):
            raise RuntimeError("no ffmpeg")
        return real(uri, *args, **kwargs)

    monkeypatch.setattr(imageio, "mimwrite", no_mp4)
    frames = np.random.default_rng(0).integers(0, 255, (5, 64, 64, 3), dtype=np.uint8)
    with jlog.Logger(tmp_path, use_tensorboard=False) as log:
        path = log.video(1, "eval", frames)
    assert path.suffix == ".gif" and not path.with_suffix(".mp4").exists()
    back = imageio.mimread(path)
    assert len(back) == 5 and back[0].shape[:2] == (64, 64)


def test_progress_postfix():
    bar = jlog.progress(total=1000, desc="train", unit="env step", file=io.StringIO())
    metrics = {
        "train/episode": 3,
        "train/return": np.float32(123.456),
        "train/loss": jnp.float32(0.000123),
        "steps_per_sec": 1234.5,
        "other": 1,
    }
    assert jlog.format_metrics(metrics) == {
        "ep": "3",
        "ret": "123.5",
        "loss": "1.23e-04",
        "sps": "1234.5",
    }
    jlog.set_postfix(bar, metrics)
    bar.update(10)
    assert bar.postfix == "ep=3, ret=123.5, loss=1.23e-04, sps=1234.5"
    assert bar.n == 10 and bar.total == 1000
    bar.close()

"""Terminal output pieces: durations, banner, progress lines, Ctrl-C handling."""

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from jaxplanet.core import console


@pytest.mark.parametrize(
    "seconds, text",
    [(5, "5 s"), (125, "2 min 5 s"), (3 * 3600 + 1200, "3 h 20 min"), (3 * 86400, "3 d 0 h")],
)
def test_format_duration(seconds, text):
    assert console.format_duration(seconds) == text


def test_banner_aligns_rows_and_lists_warnings():
    text = console.banner("Run", [("env", "x"), ("devices", "cpu")], ["slow"])
    assert text.splitlines() == ["Run", "  env      x", "  devices  cpu", "  warning: slow"]


def test_env_line_and_eval_banner():
    from jaxplanet.envs import EnvSpec

    spec = EnvSpec("point_reach", (64, 64, 3), 2, action_repeat=2, episode_length=40)
    assert console.env_line(spec) == (
        "point_reach: action_dim 2, action repeat 2, 40 env steps per episode"
    )
    assert console.env_line(spec, "8 agent steps per rollout").endswith(
        "action repeat 2, 8 agent steps per rollout"
    )
    lines = console.eval_banner("Eval of x", "the task", [("output", "x/eval/")]).splitlines()
    assert lines[0] == "Eval of x" and lines[1] == "  env      the task"
    assert lines[2].startswith("  devices  ") and lines[3] == "  output   x/eval/"


def test_progress_lines_when_not_a_terminal(capsys):
    bar = console.RunProgress(total=3, start=1, desc="planet")  # captured: not a tty
    assert not bar.live and bar.lines
    bar.phase("train 1/2")
    bar.set(env_steps="40", ret=1.23456)
    bar.episode_done(2.0, representative=False)
    assert "eta" not in bar.fields  # no representative episode yet: no made-up ETA
    bar.episode_done(10.0, representative=True)
    bar.close()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("planet 2/3 ep") and "env_steps=40 ret=1.235" in lines[0]
    assert "train 1/2" not in lines[0]  # the phase is for the live bar only
    assert lines[1].startswith("planet 3/3 ep")


def test_eta_comes_from_representative_episodes_only():
    bar = console.RunProgress(total=10, desc="x", enabled=False)
    bar.episode_done(0.1, representative=False)  # a fast random episode
    bar.episode_done(60.0, representative=True)
    assert bar.fields["eta"] == "8 min 0 s"  # 8 episodes left at 60 s each


def test_stop_on_interrupt_turns_sigint_into_a_request():
    before = signal.getsignal(signal.SIGINT)  # SIG_IGN when pytest runs in the background
    with console.StopOnInterrupt(grace=30) as stop:
        stop.check()
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(200):
            if stop.requested.wait(0.01):
                break
        with pytest.raises(console.StopRequested):
            stop.check()
    assert signal.getsignal(signal.SIGINT) is before  # the previous handler is back


def test_stuck_main_thread_is_stopped_after_the_grace_period():
    """A main thread inside a long call that never reaches a safe point exits with 130."""
    code = textwrap.dedent(
        """
        import os, signal, threading, time
        from jaxplanet.core import console
        with console.StopOnInterrupt(grace=1.0):
            threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT)).start()
            time.sleep(20)  # stands in for an XLA compile: no safe point
        print("not reached")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == console.INTERRUPT_EXIT
    assert "not reached" not in result.stdout
    assert "no safe point within 1 s" in result.stderr


def test_preset_line_names_the_fields_changed_from_the_preset():
    import dataclasses

    from jaxplanet.planet import config as planet_config

    tiny = planet_config.tiny()
    presets = planet_config.PRESETS
    assert console.preset_line(tiny, "tiny", presets) == "tiny"
    changed = dataclasses.replace(tiny, episodes=7, env="cheetah_run", seed=3)  # own rows
    assert console.preset_line(changed, "tiny", presets) == "tiny, changed: episodes=7"
    model = dataclasses.replace(tiny.model, deter=5)
    assert console.preset_line(dataclasses.replace(tiny, model=model), "tiny", presets) == (
        "tiny, changed: model.deter=5"
    )
    assert console.preset_line(tiny, "saved", presets) == "the run directory's saved config"
    assert console.preset_line(tiny, "", presets) == "custom config"


def test_gpu_sized_warning_only_on_a_cpu():
    (text,) = console.gpu_sized_warning("days", "--preset=quick", backend="cpu")
    assert text == "these are GPU/TPU-sized settings: days; --preset=quick is sized for a CPU"
    assert console.gpu_sized_warning("days", backend="gpu") == []


def test_time_and_output_rows(tmp_path):
    assert console.time_rows(65.0) == [("wall time", "1 min 5 s (this session)")]
    rows = dict(console.time_rows(5.0, 125.0, "this process"))
    assert rows["CPU time"] == "2 min 5 s (this process)"
    rows = dict(console.output_rows(tmp_path, evaluate="cmd --mode=eval"))
    assert rows == {
        "metrics": str(tmp_path / "metrics.jsonl"),
        "TensorBoard": f"tensorboard --logdir {tmp_path}",
        "evaluate": "cmd --mode=eval",
    }
    (tmp_path / "videos").mkdir()
    (tmp_path / "learning_curves.png").write_bytes(b"")
    rows = dict(console.output_rows(tmp_path, ["a.jsonl", "b/a.jsonl"], videos="what"))
    assert rows["metrics"] == f"{tmp_path / 'a.jsonl'}  {tmp_path / 'b' / 'a.jsonl'}"
    assert rows["videos"] == f"{tmp_path / 'videos'}/  (what)"
    assert rows["plot"] == str(tmp_path / "learning_curves.png") and "evaluate" not in rows

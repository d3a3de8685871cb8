"""The benchmarks' helpers (FLOP formulas, timing ratios, CPU monitor) in the default suite;
smoke runs of each benchmark's main at a tiny size are ``slow`` (they time and compile, and
check only that the JSON fields exist and are sane: ``pytest -m slow tests/test_benchmarks.py``)."""

import io
import json
import math
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import common, planning, scaling
from jaxplanet import planet
from jaxplanet.core import compile as compile_lib
from jaxplanet.planners import cem

TINY = [
    "--candidates", "16", "--horizon", "3", "--iterations", "2", "--top_k", "4",
    "--action_dim", "2", "--deter", "8", "--stoch", "4", "--hidden", "8", "--depth", "2",
    "--peak_n", "128", "--repeats", "2", "--warmup", "1",
]  # fmt: skip


def test_step_flops_paper_size_is_the_published_figure():
    # DESIGN.md: one CEM call at paper size (1000 x 12 x 10 RSSM steps, A = 6, reward MLP
    # 2 x 200 as in the PyTorch port it was measured with) is ~92.5 GFLOP.
    cfg = planet.ModelConfig.paper(reward_hidden=200)
    per_step = planning.step_flops(cfg, 6)
    assert per_step == 2 * (36 * 200 + 400 * 600 + 200 * 200 + 200 * 60 + 230 * 200 + 200**2 + 200)
    assert per_step * 1000 * 12 * 10 / 1e9 == pytest.approx(92.5, abs=0.05)
    # The released reward MLP (2 x 100) is smaller.
    released = planning.step_flops(planet.ModelConfig.paper(), 6)
    assert released == per_step - 2 * (230 * 100 + 200**2 - 100**2 + 100)
    ccfg = cem.CEMConfig()
    assert planning.analytic_gflop(cfg, ccfg, 6, 4) == pytest.approx(
        4 * per_step * 12 * 1000 * 10 / 1e9
    )


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_sampled_and_mean_plans_at_tiny_size():
    args = common.parse(planning.add_model_args(common.make_parser("tiny")), TINY)
    plans = {}
    for sample in ("true", "false"):
        args.sample = sample
        parts = planning.setup(args, 1)  # the agent's act: (action [A], belief)
        plans[sample] = np.asarray(parts["act"](*parts["call_args"])[0])
        again = parts["act"](*parts["call_args"])[0]
        np.testing.assert_array_equal(plans[sample], again)  # same key, same plan
    assert plans["true"].shape == plans["false"].shape == (2,)
    assert np.all(np.abs(plans["true"]) <= 1.0)
    assert not np.array_equal(plans["true"], plans["false"])  # sampling changes the rollouts


def test_compiled_gflop_and_cost_analysis_forms():
    a = jnp.ones((64, 32))
    b = jnp.ones((32, 16))
    gflop = common.compiled_gflop(jax.jit(jnp.matmul), a, b)
    assert gflop == pytest.approx(2 * 64 * 32 * 16 / 1e9, rel=0.01)

    class ListForm:  # older jax returned a list of per-computation dicts
        def cost_analysis(self):
            return [{"flops": 2.0}, {"flops": 3.0, "bytes accessed": 1.0}]

    assert common.cost_analysis(ListForm()) == {"flops": 5.0, "bytes accessed": 1.0}


def test_time_fn_and_ratio_fields():
    median, fastest, times = common.time_fn(lambda: jnp.ones(3), warmup=1, repeats=3)
    assert len(times) == 3 and 0 < fastest <= median
    timing = {"seconds": [1.0, 2.0, 4.0], "peaks": [20.0, 10.0, 40.0], "others": [0, 0, None]}
    fields = common.ratio_fields(10.0, timing)
    assert fields["samples"] == "all"  # fewer than 3 quiet pairs
    assert fields["gflops"] == pytest.approx(5.0)
    assert fields["fraction_of_peak"] == pytest.approx(5.0 / 20.0)
    assert fields["fraction_of_peak_paired"] == pytest.approx(0.5)  # median of .5, .5, .0625
    # A busy pair (others' CPU share > 5 %) is left out once 3 quiet pairs exist.
    timing = {"seconds": [1.0, 1.0, 1.0, 9.0], "peaks": [10.0] * 4, "others": [0, 0.01, 0, 0.9]}
    fields = common.ratio_fields(10.0, timing)
    assert fields["samples"] == "quiet" and fields["samples_used"] == 3
    assert fields["seconds_median"] == 1.0 and fields["fraction_of_peak"] == pytest.approx(1.0)


def _fake_proc(monkeypatch, machine: list[str], own: list[int]) -> None:
    """``open`` in benchmarks.common serves these /proc/stat first lines and this process's
    utime + stime (ticks), one of each per `CpuMonitor` reading."""
    machine_lines, own_ticks = iter(machine), iter(own)

    def fake_open(path, *args, **kwargs):
        if path == "/proc/stat":
            return io.StringIO(next(machine_lines))
        assert path == "/proc/self/stat", path
        utime = next(own_ticks) - 5  # stime 5; a command name with ") " must not confuse it
        return io.StringIO(f"42 (a) b) R 1 42 42 0 -1 0 0 0 0 0 {utime} 5 0 0 20 0 1 0\n")

    monkeypatch.setattr(common, "open", fake_open, raising=False)


def test_cpu_monitor_counts_only_other_processes(monkeypatch):
    # Busy = all ticks but idle (4th) and iowait (5th): 200 of 1000, then 700 of 2000. This
    # process used 200 of the 500 busy ticks in between: others used 300 of 1000.
    machine = ["cpu  100 0 100 700 100 0 0 0\n", "cpu  400 0 300 1100 200 0 0 0\n"]
    _fake_proc(monkeypatch, machine, own=[10, 210])
    monitor = common.CpuMonitor()
    monitor.start()
    assert monitor.stop() == pytest.approx(0.3)
    # This process alone kept the machine busy: nobody else ran (never a negative share).
    _fake_proc(monkeypatch, machine, own=[10, 600])
    monitor.start()
    assert monitor.stop() == 0.0


def test_cpu_monitor_without_proc_reports_none(monkeypatch):
    def no_proc(path, *args, **kwargs):
        raise FileNotFoundError(path)

    monkeypatch.setattr(common, "open", no_proc, raising=False)
    monitor = common.CpuMonitor()
    monitor.start()
    assert monitor.stop() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads Linux /proc")
def test_cpu_monitor_reads_this_machine():
    monitor = common.CpuMonitor()
    monitor.start()
    sum(i * i for i in range(200_000))  # some ticks of this process's own
    share = monitor.stop()
    assert share is not None and 0.0 <= share <= 1.0


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_planning_main_tiny(tmp_path):
    out = tmp_path / "planning.json"
    record = planning.main([*TINY, "--json", str(out)])
    saved = json.loads(out.read_text())
    assert saved["fraction_of_peak"] == pytest.approx(record["fraction_of_peak"])
    for key in ("seconds_median", "seconds_min", "gflop", "gflops", "peak_gflops"):
        assert record[key] > 0, key
    assert record["compile_seconds"] > 0
    assert math.isfinite(record["fraction_of_peak"]) and record["fraction_of_peak"] > 0
    assert record["seconds_min"] <= record["seconds_median"]
    assert "cost analysis" in record["gflop_method"]
    # XLA's count includes bias adds / activations, so it is at least the matmul count.
    assert record["gflop"] >= record["gflop_analytic_matmul"] > 0
    assert record["action_shape"] == [2] and record["action_finite"]
    assert record["backend"] == "cpu" and record["config"]["candidates"] == 16
    assert record["compiler_options"] == compile_lib.compiler_options("act")


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_planning_main_batched(tmp_path):
    record = planning.main([*TINY, "--batch", "3", "--repeats", "1"])
    assert record["action_shape"] == [3, 2]
    assert record["transitions_per_second"] == pytest.approx(
        3 * 16 * 3 * 2 / record["seconds_median"]
    )


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_scaling_main_tiny(tmp_path):
    out = tmp_path / "scaling.json"
    record = scaling.main([*TINY, "--envs", "1,4", "--json", str(out)])
    assert json.loads(out.read_text())["benchmark"] == "scaling"
    assert [row["envs"] for row in record["rows"]] == [1, 4]
    for row in record["rows"]:
        assert row["transitions"] == row["envs"] * 16 * 3 * 2
        assert row["transitions_per_second"] > 0
        assert math.isfinite(row["fraction_of_peak"]) and row["fraction_of_peak"] > 0
    assert record["speedup_vs_1_env"]["1"] == pytest.approx(1.0)
    png = tmp_path / "scaling.png"
    assert png.exists() and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_train_benchmark_tiny(tmp_path):
    from benchmarks import train

    out = tmp_path / "train.json"
    record = train.main(
        [
            "--batch",
            "2",
            "--length",
            "4",
            "--depth",
            "2",
            "--deter",
            "8",
            "--stoch",
            "4",
            "--hidden",
            "8",
            "--repeats",
            "1",
            "--warmup",
            "0",
            "--peak_n",
            "256",
            "--json",
            str(out),
        ]
    )
    saved = json.loads(out.read_text())
    for field in (
        "seconds_median",
        "seconds_min",
        "gflop",
        "gflops",
        "peak_gflops",
        "fraction_of_peak",
        "compile_seconds",
        "backend",
        "config",
    ):
        assert field in saved, field
    assert record["gflop"] > 0 and record["peak_gflops"] > 0
    assert 0 < record["fraction_of_peak"] < 10 and record["loss_finite"]


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_train_benchmark_counts_flops_without_conv_slices():
    from benchmarks import train

    tiny = "--batch 2 --length 4 --depth 2 --deter 8 --stoch 4 --hidden 8 --repeats 1 --warmup 0"
    tiny += " --peak_n 256 --conv_chunk"
    plain = train.main([*tiny.split(), "0"])
    sliced = train.main([*tiny.split(), "3"])  # 8 frames in slices of 3, 3, 2
    assert sliced["config"]["model"]["conv_chunk"] == 3
    assert plain["gflop_xla"] == plain["gflop_xla_timed_program"]
    # The sliced update's FLOPs are those of the same update unsliced.
    assert sliced["gflop_xla"] == plain["gflop_xla"]


def test_conv_forward_flops_paper_encoder_decoder():
    from benchmarks import train

    # 2 x MACs, layer by layer: (input size, in, out channels, kernel), stride 2, VALID; the
    # encoder's output is (size - k) // 2 + 1 wide, a transposed conv spreads each input pixel
    # over k x k taps.
    encoder = [(64, 3, 32, 4), (31, 32, 64, 4), (14, 64, 128, 4), (6, 128, 256, 4)]
    decoder = [(1, 1024, 128, 5), (5, 128, 64, 5), (13, 64, 32, 6), (30, 32, 3, 6)]
    macs = sum(((s - k) // 2 + 1) ** 2 * k * k * i * o for s, i, o, k in encoder)
    macs += sum(s * s * k * k * i * o for s, i, o, k in decoder)
    assert train.conv_forward_flops(32) == 2 * macs == 77_363_200
    # Half the depth: the inner layers (channels x channels) cost a quarter.
    assert train.conv_forward_flops(16) < train.conv_forward_flops(32) / 3


def test_latent_scan_gflop_uncounted_paper_size():
    """Hand count at paper size: prior 299,200 MACs/row, posterior 52,000 (B = T = D = 50)."""
    from benchmarks import train
    from jaxplanet.planet import rssm

    cfg = planet.ModelConfig()
    # Only the kernels' shapes count: no parameters are made.
    params = jax.eval_shape(lambda k: rssm.init(cfg, k, cfg.embed_dim, 6), jax.random.key(0))
    params = params["params"]
    prior, posterior = 36 * 200 + 400 * 600 + 200 * 200 + 200 * 60, 200 * 200 + 200 * 60
    observe = 49 * 50 * (prior + posterior)
    overshoot = 49 * 50 * 50 * prior
    expected = 6 * (observe + overshoot) / 1e9
    assert train.latent_scan_gflop_uncounted(params, 50, 50, 50) == pytest.approx(expected)
    assert train.latent_scan_gflop_uncounted(params, 50, 50, 0) == pytest.approx(6 * observe / 1e9)


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
@pytest.mark.parametrize("where", ["host", "device"])
def test_train_benchmark_replay_modes_tiny(where):
    from benchmarks import train

    tiny = ["--batch", "2", "--length", "4", "--depth", "2", "--deter", "8", "--stoch", "4"]
    tiny += ["--hidden", "8", "--repeats", "1", "--warmup", "0", "--peak_n", "128"]
    record = train.main([*tiny, "--replay", where, "--steps", "3"])
    assert record["replay_on"] == where and record["loss_finite"]
    assert record["updates_per_second"] > 0 and record["peak_gflops"] > 0


def _run_script(args: list[str], env_extra: dict[str, str]) -> str:
    """Runs a benchmark in its own process (own XLA flags); returns stdout."""
    import os
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root), **env_extra}
    proc = subprocess.run(args, capture_output=True, text=True, env=env, cwd=root, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


FAST_XLA = "--xla_backend_optimization_level=0"  # compile ~2x faster; timings not compared


@pytest.mark.slow  # ~25 s of compiles; the GPU lease is where it matters
def test_device_check_tiny(tmp_path):
    import sys

    out = tmp_path / "dc.json"
    args = ["bash", "benchmarks/device_check.sh", "--size", "tiny", "--beliefs", "1,4"]
    args += ["--replay_steps", "2", "--repeats", "1", "--json", str(out)]
    stdout = _run_script(args, {"XLA_FLAGS": FAST_XLA, "PYTHON": sys.executable})
    for line in ("device:", "matmul peak", "cem_call:", "train_step:", "imagined", "stall"):
        assert line in stdout, line
    record = json.loads(out.read_text())
    assert record["peak_gflops"]["fp32"] > 0 and record["peak_gflops"]["bf16"] > 0
    for name in ("cem_call", "train_step"):
        assert record[name]["seconds_median"] > 0 and record[name]["fraction_of_peak"] > 0
    assert [r["envs"] for r in record["imagined"]] == [1, 4]
    assert record["imagined"][0]["fraction_of_linear"] == pytest.approx(1.0)
    stall = record["replay_prefetch"]
    assert 0 <= stall["stall_seconds_total"] <= stall["seconds_total"]


@pytest.mark.slow  # ~35 s CPU in two subprocesses; the pieces are tested in test_collect/parallel
def test_scaling_collect_and_shard_modes_tiny(tmp_path):
    import sys

    out = tmp_path / "collect.json"
    base = [sys.executable, "-m", "benchmarks.scaling", "--size", "tiny", "--repeats", "1"]
    base += ["--peak_n", "128"]
    _run_script([*base, "--mode", "collect", "--envs", "1,2", "--json", str(out)], {
        "XLA_FLAGS": FAST_XLA})  # fmt: skip
    record = json.loads(out.read_text())
    assert {(r["loop"], r["envs"]) for r in record["rows"]} == {
        ("host", 1), ("device", 1), ("host", 2), ("device", 2)}  # fmt: skip
    for row in record["rows"]:
        assert row["env_steps"] == row["envs"] * 100 and row["env_steps_per_second"] > 0
        assert row["cpu_seconds"] > 0
    assert set(record["device_vs_host"]) == {"1", "2"}
    out = tmp_path / "shard.json"
    flags = f"{FAST_XLA} --xla_force_host_platform_device_count=2"
    _run_script([*base, "--mode", "shard", "--beliefs", "4", "--json", str(out)], {
        "XLA_FLAGS": flags})  # fmt: skip
    record = json.loads(out.read_text())
    assert [r["devices"] for r in record["rows"]] == [1, 2]
    assert record["rows"][-1]["max_action_difference"] <= 1e-5
    assert record["sharded_vs_unsharded"] > 0


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_vector_envs_benchmark_tiny(tmp_path):
    from benchmarks import vector_envs

    out = tmp_path / "v.json"
    record = vector_envs.main(
        [
            "--envs",
            "point_reach",
            "--num_envs",
            "2",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--repeats",
            "1",
            "--episode_length",
            "40",
            "--json",
            str(out),
        ]
    )
    assert out.exists() and record["matmul_peak_gflops_before"] > 0
    for mode in ("in_process", "workers"):
        key = f"point_reach_{mode}_n2_env_steps_per_second"
        assert key in record or f"point_reach_{mode}_skipped" in record
    assert record["point_reach_in_process_n2_env_steps_per_second"] > 0

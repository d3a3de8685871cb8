"""Sharding over devices and processes (jaxplanet.core.parallel), on forced CPU host devices.

The number of host devices is fixed when JAX starts, so every check runs in its own Python
subprocess with ``XLA_FLAGS=--xla_force_host_platform_device_count=...`` set before JAX is
imported; the subprocess prints one JSON line of results that the tests assert on.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

SHARDING = textwrap.dedent(
    """
    import json, os
    os.environ["XLA_FLAGS"] = (  # 4 host devices; optimisation level 0 halves compile time
        "--xla_force_host_platform_device_count=4 --xla_backend_optimization_level=0"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"
    import jax, jax.numpy as jnp, numpy as np
    from jaxplanet import planet
    from jaxplanet.core import parallel
    from jaxplanet.planet import acting, rssm
    from jaxplanet.planners import cem

    out = {"devices": jax.device_count()}
    cfg = planet.ModelConfig.tiny(depth=2)
    A, B, T = 2, 4, 6
    k_obs, k_loss = jax.random.split(jax.random.key(0))
    k_init = jax.random.key(0, impl="rbg")  # rbg: the init compiles 3x faster
    state = jax.jit(planet.init_train_state, static_argnums=(0, 2))(cfg, k_init, A)
    batch = {
        "obs": jax.random.randint(k_obs, (B, T, 64, 64, 3), 0, 256).astype(jnp.uint8),
        "action": jnp.tanh(jax.random.normal(k_obs, (B, T, A))),
        "reward": jax.random.normal(k_loss, (B, T)),
        "is_first": jnp.zeros((B, T), bool).at[:, 0].set(True),
    }
    fn = lambda s, b, k: planet.train_step(s, cfg, b, k)
    ref_state, ref_m = jax.jit(fn)(state, batch, k_loss)
    ref_params = jax.tree.leaves(ref_state.params)
    for n in (2,):
        mesh = parallel.make_mesh(n)
        step = parallel.shard_train_step(fn, mesh)
        new, m = step(parallel.replicate(state, mesh), parallel.shard_batch(batch, mesh), k_loss)
        leaves = jax.tree.leaves(new.params)
        out[f"train_{n}"] = {
            "loss": [float(ref_m["loss"]), float(m["loss"])],
            "param_diff": max(float(jnp.abs(a - b).max()) for a, b in zip(ref_params, leaves)),
            "param_scale": max(float(jnp.abs(a).max()) for a in ref_params),
            "moved": max(
                float(jnp.abs(a - b).max())
                for a, b in zip(jax.tree.leaves(state.params), leaves)
            ),
            "batch_devices": len(parallel.shard_batch(batch, mesh)["obs"].sharding.device_set),
        }

    # Batched planning: 8 beliefs, one key each, on 1, 2 and 4 devices.
    pcfg = cem.CEMConfig(horizon=3, iterations=2, candidates=16, top_k=4)
    N = 8
    beliefs = rssm.initial_state(cfg, (N,))
    beliefs = beliefs._replace(
        deter=jax.random.normal(k_obs, beliefs.deter.shape),
        mean=jax.random.normal(k_loss, beliefs.mean.shape),
        std=jnp.ones_like(beliefs.std) * 0.5,
    )
    keys = jax.random.split(jax.random.key(3), N)

    def plan_batch(params, belief, keys):
        def one(b, k):
            k_b, k_p = jax.random.split(k)
            start = planet.plan_start(b, k_b)
            return cem.plan_with(pcfg, planet.latent_step(params, cfg), start, k_p, A)
        return jax.vmap(one)(belief, keys)

    plans = {}
    for n in (1, 2, 4):
        mesh = parallel.make_mesh(n)
        plans[n] = np.asarray(parallel.shard_plan(plan_batch, mesh)(state.params, beliefs, keys))
    out["plan_diff"] = {n: float(np.abs(plans[n] - plans[1]).max()) for n in (2, 4)}
    out["plan_spread"] = float(plans[1].std())

    # Acting for 4 envs (belief update + CEM + noise), sharded over 2 devices.
    act = acting.make_act_batch(cfg, pcfg, A, jit=False)
    args = (state.params, rssm.initial_state(cfg, (4,)), jnp.zeros((4, A)), batch["obs"][:, 0],
            jnp.ones((4,), bool), keys[:4], 0.3)
    ref_a, _ = jax.jit(act)(*args)
    sh_a, _ = parallel.shard_batched(act, parallel.make_mesh(2), acting.ACT_BATCHED)(*args)
    out["act_diff"] = float(jnp.abs(ref_a - sh_a).max())
    try:
        parallel.make_mesh(5)
    except ValueError as e:
        out["too_many"] = str(e)
    try:
        parallel.shard_batch(jnp.zeros((3, 2)), parallel.make_mesh(2))
    except ValueError as e:
        out["indivisible"] = str(e)
    print("RESULT " + json.dumps(out))
    """
)

MULTIHOST = textwrap.dedent(
    """
    import json, os, sys
    os.environ["XLA_FLAGS"] = (
        "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0"
    )
    os.environ["JAX_PLATFORMS"] = "cpu"
    from jaxplanet.core import parallel
    info = parallel.initialize_distributed(sys.argv[1], 2, int(sys.argv[2]), timeout_seconds=60)
    import jax, jax.numpy as jnp

    mesh = parallel.make_mesh()
    def fn(w, batch, key):  # one SGD step of least squares, data-parallel over 4 devices
        loss, g = jax.value_and_grad(lambda w: jnp.mean((batch["x"] @ w - batch["y"]) ** 2))(w)
        return w - 0.1 * g, loss
    x = jnp.arange(16.0).reshape(8, 2) / 10.0
    y = x @ jnp.array([1.0, -2.0])
    lo = 4 * info.process_id
    local = {"x": x[lo:lo + 4], "y": y[lo:lo + 4]}
    step = parallel.shard_train_step(fn, mesh)
    w, loss = step(jnp.zeros(2), parallel.host_local_to_global(local, mesh), jax.random.key(0))
    w_ref, loss_ref = jax.jit(fn)(jnp.zeros(2), {"x": x, "y": y}, None)
    print("RESULT " + json.dumps({
        "info": [info.process_id, info.num_processes, info.local_devices, info.global_devices],
        "loss": [float(loss), float(loss_ref)],
        "w": [w.addressable_data(0).tolist(), w_ref.tolist()],
    }))
    jax.distributed.shutdown()
    """
)


def _env() -> dict:
    env = dict(os.environ)
    env.pop("XLA_FLAGS", None)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _result(stdout: str) -> dict:
    lines = [line for line in stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, stdout
    return json.loads(lines[-1][len("RESULT ") :])


@pytest.fixture(scope="module")
def sharding() -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", SHARDING], capture_output=True, text=True, env=_env(), timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return _result(proc.stdout)


def test_sharded_train_step_equals_unsharded(sharding):
    assert sharding["devices"] == 4
    for n in (2,):
        r = sharding[f"train_{n}"]
        assert r["batch_devices"] == n
        ref, got = r["loss"]
        assert got == pytest.approx(ref, rel=1e-5, abs=1e-5)
        assert r["moved"] > 1e-4  # the step did change the parameters
        assert r["param_diff"] <= 1e-5 * max(1.0, r["param_scale"])


def test_sharded_planning_gives_the_same_actions(sharding):
    assert sharding["plan_spread"] > 0.05  # plans differ between beliefs
    for n in ("2", "4"):
        assert sharding["plan_diff"][n] <= 1e-5
    assert sharding["act_diff"] <= 1e-5


def test_mesh_and_batch_errors_name_the_flag(sharding):
    assert "--devices" in sharding["too_many"] and "[1, 4]" in sharding["too_many"]
    assert "divide" in sharding["indivisible"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_one_machine():
    address = f"127.0.0.1:{_free_port()}"
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", MULTIHOST, address, str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        for i in range(2)
    ]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=180)
        assert proc.returncode == 0, err[-3000:]
        results.append(_result(out))
    for i, r in enumerate(results):
        assert r["info"] == [i, 2, 2, 4]
        assert r["loss"][0] == pytest.approx(r["loss"][1], rel=1e-6)
        assert r["w"][0] == pytest.approx(r["w"][1], rel=1e-6)


def test_initialize_distributed_flag_errors():
    from jaxplanet.core import parallel

    with pytest.raises(ValueError, match="--coordinator"):
        parallel.initialize_distributed("127.0.0.1:1", None, 0)
    with pytest.raises(ValueError, match="--process_id"):
        parallel.initialize_distributed("127.0.0.1:1", 2, 2)

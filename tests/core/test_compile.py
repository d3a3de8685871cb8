"""jaxplanet.core.compile: one XLA-options helper for the agent's jitted functions, and the
benchmarks timing exactly those functions with those options."""

import dataclasses

import jax
import jax.numpy as jnp
import pytest

from benchmarks import common, compile_options, planning, train
from jaxplanet import planet
from jaxplanet.core import compile as compile_lib
from jaxplanet.planet import agent
from jaxplanet.planet import config as planet_config
from jaxplanet.planet import functions as planet_functions
from jaxplanet.planet import scale as planet_scale

CPU = jax.default_backend() == "cpu"
TINY_PLANNING = [
    "--candidates", "16", "--horizon", "3", "--iterations", "2", "--top_k", "4",
    "--action_dim", "2", "--deter", "8", "--stoch", "4", "--hidden", "8", "--depth", "2",
]  # fmt: skip
TINY_TRAIN = ["--batch", "2", "--length", "3", "--depth", "2", "--deter", "8", "--stoch", "4"]
TINY_TRAIN += ["--hidden", "8", "--action_dim", "2"]


def test_compiler_options_per_kind():
    assert compile_lib.KINDS == ("act", "update", "solar")
    for kind in compile_lib.KINDS:
        assert compile_lib.compiler_options(kind, backend="gpu") == {}
        options = compile_lib.compiler_options(kind, backend="cpu")
        assert options == compile_lib.CPU_VARIANTS[compile_lib.CHOICE[kind]]
        options["x"] = "y"  # a fresh dict each call: callers cannot change the table
        assert "x" not in compile_lib.compiler_options(kind, backend="cpu")
    with pytest.raises(ValueError, match="unknown kind 'plan'"):
        compile_lib.compiler_options("plan")


@pytest.mark.skipif(not CPU, reason="XLA:CPU options")
def test_xla_default_variant_spells_out_xla_defaults():
    def f(x, w, a):  # a strided conv, a dot and a reduction
        dims = ("NHWC", "HWIO", "NHWC")
        y = jax.lax.conv_general_dilated(x, w, (2, 2), "VALID", dimension_numbers=dims)
        return (y.sum(axis=(1, 2)) @ a).sum(0)

    args = (jnp.ones((4, 30, 30, 32)), jnp.ones((4, 4, 32, 64)), jnp.ones((64, 16)))
    lowered = jax.jit(f).lower(*args)
    default = lowered.compile().as_text()
    texts = {n: lowered.compile(dict(o)).as_text() for n, o in compile_lib.CPU_VARIANTS.items()}
    assert texts["xla_default"] == default
    assert texts["no_ynn"] != default  # the option does change the program


def _planning_args(*extra: str):
    parser = planning.add_model_args(common.make_parser("tiny"))
    return common.parse(parser, [*TINY_PLANNING, *extra])


def _agent_cfg(num_envs: int = 1) -> planet_config.PlanetConfig:
    """The agent config of the TINY_PLANNING flags, built without the benchmark's helpers."""
    model = planet.ModelConfig.paper(deter=8, stoch=4, hidden=8, depth=2)
    planner = planet_config.PlannerConfig(horizon=3, iterations=2, candidates=16, top_k=4)
    return dataclasses.replace(
        planet_config.paper(), num_envs=num_envs, model=model, planner=planner
    )


@pytest.fixture
def distinct_choices(monkeypatch):
    """CHOICE with act and update on variants that compile the tiny functions differently
    (XLA's default and Eigen convolutions give the same tiny programs), and the agent's
    function caches cleared before and after, so the agent's jits take these options."""
    monkeypatch.setitem(compile_lib.CHOICE, "act", "no_ynn")
    monkeypatch.setitem(compile_lib.CHOICE, "update", "ynn_no_conv")
    caches = (planet_functions._make_functions, planet_scale.make_act)
    for cache in caches:
        cache.cache_clear()
    yield
    for cache in caches:
        cache.cache_clear()


def test_planning_benchmark_times_the_agents_act(distinct_choices):
    args = _planning_args()
    # The training loop collects with make_act, one env included (exactly acting.act).
    assert planning.agent_act(args, 1) is planet_scale.make_act(_agent_cfg(), 2)
    assert planning.agent_act(args, 3) is planet_scale.make_act(_agent_cfg(3), 2)
    # Compiled as the agent compiles it: the agent's jit with compiler_options("act").
    abstract = jax.eval_shape(lambda k: planet.init(_agent_cfg().model, k, 2), jax.random.key(0))
    parts = planning.setup(args, 1, params=abstract)
    assert parts["act"] is planet_scale.make_act(_agent_cfg(), 2)
    assert parts["options"] == compile_lib.compiler_options("act")
    benchmark = planning.compile_act(args, parts).as_text()
    options = compile_lib.compiler_options("act")
    agents = parts["act"].lower(*parts["call_args"]).compile(compiler_options=options)
    assert benchmark == agents.as_text()


def _train_parts():
    args = common.parse(train.add_args(common.make_parser("tiny")), TINY_TRAIN)
    cfg = dataclasses.replace(
        planet_config.paper(),
        batch_size=2,
        seq_length=3,
        model=dataclasses.replace(planet_config.paper().model, depth=2, deter=8, stoch=4, hidden=8),
    )
    abstract = jax.eval_shape(lambda k: planet.init_train_state(cfg.model, k, 2), jax.random.key(0))
    return args, cfg, train.setup(args, state=abstract)


def test_train_benchmark_times_the_agents_update():
    args, cfg, parts = _train_parts()
    loops = agent.make_functions(cfg, 2, seed_axis=True).update_batch  # the training loop's
    assert train.agent_update(args) is loops and parts["update"] is loops
    assert parts["options"] == compile_lib.compiler_options("update")


@pytest.mark.slow  # two compiles of the train step (~20 s on 2 busy cores)
def test_train_benchmark_compiles_the_update_as_the_agent(distinct_choices):
    args, _, parts = _train_parts()
    benchmark = train.compile_update(args, parts).as_text()
    options = compile_lib.compiler_options("update")
    agents = parts["update"].lower(*parts["call_args"]).compile(compiler_options=options)
    assert benchmark == agents.as_text()


@pytest.mark.slow  # benchmark smoke run: compiles and times at a tiny size
def test_compile_options_benchmark_tiny(tmp_path):
    out = tmp_path / "co.json"
    record = compile_options.main(
        ["--preset", "tiny", "--items", "act", "--repeats", "2", "--warmup", "1"]
        + ["--json", str(out)]
    )
    act = record["items"]["act"]
    assert set(act["seconds"]) == set(record["variants"])
    chosen = compile_lib.CHOICE["act"] if CPU else "xla_default"
    assert act["ratio_to_choice"][chosen] == 1.0
    assert all(len(s) == 2 and min(s) > 0 for s in act["seconds"].values())

"""Tests of jaxplanet.core.config: flat views, typed overrides, diffs, round trips."""

import dataclasses
from typing import Literal

import pytest

from jaxplanet.core import config as config_lib
from jaxplanet.planet import config as planet_config


@dataclasses.dataclass(frozen=True)
class Inner:
    size: int = 3
    kind: Literal["a", "b"] = "a"


@dataclasses.dataclass(frozen=True)
class Outer:
    lr: float = 1e-3
    flag: bool = False
    name: str = "x"
    dims: tuple[int, ...] = (1, 2)
    inner: Inner = dataclasses.field(default_factory=Inner)


def test_flat_fields_and_override_types():
    cfg = Outer()
    assert set(config_lib.flat_fields(cfg)) == {
        "lr",
        "flag",
        "name",
        "dims",
        "inner.size",
        "inner.kind",
    }
    new = config_lib.override(
        cfg, {"lr": "3e-4", "flag": "true", "inner.size": "1e2", "inner.kind": "b", "dims": "4,5"}
    )
    assert new == Outer(lr=3e-4, flag=True, dims=(4, 5), inner=Inner(size=100, kind="b"))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"inner.sise": "2"}, "--inner.sise: no such config field. Did you mean: --inner.size"),
        ({"inner.size": "2.5"}, "--inner.size: expected an integer, got '2.5'"),
        ({"lr": "fast"}, "--lr: expected a number"),
        ({"flag": "maybe"}, "--flag: expected a boolean"),
        ({"inner.kind": "c"}, "--inner.kind: expected one of a, b"),
    ],
)
def test_override_errors_name_the_flag(overrides, message):
    with pytest.raises(config_lib.ConfigError) as err:
        config_lib.override(Outer(), overrides)
    assert message in str(err.value)


def test_diff_and_round_trip():
    a = config_lib.to_dict(Outer())
    b = config_lib.to_dict(config_lib.replace(Outer(), **{"inner.size": 7, "lr": 0.1}))
    assert config_lib.diff(a, b) == [("inner.size", 3, 7), ("lr", 1e-3, 0.1)]
    assert config_lib.from_dict(Outer, b) == config_lib.replace(
        Outer(), **{"inner.size": 7, "lr": 0.1}
    )
    with pytest.raises(config_lib.ConfigError, match="unknown fields"):
        config_lib.from_dict(Outer, {**a, "bogus": 1})


def test_planet_presets_validate_and_round_trip():
    for name in planet_config.PRESETS:
        cfg = planet_config.preset(name)
        cfg.validate()
        assert config_lib.from_dict(planet_config.PlanetConfig, config_lib.to_dict(cfg)) == cfg
    with pytest.raises(config_lib.ConfigError, match="valid presets: paper, quick, tiny"):
        planet_config.preset("fast")


def test_paper_preset_holds_published_values():
    cfg = planet_config.paper()
    assert (cfg.batch_size, cfg.seq_length, cfg.train_steps, cfg.seed_episodes) == (50, 50, 100, 5)
    assert cfg.exploration_noise == 0.3
    m, p = cfg.model, cfg.planner
    assert (m.deter, m.stoch, m.hidden, m.min_std, m.free_nats) == (200, 30, 200, 0.1, 3.0)
    assert (m.lr, m.adam_eps, m.grad_clip) == (1e-3, 1e-4, 1000.0)
    assert (p.horizon, p.iterations, p.candidates, p.top_k) == (12, 10, 1000, 100)


def test_validate_rejects_inconsistent_values():
    with pytest.raises(config_lib.ConfigError, match="--episodes: must exceed --seed_episodes"):
        config_lib.override(planet_config.tiny(), {"episodes": "2"})
    with pytest.raises(config_lib.ConfigError, match="--exploration_noise"):
        config_lib.override(planet_config.tiny(), {"exploration_noise": "-1"})


def test_task_preset_changes_quick_for_another_task_only():
    @dataclasses.dataclass(frozen=True)
    class Run:
        env: str = "own"
        lr: float = 1e-3
        inner: Inner = dataclasses.field(default_factory=Inner)

    presets = {"paper": Run, "quick": lambda: Run(lr=1e-2, inner=Inner(size=9))}
    tasks = {"other": {"inner.kind": "b"}}
    base = {"inner.size": 5}
    assert config_lib.task_preset(presets, "quick", None, tasks, base) == presets["quick"]()
    assert config_lib.task_preset(presets, "quick", "own", tasks, base) == presets["quick"]()
    other = config_lib.task_preset(presets, "quick", "other", tasks, base)
    assert other == Run(env="other", lr=1e-2, inner=Inner(size=5, kind="b"))
    third = config_lib.task_preset(presets, "quick", "third", tasks, base)
    assert third == Run(env="third", lr=1e-2, inner=Inner(size=5))
    assert config_lib.task_preset(presets, "paper", "other", tasks, base) == Run(env="other")
    with pytest.raises(config_lib.ConfigError, match="valid presets: paper, quick"):
        config_lib.task_preset(presets, "fast", "other", tasks)
